"""The gateway's HTTP face: callbacks through the bare ASGI path and its batches.

A real embedded wallet behind the app; requests go in as HTTP through httpx's ASGI
transport, many at once, so the batching thread gathers several per batch. Every test
runs twice: HTTP in the gateway's process, and HTTP in a front whose callbacks the relay
takes to the core over its Unix socket (ADR 0017).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tally.entrypoints.gateway.app import HARD_BODY_MAX_BYTES, GatewayApp, create_gateway_api
from tally.entrypoints.gateway.fronts import create_front_app
from tally.kernel.clock import FixedClock
from tally.providers.base import Inbound, Outbound
from tally.providers.softswiss.client import SoftSwissClient
from tests.support.providers import GatewayWorld, gateway_world, relayed_to

TOKEN = "http-test-token"
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PLAYERS = ("p1", "p2", "p3")
FUNDS = 100_000


@pytest.fixture(params=["in-process", "relayed"])
def served(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[GatewayWorld, GatewayApp]]:
    secrets = {("softswiss", "auth_token"): TOKEN}
    with gateway_world(tmp_path, FixedClock(T0), secrets, ["softswiss"]) as world:
        for player in PLAYERS:
            world.open_player(player, "EUR", FUNDS)
        app = create_gateway_api(world.gateway, world.clock, batch_max_calls=8)
        assert app.batches is not None
        app.batches.start()  # what the server's lifespan does
        try:
            if request.param == "in-process":
                yield world, app
            else:
                with relayed_to(app.batches) as core:
                    yield world, create_front_app(core, world.clock)
        finally:
            app.batches.stop()


async def _post_all(
    app: GatewayApp, requests: list[tuple[str, bytes, dict[str, str]]]
) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await asyncio.gather(
            *(client.post(path, content=body, headers=headers) for path, body, headers in requests)
        )


def _bets(count: int) -> list[tuple[str, bytes, dict[str, str]]]:
    client = SoftSwissClient(TOKEN)
    out = []
    for i in range(count):
        player = PLAYERS[i % len(PLAYERS)]
        r = client.play(
            player, "EUR", "acme:g", f"r{i}", [("bet", f"b{i}", 100 + i)], finished=False
        )
        out.append((f"/providers/softswiss/{r.action}", r.body, dict(r.headers)))
    return out


def test_concurrent_signed_callbacks_are_each_answered_and_booked_once(
    served: tuple[GatewayWorld, GatewayApp],
) -> None:
    world, app = served
    requests = _bets(60)
    answers = asyncio.run(_post_all(app, requests + requests[:20]))  # 20 sent twice
    assert {a.status_code for a in answers} == {200}
    staked = {p: sum(100 + i for i in range(60) if PLAYERS[i % 3] == p) for p in PLAYERS}
    for player in PLAYERS:
        assert world.balance(player) == FUNDS - staked[player]
    assert len(world.events()) == 60
    # Every answer carries a balance the ledger committed for its player at some point.
    for (_, body, _), answer in zip(requests + requests[:20], answers, strict=True):
        player = json.loads(body)["user_id"]
        assert FUNDS - staked[player] <= json.loads(answer.content)["balance"] < FUNDS


def test_a_bad_signature_is_answered_in_the_protocol_and_kept(
    served: tuple[GatewayWorld, GatewayApp],
) -> None:
    world, app = served
    ((path, body, headers),) = _bets(1)
    headers["x-request-sign"] = "0" * 64
    (answer,) = asyncio.run(_post_all(app, [(path, body, headers)]))
    assert answer.status_code == 403
    assert world.kept() == ["bad_signature"]
    assert world.balance("p1") == FUNDS and world.events() == []


def test_a_body_declared_beyond_the_hard_limit_is_refused_unread(
    served: tuple[GatewayWorld, GatewayApp],
) -> None:
    world, app = served
    ((path, _, headers),) = _bets(1)
    body = b"x" * (HARD_BODY_MAX_BYTES + 1)
    (answer,) = asyncio.run(_post_all(app, [(path, body, headers)]))
    assert answer.status_code == 413
    assert world.kept() == [] and world.events() == []


def test_other_paths_go_to_the_api(served: tuple[GatewayWorld, GatewayApp]) -> None:
    _, app = served

    async def get(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.get(path)

    health = asyncio.run(get("/health"))
    assert health.status_code == 200 and health.json()["status"] == "ok"
    if app.batches is not None:  # a front does not know the providers; its core does
        assert health.json()["providers"] == ["softswiss"]
    assert asyncio.run(get("/providers/softswiss")).status_code == 404
    # No /noop unless asked for (the benchmark's yardstick only).
    assert asyncio.run(get("/noop")).status_code == 404


def test_a_body_streamed_beyond_the_hard_limit_is_refused(
    served: tuple[GatewayWorld, GatewayApp],
) -> None:
    world, app = served
    ((path, _, headers),) = _bets(1)

    async def post() -> httpx.Response:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(HARD_BODY_MAX_BYTES // 65_536 + 2):
                yield b"x" * 65_536

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.post(path, content=chunks(), headers=headers)

    answer = asyncio.run(post())
    assert answer.status_code == 413
    assert world.kept() == [] and world.events() == []


def test_other_methods_on_a_callback_path_are_not_allowed(
    served: tuple[GatewayWorld, GatewayApp],
) -> None:
    _, app = served

    async def put() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.put("/providers/softswiss/play", content=b"{}")

    answer = asyncio.run(put())
    assert answer.status_code == 405 and answer.headers["allow"] == "GET, POST"


def test_a_failed_batch_answers_its_callbacks_and_the_next_batch_goes_through(
    served: tuple[GatewayWorld, GatewayApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    world, app = served
    requests = _bets(2)
    handle_many = world.gateway.handle_many
    failures = iter([True])

    def fails_once(batch: list[tuple[str, Inbound]]) -> list[Outbound]:
        if next(failures, False):
            raise RuntimeError("a defect")
        return handle_many(batch)

    monkeypatch.setattr(world.gateway, "handle_many", fails_once)
    with pytest.raises(Exception, match="the gateway failed: a defect"):
        asyncio.run(_post_all(app, requests[:1]))
    (answer,) = asyncio.run(_post_all(app, requests[1:]))
    assert answer.status_code == 200
    assert [e.key for e in world.events()] == ["softswiss:b1:bet"]


def test_a_batch_that_fails_as_a_whole_is_handled_a_call_at_a_time(
    served: tuple[GatewayWorld, GatewayApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One callback that trips a defect fails alone; its batch mates are answered and
    booked once (the retry a call at a time is idempotent)."""
    world, app = served
    requests = _bets(8)
    handle_many = world.gateway.handle_many
    sizes: list[int] = []

    def poisoned(batch: list[tuple[str, Inbound]]) -> list[Outbound]:
        sizes.append(len(batch))
        outs = handle_many(batch)  # effects committed before the defect shows
        if any(b'"b3"' in inbound.body for _, inbound in batch):
            raise RuntimeError("a defect")
        return outs

    monkeypatch.setattr(world.gateway, "handle_many", poisoned)

    async def post_each() -> list[httpx.Response | BaseException]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await asyncio.gather(
                *(
                    client.post(path, content=body, headers=headers)
                    for path, body, headers in requests
                ),
                return_exceptions=True,
            )

    answers = asyncio.run(post_each())
    assert max(sizes) > 1  # calls were batched, then split
    failed = [i for i, a in enumerate(answers) if isinstance(a, BaseException)]
    assert failed == [3]
    assert all(a.status_code == 200 for a in answers if isinstance(a, httpx.Response))
    keys = [e.key for e in world.events()]
    assert sorted(keys) == sorted(f"softswiss:b{i}:bet" for i in range(8))  # each once
