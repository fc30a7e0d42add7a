"""The FastAPI application factory: the routers over the App and Backoffice from bootstrap.

Each router lives in its own module under ``routers/``; this module keeps only what wraps
them all: the metrics middleware, the edge, the error handlers, and the order they are
included in.
"""

from __future__ import annotations

import time

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tally.app.bootstrap import App, Backoffice
from tally.entrypoints.api.deps import Ctx
from tally.entrypoints.api.edge import EdgeMiddleware
from tally.entrypoints.api.errors import install_error_handlers
from tally.entrypoints.api.routers import (
    admin,
    alerts,
    auth,
    config,
    ingest,
    ledger,
    ops,
    payouts,
    reconciliation,
    risk_forecasts,
    settlement,
)
from tally.entrypoints.console import install_console


class MetricsMiddleware:
    """Counts and times every request by its route template (not its raw path)."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            c: Ctx = self.api.state.ctx
            c.bo.metrics.observe_request(
                template, scope["method"], status, time.perf_counter() - started
            )


def create_api(app: App, backoffice: Backoffice) -> FastAPI:
    api = FastAPI(
        title="Tally back-office API",
        version="1",
        description=(
            "Accounts, balances, transfers, the ledger's quarantine, users, API keys and the "
            "audit trail. Amounts are decimal strings; times are ISO 8601 UTC; lists page "
            'with cursors; errors are {"error": {"code", "message"}}.'
        ),
    )
    api.state.ctx = Ctx(app, backoffice)
    install_error_handlers(api)
    for module in (
        ops, auth, ledger, settlement, config, admin, ingest, reconciliation, payouts, alerts,
        risk_forecasts,
    ):  # fmt: skip
        api.include_router(module.router)
    # The console's pages under /console (not in the OpenAPI description).
    install_console(api)
    # Inside the metrics, so that refusals at the edge are counted too.
    api.add_middleware(EdgeMiddleware, api=api)
    api.add_middleware(MetricsMiddleware, api=api)
    return api
