"""Inputs built to break a parser (JSON nested 1,000 deep, ids thousands of characters
long) are answered in each protocol's own error format as a bad request, never as an
error the provider retries for ever, and kept in the quarantine with their reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tally.kernel.clock import FixedClock
from tests.providers.signing import SIGNERS
from tests.providers.test_hub88_protocol import KEYS as HUB88_KEYS
from tests.support.providers import GatewayWorld, gateway_world

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SECRETS = {
    "softswiss": {"auth_token": "hostile-softswiss"},
    "evolution": {"auth_token": "hostile-evolution"},
    "pragmatic": {"secret_key": "hostile-pragmatic"},
    "hub88": HUB88_KEYS,
}
DEEP = "[" * 1_000 + "]" * 1_000
LONG = "x" * 10_000
MEDIUM = "y" * 120  # within each protocol's text limit, beyond the wallet's id limit


@pytest.fixture
def world(tmp_path: Path) -> Iterator[GatewayWorld]:
    secrets = {(p, k): v for p, named in SECRETS.items() for k, v in named.items()}
    with gateway_world(tmp_path, FixedClock(T0), secrets, list(SECRETS)) as w:
        w.open_player("p1", "EUR", 10_000)
        yield w


def _softswiss(action_id: str, extra: str = "") -> tuple[str, str]:
    bet = {"action": "bet", "amount": 100, "action_id": action_id}
    body = {"user_id": "p1", "currency": "EUR", "game_id": "g1", "actions": [bet]}
    raw = json.dumps(body)
    return "play", raw[:-1] + (f',"x":{extra}' if extra else "") + "}"


def _evolution(ref: str, extra: str = "") -> tuple[str, str]:
    body = {
        "sid": "s",
        "userId": "p1",
        "currency": "EUR",
        "uuid": "u1",
        "game": {"id": "g1", "type": "baccarat"},
        "transaction": {"id": "t1", "refId": ref, "amount": 1},
    }
    raw = json.dumps(body)
    return "credit", raw[:-1] + (f',"x":{extra}' if extra else "") + "}"


def _hub88(tid: str, extra: str = "") -> tuple[str, str]:
    body = {
        "user": "p1",
        "request_uuid": "r1",
        "transaction_uuid": tid,
        "round": "g1",
        "currency": "EUR",
        "amount": 100_000,
    }
    raw = json.dumps(body)
    return "transaction/win", raw[:-1] + (f',"meta":{extra}' if extra else "") + "}"


def _pragmatic(reference: str) -> tuple[str, str]:
    return "result.html", f"userId=p1&gameId=g&roundId=r1&amount=1.00&reference={reference}"


CASES = {
    "softswiss deep": ("softswiss", _softswiss("a1", DEEP)),
    "softswiss long id": ("softswiss", _softswiss(LONG)),
    "softswiss medium id": ("softswiss", _softswiss(MEDIUM)),
    "evolution deep": ("evolution", _evolution("b1", DEEP)),
    "evolution long id": ("evolution", _evolution(LONG)),
    "evolution medium id": ("evolution", _evolution(MEDIUM)),
    "hub88 deep": ("hub88", _hub88("w1", DEEP)),
    "hub88 long id": ("hub88", _hub88(LONG)),
    "hub88 medium id": ("hub88", _hub88(MEDIUM)),
    "pragmatic long id": ("pragmatic", _pragmatic("z" * 250)),
    "pragmatic medium id": ("pragmatic", _pragmatic(MEDIUM)),
}
# What each protocol answers to a request it cannot read (its "bad request").
BAD_REQUEST = {
    "softswiss": lambda status, body: status == 400 and body["code"] == 400,
    "evolution": lambda status, body: status == 200 and body["status"] == "INVALID_PARAMETER",
    "hub88": lambda status, body: status == 200 and body["status"] == "RS_ERROR_WRONG_SYNTAX",
    "pragmatic": lambda status, body: status == 200 and body["error"] == 7,
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_input_is_a_bad_request_in_the_protocol_and_is_kept(
    world: GatewayWorld, case: str
) -> None:
    provider, (action, text) = CASES[case]
    body, headers, query = SIGNERS[provider]({"body": text}, SECRETS[provider])
    reply = world.call(provider, action, body, headers, query)
    answer = json.loads(reply.body)
    assert BAD_REQUEST[provider](reply.status, answer), (reply.status, answer)
    assert world.kept() == ["malformed"]
    assert world.balance("p1") == 10_000 and world.events() == []
