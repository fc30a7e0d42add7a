"""A webhook receiver on a real local port, for the PSP rail's tests: it verifies each
webhook as the API's receiver will (tally.adapters.payouts.webhooks.read_webhook)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tally.adapters.payouts.webhooks import WebhookRefused, read_webhook
from tally.kernel.clock import Clock, SystemClock
from tally.payouts.rails import RailAnswer


class ServedApp:
    """Any ASGI app on 127.0.0.1 and a free port, in a thread of its own."""

    def __init__(self, app: Any) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: self._server.run(sockets=[self._socket]), daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline and self._thread.is_alive(), "did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


class WebhookReceiver:
    def __init__(self, secret: str, clock: Clock | None = None) -> None:
        self.secret = secret
        self.clock = clock or SystemClock()
        self.lock = threading.Lock()
        self.answers: list[RailAnswer] = []
        self.refusals: list[str] = []
        self._served = ServedApp(
            Starlette(routes=[Route("/webhooks/psp", self._receive, methods=["POST"])])
        )
        self.url = self._served.url + "/webhooks/psp"

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            answer = read_webhook(headers, body, self.secret, self.clock.now())
        except WebhookRefused as refused:
            with self.lock:
                self.refusals.append(refused.code)
            return Response(status_code=401)
        with self.lock:
            self.answers.append(answer)
        return Response(status_code=204)

    def snapshot(self) -> list[RailAnswer]:
        with self.lock:
            return list(self.answers)

    def __enter__(self) -> WebhookReceiver:
        self._served.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._served.stop()
