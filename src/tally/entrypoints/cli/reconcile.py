"""``tally reconcile``: providers' own reports matched against what Tally recorded."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from tally.app.bootstrap import build_backoffice
from tally.audit.service import Auditing
from tally.entrypoints.cli.common import CLI_ACTOR, console, err_console, open_app
from tally.entrypoints.cli.tables import Table
from tally.kernel.money import format_amount
from tally.reconciliation.model import BreakKind, BreakStatus, KeptBreak, Transition
from tally.reconciliation.report import break_dict
from tally.reconciliation.service import ReconciliationService, ReportRefused

reconcile_app = typer.Typer(
    no_args_is_help=True, help="Reconcile providers' reports against Tally: runs and breaks."
)

KINDS = {k.code: k for k in BreakKind}


@contextmanager
def _service() -> Iterator[tuple[ReconciliationService, Auditing]]:
    with open_app() as tally:
        backoffice = build_backoffice(tally)
        try:
            yield backoffice.reconciliation, Auditing(backoffice.store, CLI_ACTOR, "cli")
        finally:
            backoffice.close()


def _refusal(verdict: Transition, break_id: int) -> None:
    if verdict is Transition.OK:
        return
    why = {
        Transition.NOT_FOUND: f"no break {break_id}",
        Transition.CLOSED: f"break {break_id} is closed (resolved or written off)",
        Transition.NOT_ALLOWED: f"break {break_id} cannot move so (or changed meanwhile)",
        Transition.NOTE_REQUIRED: "closing a break says why: --note",
    }[verdict]
    err_console.print(f"[red]{why}[/red]")
    raise typer.Exit(1)


@reconcile_app.command("run")
def run(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    provider: Annotated[str, typer.Option(help="whose report it is")],
    tz: Annotated[str | None, typer.Option(help="the report's time zone (else the rules')")] = None,
) -> None:
    """Reconcile one provider report (CSV with a header, or JSON Lines)."""
    with _service() as (service, auditing):
        limit = service.limits.report_max_bytes
        if path.stat().st_size > limit:
            err_console.print(f"[red]{path.name} refused: larger than {limit} bytes[/red]")
            raise typer.Exit(2)
        try:
            out = service.run(path.name, path.read_bytes(), provider, auditing, tz)
        except ReportRefused as exc:
            err_console.print(f"[red]refused, nothing taken: {exc}[/red]")
            raise typer.Exit(2) from None
    r = out.run
    console.print(
        f"run {r.id}: {r.lines} lines, {r.refused} refused, {r.breaks} breaks "
        f"(rules v{r.rules.version}, zone {r.rules.zone})"
    )
    for line in out.refused_lines[:20]:
        err_console.print(f"[yellow]{line}[/yellow]")
    if out.refused_lines:
        err_console.print("refused lines are kept: see `tally quarantine list`")
    console.print(f"report sha256 {r.json_sha256} (json), {r.csv_sha256} (csv)")
    unexplained = [b for b in out.result.balances if b.unexplained]
    if unexplained:
        console.print(f"[yellow]{len(unexplained)} balance rows no break explains[/yellow]")


def _row(k: KeptBreak, now_days: int) -> list[str]:
    b = k.brk
    return [
        str(k.id),
        b.kind.code,
        b.day.isoformat(),
        b.operator,
        b.currency,
        format_amount(b.difference, b.currency),
        k.status.value,
        k.owner,
        str(now_days),
        b.report_ref or b.tally_key,
    ]


@reconcile_app.command("breaks")
def breaks(
    status: Annotated[BreakStatus | None, typer.Option(help="open, investigating, ...")] = None,
    kind: Annotated[str | None, typer.Option(help="e.g. amount_mismatch")] = None,
    run_id: Annotated[int | None, typer.Option("--run", help="one run's breaks")] = None,
    after: Annotated[int, typer.Option(help="breaks after this id")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1_000)] = 50,
) -> None:
    """Breaks by id, with their age in days."""
    if kind is not None and kind not in KINDS:
        raise typer.BadParameter(f"kind is one of {', '.join(KINDS)}")
    with _service() as (service, _):
        found = service.breaks(
            status=status, kind=KINDS[kind] if kind else None, run_id=run_id,
            after=after, limit=limit,
        )  # fmt: skip
        now = service.clock.now()
    table = Table(
        "id", "kind", "day", "operator", "currency", "difference", "status", "owner", "age",
        "lines",
    )  # fmt: skip
    for k in found:
        table.add_row(*_row(k, k.age_days(now)))
    console.print(table)
    if len(found) == limit:
        console.print(f"more: --after {found[-1].id}")


@reconcile_app.command("show")
def show(break_id: int) -> None:
    """One break with its lines, amounts and history."""
    with _service() as (service, _):
        k = service.get(break_id)
        now = service.clock.now()
    if k is None:
        err_console.print(f"[red]no break {break_id}[/red]")
        raise typer.Exit(1)
    doc = {
        **break_dict(k.brk),
        "break": k.id,
        "run": k.run_id,
        "source": k.source,
        "found_at": k.found_at.isoformat(),
        "age_days": k.age_days(now),
        "status": k.status.value,
        "owner": k.owner,
        "adjustment": k.adjustment,
        "history": [
            {
                "status": h.status.value,
                "owner": h.owner,
                "by": h.by,
                "at": h.at.isoformat(),
                "note": h.note,
            }
            for h in k.history
        ],
    }
    console.print_json(json.dumps(doc))


@reconcile_app.command("assign")
def assign(
    break_id: int,
    owner: Annotated[str, typer.Option(help="who looks into it")],
    note: Annotated[str, typer.Option()] = "",
) -> None:
    """Give a break an owner (an open break is then being investigated)."""
    with _service() as (service, auditing):
        _refusal(service.assign(break_id, owner, auditing, note), break_id)
    console.print(f"break {break_id} assigned to {owner}")


@reconcile_app.command("resolve")
def resolve(
    break_id: int,
    note: Annotated[str, typer.Option(help="why it is closed")],
    status: Annotated[str, typer.Option(help="resolved or written_off")] = "resolved",
) -> None:
    """Close a break: resolved, or written off."""
    if status not in (BreakStatus.RESOLVED.value, BreakStatus.WRITTEN_OFF.value):
        raise typer.BadParameter("--status is resolved or written_off")
    with _service() as (service, auditing):
        _refusal(service.set_status(break_id, BreakStatus(status), note, auditing), break_id)
    console.print(f"break {break_id} {status}")


@reconcile_app.command("reopen")
def reopen(
    break_id: int,
    note: Annotated[str, typer.Option(help="why it is open again")],
) -> None:
    """Undo a close, a person's or an automatic rule's (audited)."""
    with _service() as (service, auditing):
        verdict = service.reopen(break_id, note, auditing)
        if verdict is Transition.NOT_ALLOWED:
            err_console.print(f"[red]break {break_id} is not closed[/red]")
            raise typer.Exit(1)
        _refusal(verdict, break_id)
    console.print(f"break {break_id} open again")


@reconcile_app.command("redrive")
def redrive(
    break_id: int,
    game_type: Annotated[str, typer.Option(help="the line's game type (reports omit it)")],
    note: Annotated[str, typer.Option(help="why, kept with the break's note")] = "",
) -> None:
    """Re-drive a line missing in Tally as an event, through the same door as `tally
    import`; the break is resolved naming the event's key (audited). Idempotent."""
    with _service() as (service, auditing):
        out = service.redrive(break_id, game_type, auditing, note)
    if out.verdict is Transition.NOT_ALLOWED:
        err_console.print(f"[red]break {break_id} not re-driven: {out.detail}[/red]")
        raise typer.Exit(1)
    _refusal(out.verdict, break_id)
    console.print(f"break {break_id} re-driven as event {out.key} ({out.detail}), resolved")


@reconcile_app.command("report")
def report(
    run_id: int,
    fmt: Annotated[str, typer.Option("--format", help="json or csv")] = "json",
    out: Annotated[Path | None, typer.Option(help="write here instead of stdout")] = None,
) -> None:
    """A run's break report, byte for byte as kept, with its SHA-256 (on stderr)."""
    if fmt not in ("json", "csv"):
        raise typer.BadParameter("--format is json or csv")
    with _service() as (service, _):
        found = service.report(run_id, fmt)
    if found is None:
        err_console.print(f"[red]no finished run {run_id}[/red]")
        raise typer.Exit(1)
    body, sha = found
    if out is not None:
        out.write_bytes(body)
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    err_console.print(f"sha256 {sha}")
