"""The break report is a function of the lines and the rules: their order, how they were
split into files and how often the run is repeated never change its bytes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from tally.reconciliation.matching import day_of, match, zone_of
from tally.reconciliation.model import MatchRules, ReportLine, TallyLine
from tally.reconciliation.report import to_csv, to_json

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
RULES = MatchRules("acme", amount_tolerance=1, time_tolerance_s=30, zone="Asia/Tokyo")
ZONE = zone_of(RULES.zone)

facts = st.tuples(
    st.sampled_from(["t1", "t2", "t3", "t4", "t5", "t6"]),  # tx id (repeats: duplicates)
    st.sampled_from(["bet", "win", "round_net"]),
    st.sampled_from(["p1", "p2"]),
    st.sampled_from(["r1", "r2", "r3"]),
    st.sampled_from(["EUR", "USD"]),
    st.integers(0, 2_000),
    st.integers(-40, 40).map(lambda m: T0 + timedelta(hours=m * 0.75)),  # crosses midnights
)


def as_report(f: tuple[str, str, str, str, str, int, datetime]) -> ReportLine:
    tx, kind, player, rnd, cur, amount, at = f
    return ReportLine("acme", "a.csv", 1, tx, kind, "op1", player, rnd, cur, amount, at)


def as_tally(f: tuple[str, str, str, str, str, int, datetime], shift: int) -> TallyLine:
    tx, kind, player, rnd, cur, amount, at = f
    kind = "bet" if kind == "round_net" else kind
    at += timedelta(seconds=shift)
    key = f"acme:{tx}:{kind}"
    return TallyLine("acme", key, tx, kind, "op1", player, rnd, cur, amount, at)


L = TypeVar("L", ReportLine, TallyLine)


def by_day(lines: list[L]) -> list[L]:
    """What a store does: sorted by day, in whatever order within a day."""
    return sorted(lines, key=lambda x: day_of(x.occurred_at, ZONE))


def report_bytes(report: list[ReportLine], tally: list[TallyLine]) -> tuple[bytes, bytes]:
    result = match(by_day(report), by_day(tally), RULES)
    return to_json(result).body, to_csv(result).body


@settings(max_examples=150, deadline=None)
@given(
    report=st.lists(facts, max_size=25),
    tally=st.lists(st.tuples(facts, st.integers(-60, 60)), max_size=25).map(
        lambda xs: list({as_tally(f, s).key: as_tally(f, s) for f, s in xs}.values())
    ),
    data=st.data(),
)
def test_line_order_file_splitting_and_rerunning_never_change_the_report_bytes(
    report: list[tuple[str, str, str, str, str, int, datetime]],
    tally: list[TallyLine],
    data: st.DataObject,
) -> None:
    lines = [as_report(f) for f in report]
    first = report_bytes(lines, tally)
    # Re-running.
    assert report_bytes(lines, tally) == first
    # Another order on both sides.
    shuffled = data.draw(st.permutations(lines))
    assert report_bytes(list(shuffled), list(data.draw(st.permutations(tally)))) == first
    # Split into files: other names and line numbers, each file numbered from 1.
    cuts = data.draw(st.lists(st.integers(0, len(lines)), max_size=3))
    split: list[ReportLine] = []
    bounds = [0, *sorted(cuts), len(lines)]
    for n, (lo, hi) in enumerate(pairwise(bounds)):
        split += [
            replace(x, source=f"part-{n}.csv", line=i + 2) for i, x in enumerate(shuffled[lo:hi])
        ]
    assert report_bytes(split, tally) == first


@settings(max_examples=100, deadline=None)
@given(report=st.lists(facts, max_size=25))
def test_a_report_matched_against_the_same_lines_in_tally_has_no_break(
    report: list[tuple[str, str, str, str, str, int, datetime]],
) -> None:
    # One line per transaction (no duplicates), no round nets: Tally holds the same lines.
    unique = {(f[0], f[1]): f for f in report if f[1] != "round_net"}
    lines = [as_report(f) for f in unique.values()]
    tally = [as_tally(f, 0) for f in unique.values()]
    result = match(by_day(lines), by_day(tally), RULES)
    assert result.breaks == ()
    assert result.matched == len(lines)
    assert all(r.difference == 0 and not r.unexplained for r in result.balances)


DAY_ZONES = [
    "Europe/Malta", "America/St_Johns", "Asia/Kathmandu", "Australia/Lord_Howe",
    "America/Sao_Paulo", "Pacific/Apia", "UTC",
]  # fmt: skip


@settings(max_examples=400)
@given(
    st.sampled_from(DAY_ZONES),
    st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2100, 12, 31), timezones=st.just(UTC)
    ),
)
def test_a_lines_day_is_the_day_its_time_falls_on_in_the_zone_across_every_offset_change(
    zone: str, when: datetime
) -> None:
    # The day is read through a per-hour offset cache: asked twice (cold, then warm) and
    # at the hour's edges, it is what a plain zone conversion says.
    z = zone_of(zone)
    for at in (when, when, when.replace(minute=0, second=0, microsecond=0)):
        assert day_of(at, z) == at.astimezone(z).date()
    top = when.replace(minute=59, second=59, microsecond=999_999)
    assert day_of(top, z) == top.astimezone(z).date()
