"""Recorded payloads, replayed in order through the real gateway, for every adapter.

Each file under ``recorded/`` is a provider's own requests, byte for byte, with the
status and answer fields the protocol requires. Signatures are made here with the
file's test secrets (a "bad" exchange is signed with a wrong key). Where a body holds
``{session}``, a session token for the file's player (as Tally hands one to a game at
launch) is put in its place before signing; so it is in an expected answer field (a
protocol that hands the session back).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tally.kernel.clock import FixedClock
from tests.providers.signing import SIGNERS
from tests.support.providers import gateway_world

RECORDED = Path(__file__).parent / "recorded"
FILES = sorted(p.stem for p in RECORDED.glob("*.json"))


def _subset(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    return all(actual.get(k) == v for k, v in expected.items())


@pytest.mark.parametrize("protocol", FILES)
def test_recorded_exchanges_get_the_answers_the_protocol_requires(
    protocol: str, tmp_path: Path
) -> None:
    recording = json.loads((RECORDED / f"{protocol}.json").read_text())
    clock = FixedClock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    secrets = {(protocol, k): v for k, v in recording["secrets"].items()}
    sign: Callable[..., tuple[bytes, dict[str, str], dict[str, str]]] = SIGNERS[protocol]
    with gateway_world(tmp_path, clock, secrets, [protocol]) as world:
        player = recording["player"]
        world.open_player(player["id"], player["currency"], player["deposit"])
        token = world.session(protocol, player["id"], player["currency"])
        for exchange in recording["exchanges"]:
            expect = {
                k: v.replace("{session}", token) if isinstance(v, str) else v
                for k, v in exchange["expect"].items()
            }
            exchange = {
                **exchange,
                "body": exchange["body"].replace("{session}", token),
                "expect": expect,
            }
            body, headers, query = sign(exchange, recording["secrets"])
            before = len(world.kept())
            reply = world.call(protocol, exchange["action"], body, headers, query)
            answer = json.loads(reply.body)
            assert reply.status == exchange["status"], (exchange["name"], answer)
            assert _subset(exchange["expect"], answer), (exchange["name"], answer)
            for action_id in exchange.get("actions", []):
                assert action_id in json.dumps(answer), (exchange["name"], answer)
            kept = world.kept()[before:]
            assert kept == ([exchange["quarantined"]] if "quarantined" in exchange else []), (
                exchange["name"]
            )
            clock.advance(timedelta(seconds=1))
        assert world.balance(player["id"], player["currency"]) == recording["final_balance"]
