"""The back-office console: server-rendered pages under /console (ADR 0024).

``install_console`` adds it to the API application that ``tally serve`` runs: the same
process, sessions, TOTP, roles and partner scope as the API.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from tally.entrypoints.console.gateway_metrics import GatewayMetrics
from tally.entrypoints.console.ops_pages import router as ops_router
from tally.entrypoints.console.pages import ConsoleState, router
from tally.entrypoints.console.security import PREFIX, ConsoleHeaders
from tally.entrypoints.console.web import install_error_pages, static_dir

# Where the gateway's Prometheus endpoint answers (tally gateway --metrics-port), if any.
GATEWAY_METRICS_ENV = "TALLY_CONSOLE_GATEWAY_METRICS"


def install_console(api: FastAPI, gateway_metrics_url: str | None = None) -> None:
    url = gateway_metrics_url or os.environ.get(GATEWAY_METRICS_ENV) or None
    api.state.console = ConsoleState(GatewayMetrics(url) if url else None)
    install_error_pages(api)
    api.include_router(router)
    api.include_router(ops_router)
    api.mount(f"{PREFIX}/static", StaticFiles(directory=static_dir()), name="console-static")
    api.add_middleware(ConsoleHeaders)
