"""Shared helpers for CLI commands: settings, the app, and Rich output."""

from __future__ import annotations

from rich.console import Console

from tally.app.bootstrap import App, build_app
from tally.app.logging import configure_logging
from tally.app.settings import Settings

console = Console()
err_console = Console(stderr=True)


def open_app() -> App:
    settings = Settings.from_env()
    configure_logging(settings.log_level, json=settings.log_json)
    return build_app(settings)
