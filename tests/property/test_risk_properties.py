"""Properties of the risk watch: how the events are cut into batches, or where a restart
falls, never changes what is said; a game that pays its certificate is never an alert."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tally.risk.detectors.model import Said, WatchEvent
from tally.risk.detectors.rtp import GameRtp, RtpLimits, RtpWatch
from tally.risk.watch import Pipeline, default_detectors
from tally.simulation.incidents import OUTAGE, Incident, stream
from tally.simulation.riskwatch import certified_games, events
from tally.simulation.world import build_world

START = datetime(2026, 3, 2, 10, tzinfo=UTC)
WORLD = build_world(41, START, players=120)
EVENTS = list(
    events(
        stream(
            WORLD,
            minutes=80,
            rounds_per_minute=120,
            seed=41,
            incidents=[
                Incident(
                    OUTAGE,
                    START + timedelta(minutes=45),
                    START + timedelta(minutes=60),
                    region="eu",
                    provider="prov2",
                )
            ],
        )
    )
)


def _said(cuts: list[int], restart_at: int | None) -> tuple[list[Said], dict[str, object]]:
    pipeline = Pipeline(default_detectors(certified_games(WORLD)))
    out: list[Said] = []
    bounds = sorted({0, *cuts, len(EVENTS)})
    for a, b in itertools.pairwise(bounds):
        if restart_at is not None and a == restart_at:
            state = pipeline.state()
            pipeline = Pipeline(default_detectors(certified_games(WORLD)))
            pipeline.load(_json(state))
        pipeline.feed(EVENTS[a:b], out)
    return out, pipeline.state()


def _json(state: dict[str, object]) -> dict[str, object]:
    import orjson

    loaded: dict[str, object] = orjson.loads(orjson.dumps(state))
    return loaded


WHOLE = _said([], None)


@settings(max_examples=8, deadline=None)
@given(st.lists(st.integers(1, len(EVENTS) - 1), max_size=6), st.booleans())
def test_batches_and_a_restart_from_committed_state_say_what_one_pass_says(
    cuts: list[int], restart: bool
) -> None:
    restart_at = sorted(cuts)[0] if cuts and restart else None
    said, state = _said(cuts, restart_at)
    assert said == WHOLE[0]
    assert _json(state) == _json(WHOLE[1])


def test_the_stream_has_something_to_say() -> None:
    assert any(s.kind == "risk.volume.drop" for s in WHOLE[0])


@settings(max_examples=25, deadline=None)
# From 100 minor units up, integer rounding moves a round's multiple by under 1%.
@given(st.lists(st.integers(100, 10_000), min_size=50, max_size=400))
def test_a_game_paying_exactly_its_certificate_is_never_an_alert(stakes: list[int]) -> None:
    watch = RtpWatch([GameRtp("g", Decimal("0.95"), Decimal("0.4"))], RtpLimits(window_bets=25))
    out: list[Said] = []
    for i, stake in enumerate(stakes):
        rid = f"r{i}"
        watch.observe(
            WatchEvent(f"k{i}", "bet", "p", "o", "pl", "g", rid, stake, "EUR", "eu", "a", i, i), out
        )
        win = stake * 95 // 100
        if win:
            watch.observe(
                WatchEvent(f"w{i}", "win", "p", "o", "pl", "g", rid, win, "EUR", "eu", "a", i, i),
                out,
            )
    assert out == []
