"""Deliveries over real HTTP: a local receiver checks the webhook's signature, and
Alertmanager's path gets the v2 body; a receiver that is down leaves the delivery pending
for its next attempt."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tally.adapters.memory.backoffice import MemoryBackofficeStore
from tally.adapters.memory.risk import MemoryAlertStore
from tally.adapters.webhooks import HttpTransport
from tally.audit.chain import Sealer
from tally.kernel.alerts import AlertSignal, Severity
from tally.kernel.clock import FixedClock
from tally.risk.alerts import AlertService
from tally.risk.delivery import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    Deliverer,
    Sink,
    SinkKind,
    Sinks,
    verify,
)
from tally.risk.ports import DeliveryStatus

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append({"path": self.path, "body": body, "headers": dict(self.headers)})
            ok = self.path == "/api/v2/alerts" or verify(
                "hook-secret", self.headers[SIGNATURE_HEADER], body
            )
            self.send_response(200 if ok else 401)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", got
    server.shutdown()
    server.server_close()


def test_a_signed_webhook_and_an_alertmanager_push_reach_a_real_receiver(
    receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    url, got = receiver
    sinks = Sinks(
        [
            Sink("ops", SinkKind.WEBHOOK, f"{url}/hook", "hook-secret"),
            Sink("am", SinkKind.ALERTMANAGER, url),
            Sink("down", SinkKind.WEBHOOK, "http://127.0.0.1:9/none", "x"),
        ]
    )
    store = MemoryAlertStore()
    clock = FixedClock(T)
    service = AlertService(store, MemoryBackofficeStore(Sealer(b"k" * 32)), clock, sinks=sinks)
    transport = HttpTransport()
    try:
        service.signal(
            AlertSignal("risk.provider_outage", "acme/eu", Severity.CRITICAL, "no callbacks", T,
                        provider="acme", region="eu")
        )  # fmt: skip
        assert Deliverer(store, sinks, transport, clock).run_once() == (2, 1)
    finally:
        transport.close()
    by_path = {g["path"]: g for g in got}
    hook = by_path["/hook"]
    assert json.loads(hook["body"])["alert"]["kind"] == "risk.provider_outage"
    assert hook["headers"][DELIVERY_HEADER].isdigit()
    (am,) = json.loads(by_path["/api/v2/alerts"]["body"])
    assert am["labels"]["alertname"] == "risk.provider_outage"
    states = {d.sink: d for d in store.deliveries()}
    assert states["webhook:ops"].status is DeliveryStatus.DELIVERED
    assert states["alertmanager:am"].status is DeliveryStatus.DELIVERED
    down = states["webhook:down"]
    assert down.status is DeliveryStatus.PENDING and down.attempts == 1
    assert down.last_error.startswith("unreachable")
