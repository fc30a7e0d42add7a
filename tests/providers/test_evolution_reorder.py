"""Evolution: a round's callbacks, duplicated and reordered, end as if each came once in order.

The round: two debits (blackjack), a credit for the first, a cancel of the second. What
may be reordered follows the protocol: Evolution sends a credit only after its debit was
answered (so the credit's first delivery follows the debit's first delivery), while
retries of anything, a late (retried) debit and a cancel sent for a debit whose answer
was lost may arrive at any point.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tally.kernel.clock import FixedClock
from tests.support.providers import gateway_world

TOKEN = "ZXZvLXJlb3JkZXItdG9rZW4"
PLAYER = "p-round"
ROUND = "g-77"


def _body(sid: str, tx: str, ref: str, amount: str, uuid: str) -> str:
    return json.dumps(
        {
            "sid": sid,
            "userId": PLAYER,
            "currency": "EUR",
            "game": {"id": ROUND, "type": "blackjack", "details": {"table": {"id": "bj-1"}}},
            "transaction": {"id": tx, "refId": ref, "amount": "AMOUNT"},
            "uuid": uuid,
        }
    ).replace('"AMOUNT"', amount)


# name -> (action, transaction id, refId, amount)
CALLBACKS = {
    "debit-a": ("debit", "d-a", "r-a", "5.00"),
    "debit-b": ("debit", "d-b", "r-b", "2.50"),
    "credit-a": ("credit", "c-a", "r-a", "12.00"),
    "cancel-b": ("cancel", "d-b", "r-b", "2.50"),
}
IN_ORDER = ["debit-a", "debit-b", "credit-a", "cancel-b"]


def _play(deliveries: list[str]) -> tuple[int, set[str], set[str]]:
    """Deliver in this order to a fresh wallet: final balance, event keys, game types."""
    clock = FixedClock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    with tempfile.TemporaryDirectory() as tmp:
        secrets = {("evolution", "auth_token"): TOKEN}
        with gateway_world(Path(tmp), clock, secrets, ["evolution"]) as world:
            world.open_player(PLAYER, "EUR", 10_000)
            sid = world.session("evolution", PLAYER, "EUR")
            for i, name in enumerate(deliveries):
                action, tx, ref, amount = CALLBACKS[name]
                body = _body(sid, tx, ref, amount, f"u-{i}").encode()
                reply = world.call("evolution", action, body, {}, {"authToken": TOKEN})
                assert reply.status == 200
                assert json.loads(reply.body)["status"] in {
                    "OK",
                    "BET_DOES_NOT_EXIST",  # the cancel came before its debit
                    "BET_ALREADY_SETTLED",  # the debit came after its cancel
                    "BET_ALREADY_EXIST",  # the debit delivered again: nothing taken twice
                }, (deliveries, name, reply.body)
                clock.advance(timedelta(milliseconds=250))
            events = world.events()
            return (
                world.balance(PLAYER, "EUR"),
                {e.key for e in events},
                {e.game_type for e in events},
            )


@st.composite
def deliveries(draw: st.DrawFn) -> list[str]:
    copies = [name for name in IN_ORDER for _ in range(draw(st.integers(1, 3)))]
    order = draw(st.permutations(copies))
    # Evolution credits a debit only after that debit was answered.
    assume(order.index("debit-a") < order.index("credit-a"))
    return order


@cache
def _expected() -> tuple[int, frozenset[str], frozenset[str]]:
    balance, keys, game_types = _play(IN_ORDER)
    return balance, frozenset(keys), frozenset(game_types)


def test_in_order_single_delivery_takes_one_stake_and_pays_the_win() -> None:
    balance, keys, game_types = _expected()
    assert balance == 10_000 - 500 + 1200
    assert keys == {
        "evolution:r-a:bet",
        "evolution:r-b:bet",
        "evolution:r-a:win",
        "evolution:r-b:rollback",
    }
    assert game_types == {"blackjack"}


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(order=deliveries())
def test_any_interleaving_with_duplicates_ends_like_in_order_single_delivery(
    order: list[str],
) -> None:
    balance, keys, game_types = _play(order)
    assert (balance, frozenset(keys), frozenset(game_types)) == _expected()
