"""Shared helpers for CLI commands: settings, the app, and Rich output."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

from tally.app.bootstrap import App, build_app
from tally.app.logging import configure_logging
from tally.app.settings import Settings
from tally.audit.service import Auditing

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


@contextmanager
def cli_auditing(tally: App, *, actor: str = CLI_ACTOR, source: str = "cli") -> Iterator[Auditing]:
    """Who a command changes things as, and the audit trail its use case writes on (in
    the change's own transaction)."""
    from tally.app.bootstrap import build_backoffice

    backoffice = build_backoffice(tally)
    try:
        yield Auditing(backoffice.store, actor, source)
    finally:
        backoffice.close()
