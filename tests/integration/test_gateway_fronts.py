"""The gateway as a core and HTTP fronts (ADR 0017): what a front answers when its core
is away or comes back, what the core does with a broken connection, and the real
processes of ``tally gateway serve --fronts``: a front killed is started again, and a
stopped core leaves no front behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tally.entrypoints.gateway.app import CallbackBatches, create_gateway_api
from tally.entrypoints.gateway.fronts import create_front_app
from tally.entrypoints.gateway.relay import RelayServer
from tally.kernel.clock import FixedClock
from tally.providers.softswiss.client import SoftSwissClient
from tests.support.providers import GatewayWorld, gateway_world, relayed_to
from tests.support.waiting import wait_for

TOKEN = "fronts-test-token"
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
FUNDS = 100_000


@pytest.fixture
def core(tmp_path: Path) -> Iterator[tuple[GatewayWorld, CallbackBatches]]:
    secrets = {("softswiss", "auth_token"): TOKEN}
    with gateway_world(tmp_path, FixedClock(T0), secrets, ["softswiss"]) as world:
        world.open_player("p1", "EUR", FUNDS)
        batches = create_gateway_api(world.gateway, world.clock).batches
        assert batches is not None
        batches.start()
        try:
            yield world, batches
        finally:
            batches.stop()


def _bet(i: int, stake: int = 100) -> tuple[str, bytes, dict[str, str]]:
    r = SoftSwissClient(TOKEN).play("p1", "EUR", "acme:g", f"r{i}", [("bet", f"b{i}", stake)])
    return f"/providers/softswiss/{r.action}", r.body, dict(r.headers)


async def _post(app: object, request: tuple[str, bytes, dict[str, str]]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        path, body, headers = request
        return await client.post(path, content=body, headers=headers)


def test_a_front_answers_503_while_its_core_is_away_and_books_again_when_it_is_back(
    core: tuple[GatewayWorld, CallbackBatches],
) -> None:
    world, batches = core
    with tempfile.TemporaryDirectory(prefix="tally-relay-") as private:
        path = Path(private) / "core.sock"
        relay = RelayServer(path, batches.submit)
        relay.start()
        front = create_front_app(path, world.clock)

        async def story() -> list[httpx.Response]:
            """On one event loop, as in a front process: the link drops and is made again."""
            transport = httpx.ASGITransport(app=front)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:

                async def bet(i: int) -> httpx.Response:
                    path, body, headers = _bet(i)
                    return await client.post(path, content=body, headers=headers)

                answers = [await bet(1)]
                relay.stop()  # the core goes away (a restart)
                await asyncio.sleep(0.05)  # the front sees its connection close
                answers += [await bet(2), await client.get("/health")]
                back = RelayServer(path, batches.submit)  # the core is back on its path
                back.start()
                try:
                    answers += [await bet(2), await client.get("/health")]
                finally:
                    back.stop()
                return answers

        first, away, away_health, again, back_health = asyncio.run(story())
    assert first.status_code == 200
    assert away.status_code == 503 and away.headers["retry-after"] == "1"
    assert away_health.status_code == 503
    assert again.status_code == 200 and back_health.status_code == 200
    assert [e.key for e in world.events()] == ["softswiss:b1:bet", "softswiss:b2:bet"]
    assert world.balance("p1") == FUNDS - 200


def test_a_connection_that_breaks_the_protocol_is_closed_and_the_others_go_on(
    core: tuple[GatewayWorld, CallbackBatches],
) -> None:
    world, batches = core
    with relayed_to(batches) as path:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as rogue:
            rogue.connect(str(path))
            rogue.sendall(b"\x00\x00\x00\x20" + b"\xff" * 32)  # a frame that is not a call
            rogue.settimeout(5)
            assert rogue.recv(1) == b""  # closed by the core
        ok = asyncio.run(_post(create_front_app(path, world.clock), _bet(1)))
    assert ok.status_code == 200
    assert [e.key for e in world.events()] == ["softswiss:b1:bet"]


# -- the real processes --------------------------------------------------------------------------
def _tally(env: dict[str, str], *args: str) -> None:
    tally = Path(sys.executable).with_name("tally")
    subprocess.run([str(tally), *args], env=env, check=True, capture_output=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.add(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads processes from /proc (Linux)")
def test_tally_gateway_serve_with_fronts_restarts_a_dead_front_and_stops_them_all(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "TALLY_DATA_DIR": str(tmp_path), "TALLY_LOG_LEVEL": "WARNING"}
    env.pop("TALLY_MODE", None)
    _tally(env, "wallet", "open", "p1", "--operator", "op1", "--currency", "EUR")
    _tally(env, "wallet", "deposit", "p1", "1000.00", "--currency", "EUR", "--reference", "d1")
    _tally(env, "gateway", "secret", "softswiss", "auth_token", "--value", TOKEN)
    port, metrics_port = _free_port(), _free_port()
    tally = Path(sys.executable).with_name("tally")
    serve = ["gateway", "serve", "--port", str(port), "--provider", "softswiss", "--fronts", "2"]
    serve += ["--metrics-port", str(metrics_port)]
    core = subprocess.Popen([str(tally), *serve], env=env)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            assert core.poll() is None, "the gateway exited"
            return False

    def bet(i: int) -> httpx.Response:
        path, body, headers = _bet(i, 1_000)
        return httpx.post(f"{url}{path}", content=body, headers=headers, timeout=5)

    try:
        wait_for("the gateway", healthy)
        assert bet(1).status_code == 200
        fronts = _children(core.pid)
        assert len(fronts) == 2
        os.kill(min(fronts), signal.SIGKILL)
        wait_for("a new front", lambda: len(_children(core.pid) - fronts) == 1)
        wait_for("the gateway", healthy)
        answers = [bet(i) for i in range(2, 12)]  # new connections: both fronts accept
        assert {a.status_code for a in answers} == {200}
        assert json.loads(answers[-1].content)["balance"] == 100_000 - 11 * 1_000
        # Counted once each in the core, across both fronts and the one that died.
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        route = 'route="/providers/softswiss",status="200"'
        assert f'tally_http_requests_total{{method="POST",{route}}} 11.0' in scraped
        assert "tally_ledger_committed_transfers_total 11.0" in scraped
        fronts = _children(core.pid)
    finally:
        core.send_signal(signal.SIGINT)
        assert core.wait(timeout=30) == 0
    wait_for("the fronts to stop", lambda: not any(Path(f"/proc/{f}").exists() for f in fronts))
