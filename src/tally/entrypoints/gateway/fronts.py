"""The gateway as a core process and HTTP front processes (ADR 0017).

``serve_with_fronts`` runs in the core process, which holds the gateway (secrets, stores,
the one batching thread). It opens the listening TCP socket and starts ``count`` front
processes (``python -m tally.entrypoints.gateway.fronts``) that all accept on it, each a
uvicorn server with the same ASGI app as a single-process gateway, whose callbacks go to
the core through the relay (``relay.CoreLink``). A front that dies is started again; a
front whose core has gone (its parent changed) stops.

Fronts run in sessions of their own, so a Ctrl-C reaches the core only, and the core
stops them: no front is restarted while the core is stopping.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import structlog
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from tally.entrypoints.gateway.app import GatewayApp
from tally.entrypoints.gateway.relay import CoreLink, RelayServer
from tally.kernel.clock import Clock, SystemClock

log = structlog.get_logger("tally.gateway.fronts")

LISTEN_BACKLOG = 4096
RESTART_PAUSE_S = 0.5  # how often the core looks for fronts that died, and restarts them
STOP_GRACE_S = 10.0  # a front's time to finish its requests after SIGTERM


# -- a front process ----------------------------------------------------------------------------
def create_front_app(core: Path, clock: Clock, *, noop: bool = False) -> GatewayApp:
    """The ASGI app of a front: callbacks relayed to the core at ``core`` (its socket);
    ``/health`` says whether the core answers."""
    link = CoreLink(core)
    api = FastAPI(
        title="Tally provider gateway (front)", docs_url=None, redoc_url=None, openapi_url=None
    )

    @api.get("/health")
    async def health() -> JSONResponse:
        if await link.connect() is None:
            return JSONResponse({"status": "core_unavailable"}, status_code=503)
        return JSONResponse({"status": "ok", "front": os.getpid()})

    return GatewayApp(api, link.handle, clock, noop=noop)


def run_front(listener: socket.socket, core: Path, parent: int, *, noop: bool) -> None:
    """Serve HTTP on ``listener`` until told to stop, or until the core ``parent`` is gone."""
    import uvicorn

    from tally.app.settings import Settings
    from tally.entrypoints.serving import uvicorn_config

    server = uvicorn.Server(
        uvicorn_config(
            create_front_app(core, SystemClock(), noop=noop),
            # The front inherits the core's environment, so it trusts the same proxies.
            Settings.from_env().trusted_proxies,
            loop="uvloop",
            http="httptools",
            log_level="warning",
            access_log=False,
        )
    )

    async def serve() -> None:
        async def orphaned() -> None:
            while os.getppid() == parent:
                await asyncio.sleep(1.0)
            log.warning("front_core_gone", front=os.getpid())
            server.should_exit = True

        watch = asyncio.create_task(orphaned())
        try:
            await server.serve(sockets=[listener])
        finally:
            watch.cancel()

    import uvloop

    uvloop.run(serve())


# -- the core process ---------------------------------------------------------------------------
class Fronts:
    """``count`` front processes accepting on ``listener``, each started again if it dies."""

    def __init__(self, listener: socket.socket, core: Path, count: int, *, noop: bool) -> None:
        self._listener = listener
        self._core = core
        self._count = count
        self._noop = noop
        self._processes: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._watch: threading.Thread | None = None

    def start(self) -> None:
        self._listener.set_inheritable(True)
        self._processes = [self._spawn() for _ in range(self._count)]
        self._watch = threading.Thread(target=self._restart_dead, name="gateway-fronts")
        self._watch.daemon = True
        self._watch.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._watch is not None:
            self._watch.join()
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for process in self._processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _spawn(self) -> subprocess.Popen[bytes]:
        fd = self._listener.fileno()
        argv = [sys.executable, "-m", __name__, "--fd", str(fd), "--core", str(self._core)]
        argv += ["--parent", str(os.getpid())] + (["--noop"] if self._noop else [])
        return subprocess.Popen(argv, pass_fds=(fd,), start_new_session=True)  # noqa: S603 - our own interpreter and module

    def _restart_dead(self) -> None:
        while not self._stopping.wait(RESTART_PAUSE_S):
            for i, process in enumerate(self._processes):
                if process.poll() is not None and not self._stopping.is_set():
                    log.error("front_died", front=process.pid, code=process.returncode)
                    self._processes[i] = self._spawn()


def serve_with_fronts(
    core: GatewayApp,
    host: str,
    port: int,
    count: int,
    *,
    noop: bool = False,
) -> None:
    """The core: the batches of ``core`` (a single-process gateway's app, whose HTTP
    it leaves to the fronts) and the relay running, ``count`` fronts on ``host:port``,
    until SIGINT or SIGTERM; then the fronts stop first, and the batches answer what
    waits."""
    batches = core.batches
    if batches is None:
        raise ValueError("a front's app has no batches: the core serves a gateway's app")
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    listener = socket.create_server((host, port), backlog=LISTEN_BACKLOG)
    with tempfile.TemporaryDirectory(prefix="tally-gateway-") as private:  # mode 0700
        relay = RelayServer(Path(private) / "core.sock", batches.submit)
        batches.start()
        relay.start()
        fronts = Fronts(listener, relay.path, count, noop=noop)
        try:
            fronts.start()
            stop.wait()
        finally:
            fronts.stop()
            listener.close()
            relay.stop()
            batches.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A gateway front process (started by the core).")
    parser.add_argument("--fd", type=int, required=True, help="the listening socket, inherited")
    parser.add_argument("--core", type=Path, required=True, help="the core's relay socket")
    parser.add_argument("--parent", type=int, required=True, help="the core's process id")
    parser.add_argument("--noop", action="store_true", help="also serve the benchmark's /noop")
    args = parser.parse_args(argv)
    run_front(socket.socket(fileno=args.fd), args.core, args.parent, noop=args.noop)


if __name__ == "__main__":
    main()
