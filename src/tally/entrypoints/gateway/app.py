"""The gateway's HTTP face: ``/providers/{provider}/{action}`` in, the provider's answer out.

It does no parsing of its own: the body is read as bytes (up to a named limit) and the
provider's adapter does the rest, so what is verified is exactly what was signed. The
blocking wallet call runs in the thread pool; the answer is sent only after the ledger
and the event log have committed.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool

from tally.app.metrics import Metrics
from tally.kernel.clock import Clock
from tally.providers.base import Inbound
from tally.providers.gateway import Gateway

HARD_BODY_MAX_BYTES = 1024 * 1024  # refused unread; up to it, the adapter answers


def create_gateway_api(
    gateway: Gateway, clock: Clock, metrics: Metrics | None = None, *, noop: bool = False
) -> FastAPI:
    """``noop`` adds ``POST /noop``: reads the body, does nothing, answers; the benchmark's
    yardstick for what this server costs before any work."""
    api = FastAPI(title="Tally provider gateway", docs_url=None, redoc_url=None)

    if noop:

        @api.post("/noop")
        async def nothing(request: Request) -> Response:
            await request.body()
            return Response(b'{"balance":0}', 200, media_type="application/json")

    @api.get("/health")
    def health() -> dict[str, object]:
        return {"status": "ok", "providers": gateway.registry.providers()}

    @api.api_route("/providers/{provider}/{action:path}", methods=["POST", "GET"])
    async def callback(provider: str, action: str, request: Request) -> Response:
        started = time.perf_counter()
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > HARD_BODY_MAX_BYTES:
            # Not even read: far beyond any callback (the adapter refuses smaller excess).
            return Response(b'{"error":"body_too_large"}', 413, media_type="application/json")
        inbound = Inbound(
            action=action,
            body=await request.body(),
            received_at=clock.now(),
            headers={k.lower(): v for k, v in request.headers.items()},
            query=dict(request.query_params),
            remote=request.client.host if request.client else "",
            method=request.method,
        )
        out = await run_in_threadpool(gateway.handle, provider, inbound)
        if metrics is not None:
            metrics.observe_request(
                f"/providers/{provider}", request.method, out.status, time.perf_counter() - started
            )
        return Response(out.body, out.status, dict(out.headers), media_type=out.content_type)

    return api
