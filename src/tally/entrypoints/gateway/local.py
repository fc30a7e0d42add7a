"""The gateway served in this process on a free local port, for a simulation's run.

An HTTP server and client are an entrypoint's business: the simulation is handed
:func:`served` (a ``tally.simulation.run.Serve``) by the ``tally simulate`` command.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from tally.entrypoints.gateway.app import create_gateway_api
from tally.kernel.clock import FixedClock
from tally.providers.gateway import Gateway

SERVER_START_S = 10.0  # how long the run waits for its gateway to listen
CONNECTIONS = 8  # kept-alive connections: one per concurrent sender of the simulation


@contextmanager
def served(
    gateway: Gateway, clock: FixedClock
) -> Iterator[Callable[[str, bytes, dict[str, str]], int]]:
    """The gateway on a local port for the run; yields a poster of signed callbacks."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_gateway_api(gateway, clock),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, name="simulation-gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_S
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the simulation's gateway did not start")
        time.sleep(0.02)
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:

        def post(path: str, body: bytes, headers: dict[str, str]) -> int:
            return client.post(path, content=body, headers=headers).status_code

        try:
            yield post
        finally:
            server.should_exit = True
            thread.join()
