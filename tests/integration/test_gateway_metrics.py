"""The gateway's Prometheus metrics: every callback counted once in the core, whichever
front took it, by provider and status; served on a local port of their own."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tally.app.metrics import Metrics, serve_metrics
from tally.entrypoints.gateway.app import create_gateway_api
from tally.entrypoints.gateway.fronts import create_front_app
from tally.kernel.clock import FixedClock
from tally.providers.softswiss.client import SoftSwissClient
from tests.support.providers import gateway_world, relayed_to

TOKEN = "metrics-test-token"
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ROUTE = 'tally_http_requests_total{method="POST",route="%s",status="%d"}'


def _bet(i: int, token: str = TOKEN) -> tuple[str, bytes, dict[str, str]]:
    r = SoftSwissClient(token).play("p1", "EUR", "acme:g", f"r{i}", [("bet", f"b{i}", 100)])
    return f"/providers/softswiss/{r.action}", r.body, dict(r.headers)


async def _post(app: object, request: tuple[str, bytes, dict[str, str]]) -> int:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        path, body, headers = request
        return (await client.post(path, content=body, headers=headers)).status_code


def test_callbacks_are_counted_in_the_core_by_provider_and_status(tmp_path: Path) -> None:
    metrics = Metrics()
    secrets = {("softswiss", "auth_token"): TOKEN}
    with gateway_world(tmp_path, FixedClock(T0), secrets, ["softswiss"]) as world:
        world.open_player("p1", "EUR", 100_000)
        app = create_gateway_api(world.gateway, world.clock, metrics)
        assert app.batches is not None
        app.batches.start()
        try:
            with relayed_to(app.batches) as core:
                front = create_front_app(core, world.clock)

                async def story() -> list[int]:
                    return [
                        await _post(front, _bet(1)),
                        await _post(front, _bet(2)),
                        await _post(app, _bet(3)),  # the core's own HTTP
                        await _post(front, _bet(4, token="forged")),
                        await _post(front, ("/providers/made-up-name/play", b"{}", {})),
                    ]

                statuses = asyncio.run(story())
        finally:
            app.batches.stop()
    refused = statuses[3]
    assert statuses == [200, 200, 200, refused, 404] and refused >= 400
    text = metrics.render().decode()
    assert f"{ROUTE % ('/providers/softswiss', 200)} 3.0" in text
    assert f"{ROUTE % ('/providers/softswiss', refused)} 1.0" in text
    # A provider nobody registered is counted under the template: callers make no labels.
    assert f"{ROUTE % ('/providers/{provider}', 404)} 1.0" in text
    assert "made-up-name" not in text
    timed = 'tally_http_request_seconds_count{method="POST",route="/providers/softswiss"}'
    assert f"{timed} 4.0" in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_metrics_are_served_on_a_local_port_until_stopped() -> None:
    metrics = Metrics()
    metrics.observe_commit(12, 0.004)
    port = _free_port()
    stop = serve_metrics(metrics, port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            body = r.read().decode()
        assert "tally_ledger_committed_transfers_total 12.0" in body
        assert "tally_ledger_commit_seconds_count 1.0" in body
    finally:
        stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
