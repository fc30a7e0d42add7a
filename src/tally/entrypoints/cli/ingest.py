"""``tally import``: providers' batch reports, one file or a watched folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from tally.app.bootstrap import build_backoffice
from tally.entrypoints.cli.common import console, err_console, open_app
from tally.ingest.files import FileImporter, ImportReport, ReportRefused
from tally.ingest.lines import ReportFormat

import_app = typer.Typer(no_args_is_help=True, help="Import providers' batch reports.")
WATCH_INTERVAL_S = 2.0  # how often a watched folder is looked at
SUFFIXES = (".csv", ".jsonl", ".ndjson")


def _format(provider: str, tz: str, currency: str) -> ReportFormat:
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise typer.BadParameter(f"{tz!r} is not a time zone (e.g. Europe/Malta)") from None
    return ReportFormat(provider, zone, currency.upper())


def _import(importer: FileImporter, path: Path, fmt: ReportFormat) -> ImportReport:
    data = path.read_bytes()
    with Progress(
        f"[progress.description]{path.name}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        total = data.count(b"\n") or 1
        task = progress.add_task("lines", total=total)
        report = importer.run(
            path.name, data, fmt, lambda done: progress.update(task, completed=done)
        )
        progress.update(task, completed=total)  # header and blank lines are read too
    c = report.counts
    resumed = f" (resumed after line {report.resumed_after})" if report.resumed_after else ""
    console.print(
        f"{path.name}{resumed}: {c.lines} lines, {c.accepted} accepted, {c.duplicate} "
        f"duplicate, {c.conflict} conflict, {c.rejected} rejected"
        + (" - see `tally quarantine list`" if c.rejected or c.conflict else "")
    )
    return report


@import_app.command("file")
def import_file(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    provider: Annotated[str, typer.Option(help="whose report it is")],
    tz: Annotated[str, typer.Option(help="the provider's time zone")] = "UTC",
    currency: Annotated[str, typer.Option(help="for lines that name none")] = "",
) -> None:
    """Import one report (CSV with a header, or JSON Lines); re-running resumes or skips.
    A report may state its own zone and currency on a first line: # tz=Asia/Tokyo currency=JPY
    (it wins over --tz and --currency)."""
    fmt = _format(provider, tz, currency)
    with open_app() as tally:
        backoffice = build_backoffice(tally)
        try:
            _import(backoffice.ingest.importer, path, fmt)
        except ReportRefused as exc:
            err_console.print(f"[red]{path.name} refused, nothing taken: {exc}[/red]")
            raise typer.Exit(2) from None
        finally:
            backoffice.close()


@import_app.command("watch")
def watch(
    folder: Annotated[Path, typer.Argument(exists=True, file_okay=False)],
    provider: Annotated[str, typer.Option(help="whose reports land there")],
    tz: Annotated[str, typer.Option(help="the provider's time zone")] = "UTC",
    currency: Annotated[str, typer.Option(help="for lines that name none")] = "",
    once: Annotated[bool, typer.Option(help="import what is there now, then stop")] = False,
) -> None:
    """Import every report that lands in FOLDER; imported files move to FOLDER/done/,
    reports with a wrong "#" header to FOLDER/refused/."""
    fmt = _format(provider, tz, currency)
    done = folder / "done"
    done.mkdir(exist_ok=True)
    refused = folder / "refused"  # a report whose own header is wrong waits for a person
    refused.mkdir(exist_ok=True)
    with open_app() as tally:
        backoffice = build_backoffice(tally)
        importer = backoffice.ingest.importer
        console.print(f"watching {folder} every {WATCH_INTERVAL_S:g}s (Ctrl-C stops)")
        try:
            while True:
                for path in sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES):
                    try:
                        _import(importer, path, fmt)
                    except OSError as exc:
                        err_console.print(f"[red]{path.name}: {exc}[/red]")
                        continue
                    except ReportRefused as exc:
                        err_console.print(f"[red]{path.name} refused, moved aside: {exc}[/red]")
                        path.rename(refused / path.name)
                        continue
                    path.rename(done / path.name)
                if once:
                    break
                time.sleep(WATCH_INTERVAL_S)
        except KeyboardInterrupt:
            pass
        finally:
            backoffice.close()


feeds_app = typer.Typer(no_args_is_help=True, help="Partner feeds over NATS.")


@feeds_app.command("listen")
def listen() -> None:
    """Take partner feeds pushed to tally.feeds.<operator> on NATS (Ctrl-C stops)."""
    from tally.adapters.nats.feeds import FEED_SUBJECTS, NatsFeedListener

    with open_app() as tally:
        backoffice = build_backoffice(tally)
        listener = NatsFeedListener(tally.settings.nats_url, backoffice.ingest.feeds)
        console.print(
            f"listening on {FEED_SUBJECTS}.<operator> at {tally.settings.nats_url} (Ctrl-C stops)"
        )
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            listener.close()
            backoffice.close()
        console.print(f"{listener.received} pushes taken")
