"""Shared helpers for CLI commands: settings, the app, and Rich output."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from rich.console import Console

from tally.app.bootstrap import App, build_app
from tally.app.logging import configure_logging
from tally.app.settings import Settings
from tally.settlement.statements import Statement

console = Console()
err_console = Console(stderr=True)


def open_app(
    *, gateway: bool = False, on_commit: Callable[[int, float], None] | None = None
) -> App:
    """The app from the environment's settings (``gateway``: as a gateway process runs;
    ``on_commit``: told of each ledger commit, its transfers and seconds)."""
    settings = Settings.from_env()
    if gateway:
        settings = settings.for_gateway()
    configure_logging(settings.log_level, json=settings.log_json)
    return build_app(settings, on_commit=on_commit)


CLI_ACTOR = "system:cli"


def audit_change(
    tally: App,
    action: str,
    target: str,
    *,
    after: Mapping[str, Any] | None = None,
    actor: str = CLI_ACTOR,
    source: str = "cli",
) -> None:
    """Append a change made from the command line to the audit trail."""
    from tally.app.bootstrap import build_backoffice
    from tally.audit.chain import AuditEntry

    backoffice = build_backoffice(tally)
    try:
        backoffice.audit.record(
            AuditEntry(actor, action, target, tally.clock.now(), source, None, after)
        )
    finally:
        backoffice.close()


def statement_closed_auditor(
    tally: App, actor: str, source: str
) -> Callable[[Statement, datetime], None]:
    """An ``on_close`` hook for settlement workers: each closed period goes on record."""

    def on_close(statement: Statement, now: datetime) -> None:
        audit_change(
            tally,
            "period.closed",
            f"period:{statement.terms.contract_id}:{statement.operator}:{statement.period.label}",
            after={
                "sha256": statement.sha256,
                "fee": statement.fee.fee,
                "currency": statement.terms.settlement_currency,
            },
            actor=actor,
            source=source,
        )

    return on_close
