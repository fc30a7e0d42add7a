"""``tally archive ...`` and ``tally backup ...``: seals, archives, backups (ADR 0023).

Exit codes of the checking commands: 0 verified; 1 the archive or backup fails (each
problem named); 2 it cannot be checked (unreadable, no key)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from tally.adapters.archive_dir import ArchiveDirReading, ArchiveDirSink
from tally.adapters.sqlite.lifecycle import SqliteRestoreTarget
from tally.app.bootstrap import build_lifecycle
from tally.app.settings import Settings
from tally.entrypoints.cli.common import CLI_ACTOR, console, err_console
from tally.lifecycle.archive import Partition
from tally.lifecycle.ports import RestoreTarget
from tally.lifecycle.seal import Period, table_spec
from tally.lifecycle.service import Verification

# How much `tally backup create` lowers its own CPU priority by default (0 to 19).
BACKUP_NICE = 10

archive_app = typer.Typer(help="Sealed, signed partition archives.", no_args_is_help=True)
backup_app = typer.Typer(help="Online backups of the embedded store.", no_args_is_help=True)

PublicKey = Annotated[
    Path | None, typer.Option(help="the signer's Ed25519 public key (PEM) to check against")
]


def _reading(directory: Path) -> ArchiveDirReading:
    try:
        return ArchiveDirReading(directory)
    except (OSError, ValueError) as exc:
        err_console.print(f"[red]cannot read {directory}: {exc}[/red]")
        raise typer.Exit(2) from None


def _pem(public_key: Path | None) -> bytes | None:
    if public_key is None:
        err_console.print(
            "[yellow]no --public-key given: checking against the key inside, which proves "
            "integrity but not who made it[/yellow]"
        )
        return None
    try:
        return public_key.read_bytes()
    except OSError as exc:
        err_console.print(f"[red]cannot read the public key {public_key}: {exc}[/red]")
        raise typer.Exit(2) from None


def _report(result: Verification, what: str) -> None:
    if result.problems:
        for p in result.problems:
            err_console.print(f"[red]{p}[/red]")
        raise typer.Exit(1)
    seal = result.found
    rows = f"{seal.rows} rows, chain head {seal.head[:16]}…" if seal else ""
    console.print(f"{what} verified: signature valid, {rows}")


@archive_app.command("create")
def archive_create(
    table: Annotated[str, typer.Option(help="transfers or event_log")],
    period: Annotated[str, typer.Option(help="a UTC month (2026-11) or day (2026-11-03)")],
    out: Annotated[Path, typer.Option(help="the archive directory to create")],
    region: Annotated[
        str, typer.Option(help="PostgreSQL: the region partition (its time partition is read)")
    ] = "",
) -> None:
    """Seal a period of a table and write it as a signed archive (the live rows stay)."""
    try:
        spec = table_spec(table)
        p = Period.parse(period)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    life = build_lifecycle(Settings.from_env())
    done = life.archives.archive(
        life.partition_source(),
        spec,
        Partition(spec.name, p.name, p.start, p.end, region),
        ArchiveDirSink(out),
        actor=CLI_ACTOR,
    )
    console.print(
        f"archive written to {out}: {done.seal.rows} rows of {done.partition.name}, "
        f"chain head {done.seal.head[:16]}…, manifest signed"
    )


@archive_app.command("verify")
def archive_verify(archive: Path, public_key: PublicKey = None) -> None:
    """Check an archive offline: signature, files, every row against the seal."""
    reading = _reading(archive)
    life = build_lifecycle(Settings.from_env())
    _report(life.archives.verify(reading, _pem(public_key)), f"archive {archive}")


@archive_app.command("restore")
def archive_restore(
    archive: Path,
    sqlite: Annotated[Path | None, typer.Option(help="a new SQLite file to load it into")] = None,
    postgres: Annotated[
        str | None,
        typer.Option(help="the DSN of an empty scratch PostgreSQL database to load it into"),
    ] = None,
    public_key: PublicKey = None,
) -> None:
    """Load an archive into a scratch SQLite file or PostgreSQL database and check what it
    then holds against the seal."""
    if (sqlite is None) == (postgres is None):
        raise typer.BadParameter("give one of --sqlite and --postgres")
    reading = _reading(archive)
    life = build_lifecycle(Settings.from_env())
    target: RestoreTarget
    try:
        if sqlite is not None:
            target = SqliteRestoreTarget(sqlite)
        else:
            from tally.adapters.postgres.lifecycle import PostgresRestoreTarget

            assert postgres is not None
            target = PostgresRestoreTarget(postgres)
    except FileExistsError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    try:
        result = life.archives.restore(reading, target, _pem(public_key))
    finally:
        target.close()
    _report(result, f"restored into {sqlite or 'the scratch database'} and")


@backup_app.command("create")
def backup_create(
    out: Annotated[Path, typer.Option(help="the backup directory to create")],
    method: Annotated[str, typer.Option(help="api (SQLite's backup API) or vacuum")] = "api",
    nice: Annotated[
        int, typer.Option(help="lower this process's CPU priority by this much", min=0, max=19)
    ] = BACKUP_NICE,
) -> None:
    """An online copy of the SQLite file, checked, sealed and signed; traffic goes on."""
    if nice:
        # The copy is I/O; the checks and seals after it are CPU in this process. Beside
        # a gateway on the same cores, they yield to it rather than lengthen its answers.
        os.nice(nice)
    life = build_lifecycle(Settings.from_env())
    try:
        done = life.backups(method).backup(out, method=method, actor=CLI_ACTOR)
    except (ValueError, RuntimeError) as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    rows = ", ".join(f"{n} {s.rows} rows" for n, s in sorted(done.seals.items()))
    console.print(f"backup written to {out} in {done.seconds:.2f} s ({rows}), manifest signed")


@backup_app.command("verify")
def backup_verify(backup: Path, public_key: PublicKey = None) -> None:
    """Check a backup offline: signature, file digest, integrity, seals, the ledger."""
    reading = _reading(backup)
    life = build_lifecycle(Settings.from_env())
    _report(life.backups().verify(reading, _pem(public_key)), f"backup {backup}")


@backup_app.command("restore")
def backup_restore(
    backup: Path,
    to: Annotated[Path, typer.Option(help="the new SQLite file to restore into")],
    public_key: PublicKey = None,
) -> None:
    """Verify a backup, then restore its file to a new path and check it there."""
    reading = _reading(backup)
    life = build_lifecycle(Settings.from_env())
    try:
        result = life.backups().restore(reading, to, _pem(public_key))
    except FileExistsError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    _report(result, f"restored to {to} and")


retention_app = typer.Typer(help="Retention of the embedded store.", no_args_is_help=True)


@retention_app.command("run")
def retention_run(
    archives: Annotated[Path, typer.Option(help="where the per-period archives go")],
    horizon_days: Annotated[int, typer.Option(help="keep this many days live", min=1)] = 400,
    grain: Annotated[str, typer.Option(help="month or day")] = "month",
) -> None:
    """Archive closed periods older than the horizon, verify, then drop them live."""
    from datetime import timedelta

    life = build_lifecycle(Settings.from_env())
    try:
        done = life.retention(archives).run(
            timedelta(days=horizon_days), grain=grain, actor=CLI_ACTOR
        )
    except ValueError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    for r in done:
        colour = {"dropped": "green", "kept": "yellow", "failed": "red"}[r.outcome]
        console.print(f"[{colour}]{r.partition}: {r.outcome}[/{colour}] {r.rows or ''} {r.detail}")
    if any(r.outcome == "failed" for r in done):
        raise typer.Exit(1)


def maintain(
    region: Annotated[
        list[str] | None, typer.Option(help="a region to partition (repeat); default global")
    ] = None,
    ahead: Annotated[int, typer.Option(help="periods to make ahead of the current", min=1)] = 2,
    grain: Annotated[str, typer.Option(help="month or day")] = "month",
    install: Annotated[
        bool, typer.Option(help="first partition the tables (the lifecycle migration)")
    ] = False,
    check: Annotated[bool, typer.Option(help="only check and alert; make nothing")] = False,
) -> None:
    """Make PostgreSQL partitions for the current period and those ahead, in every region;
    alert for any still missing (a row for it would be refused). Run it daily."""
    life = build_lifecycle(Settings.from_env())
    try:
        job = life.maintenance(region or ["global"], grain=grain, ahead=ahead, install=install)
    except ValueError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    done = job.run(create=not check)
    for name in done.made:
        console.print(f"made {name}")
    for name in done.missing:
        err_console.print(f"[red]missing {name}: rows for it are refused[/red]")
    if done.missing:
        raise typer.Exit(1)
    console.print(f"partitions in place through {job.periods()[-1].name}")
