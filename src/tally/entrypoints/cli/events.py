"""``tally events`` and ``tally quarantine``: the canonical event schema, the log, and
everything refused on the way in."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated

import typer

from tally.app.bootstrap import (
    build_backoffice,
    build_event_log,
    build_input_quarantine,
)
from tally.entrypoints.cli.common import CLI_ACTOR, console, err_console, open_app
from tally.entrypoints.cli.tables import Table
from tally.events.schema import schema_text
from tally.quarantine.inputs import Reason, Status
from tally.quarantine.ledger import QuarantineError
from tally.quarantine.redrive import QuarantineDesk

events_app = typer.Typer(no_args_is_help=True, help="Canonical events and the event log.")
quarantine_app = typer.Typer(
    no_args_is_help=True, help="Inputs refused on the way in: look, re-drive, dismiss."
)


@events_app.command("schema")
def schema() -> None:
    """Print the canonical event's JSON Schema (docs/reference/event.schema.json)."""
    sys.stdout.write(schema_text())


@events_app.command("tail")
def tail(count: Annotated[int, typer.Option(min=1, max=10_000)] = 20) -> None:
    """The last events in the log."""
    with open_app() as tally:
        log = build_event_log(tally.settings)
        try:
            head = log.head()
            found = log.read(max(0, head - count), count)
        finally:
            log.close()
    table = Table("position", "key", "operator", "player", "amount", "currency", "occurred")
    from tally.kernel.money import format_amount

    for position, e in found:
        table.add_row(
            str(position),
            e.key,
            e.operator,
            e.player,
            format_amount(e.amount, e.currency),
            e.currency,
            e.occurred_at.isoformat(),
        )
    console.print(table)
    console.print(f"head: {head}")


def _desk() -> tuple[QuarantineDesk, Callable[[], None]]:
    """The desk with every re-driver this process can offer (the gateway's for callbacks)."""
    from tally.entrypoints.cli.gateway import open_gateway

    tally = open_app().start()
    backoffice = build_backoffice(tally)
    desk = backoffice.ingest.desk
    parts = open_gateway(tally, backoffice)
    desk.register("callback", parts.gateway.redrive)

    def close() -> None:
        parts.close()
        backoffice.close()
        tally.close()

    return desk, close


@quarantine_app.command("list")
def list_entries(
    status: Annotated[Status | None, typer.Option(help="open, redriven or dismissed")] = None,
    reason: Annotated[Reason | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=1_000)] = 50,
    cursor: Annotated[str | None, typer.Option(help="from a previous page")] = None,
) -> None:
    """Refused inputs, oldest first."""
    with open_app() as tally:
        store = build_input_quarantine(tally.settings)
        page = store.entries(status=status, reason=reason, cursor=cursor, limit=limit)
        counts = store.counts()
    table = Table("id", "received", "source", "channel", "reason", "status", "detail")
    for q in page.items:
        r = q.refused
        table.add_row(
            str(q.id),
            r.received_at.isoformat(timespec="seconds"),
            r.source,
            r.channel,
            r.reason.value,
            q.status.value,
            r.detail[:80],
        )
    console.print(table)
    summary = ", ".join(f"{s}/{r}: {n}" for (s, r), n in sorted(counts.items())) or "empty"
    console.print(f"in quarantine: {summary}")
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}")


@quarantine_app.command("show")
def show(entry_id: int) -> None:
    """One entry with its payload as received."""
    with open_app() as tally:
        entry = build_input_quarantine(tally.settings).get(entry_id)
    if entry is None:
        err_console.print(f"[red]no quarantine entry {entry_id}[/red]")
        raise typer.Exit(1)
    r = entry.refused
    console.print_json(
        json.dumps(
            {
                "id": entry.id,
                "source": r.source,
                "channel": r.channel,
                "reason": r.reason.value,
                "detail": r.detail,
                "received_at": r.received_at.isoformat(),
                "key": r.key,
                "headers": dict(r.headers),
                "status": entry.status.value,
                "resolved_by": entry.resolved_by,
                "resolved_at": entry.resolved_at.isoformat() if entry.resolved_at else None,
                "note": entry.note,
            }
        )
    )
    console.print("[bold]payload as received:[/bold]")
    console.print(r.payload, markup=False, highlight=False)


@quarantine_app.command("redrive")
def redrive(entry_id: int) -> None:
    """Send an entry through the door it came in by, again (after a fix)."""
    desk, close = _desk()
    try:
        outcome = desk.redrive(entry_id, actor=CLI_ACTOR, source="cli")
    except QuarantineError as exc:
        err_console.print(f"[red]{exc.code}:[/red] {exc.message}")
        raise typer.Exit(1) from None
    finally:
        close()
    if not outcome.accepted:
        err_console.print(f"[yellow]still refused:[/yellow] {outcome.detail}")
        raise typer.Exit(2)
    console.print(f"re-driven: {outcome.detail}")


@quarantine_app.command("dismiss")
def dismiss(entry_id: int, note: Annotated[str, typer.Option(help="why")]) -> None:
    """Close an entry without re-driving it (kept, with the note)."""
    desk, close = _desk()
    try:
        desk.dismiss(entry_id, actor=CLI_ACTOR, note=note, source="cli")
    except QuarantineError as exc:
        err_console.print(f"[red]{exc.code}:[/red] {exc.message}")
        raise typer.Exit(1) from None
    finally:
        close()
    console.print(f"dismissed {entry_id}")
