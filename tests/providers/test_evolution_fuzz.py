"""Evolution: whatever arrives, the gateway answers in the protocol's format and moves
money or writes events only for a valid request carrying the right api token."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tally.kernel.clock import FixedClock
from tally.providers.base import Inbound, Refusal
from tally.providers.evolution import EvolutionAdapter
from tally.providers.evolution.adapter import CALLS, STATUSES
from tests.support.providers import GatewayWorld, gateway_world

TOKEN = "ZXZvLWZ1enotdG9rZW4"
PLAYER = "p-fuzz"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.decimals(allow_nan=False, allow_infinity=False).map(str)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
amount_texts = st.one_of(
    st.decimals(min_value=-10, max_value=10**6, allow_nan=False, allow_infinity=False).map(
        lambda d: str(d) if "E" not in str(d).upper() else "1"
    ),
    st.sampled_from(
        [
            "1e2",
            "1E-3",
            "NaN",
            "Infinity",
            "-0",
            "0.001",
            "00.5",
            '"5"',
            "true",
            "1E+999999999999999999",
        ]
    ),
    st.builds(lambda m, e: f"{m}E{e}", st.integers(-99, 99), st.integers(-(10**20), 10**20)),
)


@contextmanager
def _world() -> Iterator[tuple[GatewayWorld, str]]:
    clock = FixedClock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    with (
        tempfile.TemporaryDirectory() as tmp,
        gateway_world(Path(tmp), clock, {("evolution", "auth_token"): TOKEN}, ["evolution"]) as w,
    ):
        w.open_player(PLAYER, "EUR", 10**9)
        yield w, w.session("evolution", PLAYER, "EUR")


def _valid(action: str, body: bytes, token: str) -> bool:
    """The adapter's own judgement: a call is valid when it is authentic and parses."""
    if token != TOKEN:
        return False
    try:
        EvolutionAdapter().parse(Inbound(action, body, datetime(2026, 3, 2, tzinfo=UTC)))
    except Refusal:
        return False
    return True


def _send(world: GatewayWorld, action: str, body: bytes, token: str) -> tuple[dict[str, Any], bool]:
    """Send one request; the answer, and whether money or events moved."""
    before = (world.balance(PLAYER, "EUR"), len(world.events()))
    reply = world.call("evolution", action, body, {}, {"authToken": token})
    moved = (world.balance(PLAYER, "EUR"), len(world.events())) != before
    assert reply.status == 200
    answer = json.loads(reply.body, parse_float=Decimal)
    assert isinstance(answer, dict)
    assert answer["status"] in STATUSES, answer
    assert isinstance(answer.get("uuid", ""), str)
    if answer["status"] == "OK":
        # A success names the balance (or, for /check, the session) as Evolution reads it.
        if action == "check":
            assert isinstance(answer["sid"], str)
        else:
            assert isinstance(answer["balance"], int | Decimal)
    return answer, moved


def test_arbitrary_bodies_are_answered_in_evolution_format_and_move_nothing() -> None:
    with _world() as (world, _):

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            action=st.sampled_from([*CALLS, "sid", "", "../debit", "DEBIT"]),
            body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
            token=st.sampled_from([TOKEN, "", "wrong", TOKEN + " "]),
        )
        def run(action: str, body: bytes, token: str) -> None:
            answer, moved = _send(world, action, body, token)
            if not _valid(action, body, token):
                assert not moved, (action, body, answer)
                assert answer["status"] != "OK"

        run()


def _valid_body(action: str, sid: str, n: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sid": sid,
        "userId": PLAYER,
        "currency": "EUR",
        "game": {"id": f"g-{n}", "type": "roulette", "details": {"table": {"id": "t-1"}}},
        "transaction": {"id": f"t-{n}", "refId": f"r-{n}", "amount": "AMOUNT"},
        "uuid": f"u-{n}",
    }
    if action == "promo_payout":
        del body["transaction"]
        body["promoTransaction"] = {"type": "FreeRoundPlayableSpent", "id": f"p-{n}"}
        body["promoTransaction"]["amount"] = "AMOUNT"
    return body


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, str, list[tuple[str, ...]], Any, str]:
    action = draw(st.sampled_from(["debit", "credit", "cancel", "balance", "promo_payout"]))
    path = draw(
        st.sampled_from(
            [
                ("sid",),
                ("userId",),
                ("currency",),
                ("uuid",),
                ("game",),
                ("game", "type"),
                ("game", "details"),
                ("transaction",),
                ("transaction", "id"),
                ("transaction", "refId"),
                ("promoTransaction",),
            ]
        )
    )
    how = draw(st.sampled_from(["drop", "replace", "keep"]))
    value = draw(json_values)
    amount = draw(amount_texts)
    return action, how, [path], value, amount


def test_mutated_requests_never_move_money_unless_valid_and_correctly_signed() -> None:
    with _world() as (world, sid):
        counter = iter(range(10**9))

        @settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
        @given(mutation=mutations(), token=st.sampled_from([TOKEN, TOKEN, "wrong"]))
        def run(mutation: tuple[str, str, list[tuple[str, ...]], Any, str], token: str) -> None:
            action, how, paths, value, amount = mutation
            n = next(counter)
            body = _valid_body(action, sid, n)
            if action == "credit" and n % 2:
                # Half the credits settle a bet that was taken, so some of them succeed.
                world.call(
                    "evolution",
                    "debit",
                    _encode(_valid_body("debit", sid, n), "1.00"),
                    {},
                    {"authToken": TOKEN},
                )
            for path in paths:
                target: Any = body
                for key in path[:-1]:
                    target = target.get(key) if isinstance(target, dict) else None
                if isinstance(target, dict):
                    if how == "drop":
                        target.pop(path[-1], None)
                    elif how == "replace":
                        target[path[-1]] = value
            raw = _encode(body, amount)
            answer, moved = _send(world, action, raw, token)
            event(f"{action}: {answer['status']}")
            if moved:
                assert _valid(action, raw, token), (action, raw, answer)
            if token != TOKEN:
                assert answer["status"] == "INVALID_TOKEN_ID"

        run()


def _encode(body: dict[str, Any], amount: str) -> bytes:
    # The amount goes in as raw JSON text, exactly as the test drew it.
    return json.dumps(body).replace('"AMOUNT"', amount).encode()
