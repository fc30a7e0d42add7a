"""A small seed of the labelled-incident benchmark (``python -m bench risk`` runs the
full one): every kind of incident is caught in its window, nothing else is said, and a
clean stretch says nothing at all."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from tally.kernel.alerts import AlertSignal
from tally.simulation.incidents import KINDS, plan
from tally.simulation.riskwatch import run
from tally.simulation.scoring import answers, opened, score
from tally.simulation.world import build_world

START = datetime(2026, 3, 2, tzinfo=UTC)


def test_a_day_with_one_incident_of_each_kind_is_caught_and_nothing_else_is_said() -> None:
    world = build_world(21, START, players=400)
    result = run(
        world, minutes=24 * 60, rounds_per_minute=100, per_kind=1, seed=21, warmup_minutes=60
    )
    summary = result.score.summary()
    assert sorted(x.kind for x in result.incidents) == sorted(KINDS)
    assert result.score.recall >= 0.9, summary
    assert result.score.precision >= 0.8, summary
    # At half the benchmark's traffic (100 rounds a minute, not 200) an outage takes a
    # minute longer to be sure of; the benchmark holds the 2-minute target.
    assert result.score.median_delay_s <= 180, summary


def test_a_clean_stretch_raises_no_alert() -> None:
    world = build_world(22, START, players=400)
    result = run(world, minutes=6 * 60, rounds_per_minute=100, per_kind=0, seed=22)
    assert opened(result.said) == []


def test_incidents_are_planned_in_busy_hours_one_at_a_time() -> None:
    world = build_world(23, START)
    incidents = plan(world, minutes=3 * 24 * 60, per_kind=2, seed=23, after=120)
    assert len(incidents) == 12
    for a, b in itertools.pairwise(incidents):
        assert a.start < b.start
    assert all(x.start >= START + timedelta(minutes=120) for x in incidents)


def test_the_scorer_credits_an_alert_only_inside_the_window_and_on_the_incidents_dimensions() -> (
    None
):
    world = build_world(24, START)
    (x,) = [i for i in plan(world, minutes=600, per_kind=1, seed=24, kinds=("provider_outage",))]

    def alert(at: datetime, region: str, provider: str, key: str = "k") -> AlertSignal:
        return AlertSignal(
            "risk.volume.drop", key, "critical", "c", at, region=region, provider=provider
        )  # type: ignore[arg-type]

    inside = alert(x.start + timedelta(minutes=2), x.region, x.provider)
    assert answers(inside, x)
    assert not answers(alert(x.start - timedelta(minutes=1), x.region, x.provider), x)
    assert not answers(alert(x.end + timedelta(minutes=61), x.region, x.provider), x)
    assert not answers(alert(x.start + timedelta(minutes=2), "zz", x.provider), x)
    s = score([x], [inside, alert(x.start, "zz", "p9", key="other")])
    assert s.recall == 1.0 and s.precision == 0.5
    assert s.kinds["provider_outage"].delays_s == [120.0]
