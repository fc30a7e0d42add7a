"""Pragmatic Play: any order and any repetition of a round's callbacks ends the same."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally.kernel.clock import FixedClock
from tests.providers.signing import pragmatic
from tests.support.providers import GatewayWorld, gateway_world

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
STAMP = "1772452800000"
SECRET = "pp-secret"
BASE = "providerId=PragmaticPlay&userId=p1&gameId=vs20&"
ROUND = [
    ("bet.html", BASE + f"roundId=R1&amount=10.00&reference=B1&timestamp={STAMP}"),
    ("bet.html", BASE + f"roundId=R1&amount=5.00&reference=B2&timestamp={STAMP}"),
    ("result.html", BASE + f"roundId=R1&amount=7.00&reference=W1&timestamp={STAMP}"),
    ("refund.html", BASE + "roundId=R1&reference=B2"),
    ("endRound.html", BASE + "roundId=R1"),
]


def deliver(world: GatewayWorld, action: str, form: str) -> int:
    body, headers, _ = pragmatic({"body": form}, {"secret_key": SECRET})
    return world.call("pragmatic", action, body, headers).status


def play(tmp_path: Path, order: list[int]) -> tuple[int, set[str], list[str]]:
    secrets = {("pragmatic", "secret_key"): SECRET}
    with gateway_world(tmp_path, FixedClock(T0), secrets, ["pragmatic"]) as world:
        world.open_player("p1", "EUR", 10_000)
        for i in order:
            assert deliver(world, *ROUND[i]) == 200
        return world.balance("p1"), {e.key for e in world.events()}, world.kept()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    order=st.permutations(range(len(ROUND))),
    repeats=st.lists(
        st.integers(min_value=1, max_value=3), min_size=len(ROUND), max_size=len(ROUND)
    ),
)
def test_any_order_and_any_repetition_of_a_round_ends_the_same(
    tmp_path_factory: object, order: list[int], repeats: list[int]
) -> None:
    base = tmp_path_factory.mktemp("in-order")  # type: ignore[attr-defined]
    want = play(base, list(range(len(ROUND))))
    assert want[0] == 10_000 - 1_000 + 700
    deliveries = [i for i in order for _ in range(repeats[i])]
    got = play(tmp_path_factory.mktemp("shuffled"), deliveries)  # type: ignore[attr-defined]
    assert got == want
