"""Reconciliation matching, scenario by scenario, with every figure computed by hand.

Amounts are EUR minor units. A bet adds its stake to the net (GGR), a win takes its
amount off; a rolled-back line counts 0.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from tally.reconciliation.matching import MatchResult, match
from tally.reconciliation.model import BreakKind, MatchRules, ReportLine, TallyLine
from tally.reconciliation.report import to_csv, to_json

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
D = date(2026, 3, 2)
RULES = MatchRules("acme", amount_tolerance=0, time_tolerance_s=5)


def rep(
    tx: str,
    kind: str = "bet",
    amount: int = 1000,
    *,
    at: datetime = T0,
    currency: str = "EUR",
    round_id: str = "r1",
    player: str = "p1",
    ref: str = "",
    line: int = 1,
) -> ReportLine:
    return ReportLine(
        "acme", "r.csv", line, tx, kind, "op1", player, round_id, currency, amount,
        at, ref,
    )  # fmt: skip


def tal(
    tx: str,
    kind: str = "bet",
    amount: int = 1000,
    *,
    at: datetime = T0,
    currency: str = "EUR",
    round_id: str = "r1",
    player: str = "p1",
    ref: str = "",
    rolled_back: bool = False,
) -> TallyLine:
    return TallyLine(
        "acme", f"acme:{tx}:{kind}", tx, kind, "op1", player, round_id, currency, amount,
        at, ref, rolled_back,
    )  # fmt: skip


def run(report: list[ReportLine], tally: list[TallyLine], rules: MatchRules = RULES) -> MatchResult:
    return match(report, tally, rules)


def kinds(result: MatchResult) -> list[tuple[BreakKind, str, str, int, int]]:
    return [
        (b.kind, b.report_ref, b.tally_key, b.report_amount, b.tally_amount) for b in result.breaks
    ]


def test_identical_sides_match_without_a_break_and_their_balances_agree() -> None:
    result = run([rep("b1"), rep("w1", "win", 400)], [tal("b1"), tal("w1", "win", 400)])
    assert result.breaks == ()
    assert result.matched == 2
    (row,) = result.balances
    assert (row.day, row.report_total, row.tally_total, row.unexplained) == (D, 600, 600, False)


@pytest.mark.parametrize(
    ("report", "tally", "expected"),
    [
        pytest.param(
            [rep("b1")], [], [(BreakKind.MISSING_IN_TALLY, "b1:bet", "", 1000, 0)], id="missing"
        ),
        pytest.param(
            [], [tal("b1")], [(BreakKind.MISSING_IN_REPORT, "", "acme:b1:bet", 0, 1000)],
            id="missing-in-report",
        ),
        pytest.param(
            [rep("b1", amount=1000), rep("b1", amount=1000, line=2)], [tal("b1")],
            [(BreakKind.DUPLICATE_IN_REPORT, "b1:bet", "", 1000, 0)], id="duplicate",
        ),
        pytest.param(
            [rep("b1", currency="USD")], [tal("b1")],
            [(BreakKind.CURRENCY_MISMATCH, "b1:bet", "acme:b1:bet", 1000, 1000)], id="currency",
        ),
        pytest.param(
            [rep("b1", amount=1001)], [tal("b1")],
            [(BreakKind.AMOUNT_MISMATCH, "b1:bet", "acme:b1:bet", 1001, 1000)], id="amount",
        ),
        pytest.param(
            # Tally voided the bet; the report still counts it.
            [rep("b1")], [tal("b1", rolled_back=True), tal("x1", "rollback", 0, ref="b1")],
            [
                (BreakKind.ROLLBACK_MISMATCH, "", "acme:x1:rollback", 0, 0),
                (BreakKind.ROLLBACK_MISMATCH, "b1:bet", "acme:b1:bet", 1000, 0),
            ],
            id="rollback",
        ),
    ],
)  # fmt: skip
def test_each_break_kind_is_named_with_both_sides_amounts(
    report: list[ReportLine],
    tally: list[TallyLine],
    expected: list[tuple[BreakKind, str, str, int, int]],
) -> None:
    assert kinds(run(report, tally)) == expected


def test_a_balance_difference_is_explained_by_the_breaks_on_its_row() -> None:
    # report 1000 + 500 = 1500, Tally 1000: the 500 is the missing b2.
    result = run([rep("b1"), rep("b2", amount=500)], [tal("b1")])
    (row,) = result.balances
    assert (row.report_total, row.tally_total, row.difference) == (1500, 1000, 500)
    assert row.explained == 500 and not row.unexplained
    assert row.breaks == (result.breaks[0].id,)


@pytest.mark.parametrize(("tolerance", "gap", "broken"), [(2, 2, False), (2, 3, True)])
def test_the_amount_tolerance_holds_at_its_edge_and_breaks_past_it(
    tolerance: int, gap: int, broken: bool
) -> None:
    rules = MatchRules("acme", amount_tolerance=tolerance)
    result = run([rep("b1", amount=1000 + gap)], [tal("b1")], rules)
    assert [b.kind for b in result.breaks] == ([BreakKind.AMOUNT_MISMATCH] if broken else [])
    (row,) = result.balances
    # Within tolerance the difference is accepted but no break explains it: flagged.
    assert row.difference == gap and row.unexplained is (not broken)
    assert row.tolerated == (0 if broken else gap)


def test_a_difference_within_fx_rounding_is_an_fx_rounding_break() -> None:
    rules = MatchRules("acme", amount_tolerance=0, fx_rounding=1)
    result = run([rep("b1", amount=1001), rep("b2", amount=1002)], [tal("b1"), tal("b2")], rules)
    assert [b.kind for b in result.breaks] == [BreakKind.AMOUNT_MISMATCH, BreakKind.FX_ROUNDING]


@pytest.mark.parametrize(("seconds", "matched"), [(5, True), (6, False)])
def test_other_tx_ids_match_by_player_round_kind_and_amount_within_the_time_tolerance(
    seconds: int, matched: bool
) -> None:
    # The provider re-keyed the bet (p-77 vs t-1): same player, round, kind and amount.
    report = [rep("p-77", at=T0 + timedelta(seconds=seconds))]
    rules = MatchRules("acme", time_tolerance_s=5, round_netting=False)
    result = run(report, [tal("t-1")], rules)
    if matched:
        assert result.breaks == () and result.matched == 1
    else:
        assert [b.kind for b in result.breaks] == [
            BreakKind.MISSING_IN_TALLY,
            BreakKind.MISSING_IN_REPORT,
        ]


def test_past_the_time_tolerance_round_netting_still_matches_the_round() -> None:
    result = run([rep("p-77", at=T0 + timedelta(seconds=6))], [tal("t-1")])
    assert result.breaks == () and result.matched == 1


def test_one_round_net_line_matches_tallys_bet_win_and_rollback() -> None:
    # Tally: bet 1000, win 300, win 200 rolled back: net 1000 - 300 = 700.
    # The provider reports the round as one net line of 700.
    tally = [
        tal("b1"),
        tal("w1", "win", 300),
        tal("w2", "win", 200, rolled_back=True),
        tal("x1", "rollback", 0, ref="w2"),
    ]
    result = run([rep("R1", "round_net", 700)], tally)
    assert result.breaks == ()
    (row,) = result.balances
    assert (row.report_total, row.tally_total) == (700, 700)


def test_a_round_whose_nets_differ_is_one_amount_break_naming_every_line() -> None:
    # Report: bet 1000 and win 500 under other ids; Tally: one net line is not a thing,
    # so here the many-to-one runs the other way: Tally bet 1000, win 400 (net 600).
    report = [rep("P1", "bet", 1000), rep("P2", "win", 500)]
    tally = [tal("b1", "bet", 1000, at=T0 + timedelta(hours=1)), tal("w1", "win", 400)]
    result = run(report, tally)
    assert kinds(result) == [
        (BreakKind.AMOUNT_MISMATCH, "P1:bet,P2:win", "acme:b1:bet,acme:w1:win", 500, 600)
    ]


def test_a_round_across_midnight_in_the_providers_zone_is_a_timing_break() -> None:
    # Tokyo is UTC+9: 14:59:59Z is 23:59:59 on the 2nd there, 15:00:01Z the 3rd.
    rules = MatchRules("acme", zone="Asia/Tokyo", time_tolerance_s=5)
    before = datetime(2026, 3, 2, 14, 59, 59, tzinfo=UTC)
    after = datetime(2026, 3, 2, 15, 0, 1, tzinfo=UTC)
    report = [rep("b0", at=before - timedelta(hours=3)), rep("b1", at=before)]
    tally = [tal("b0", at=before - timedelta(hours=3)), tal("b1", at=after)]
    result = run(report, tally, rules)
    (b,) = result.breaks
    assert (b.kind, b.day, b.tally_day) == (BreakKind.TIMING, D, date(2026, 3, 3))
    # The report's 2nd holds 2000, Tally's 1000; the 3rd the other way round.
    rows = {(r.day, r.report_total, r.tally_total, r.unexplained) for r in result.balances}
    assert rows == {(D, 2000, 1000, False), (date(2026, 3, 3), 0, 1000, False)}


def test_the_same_round_in_utc_falls_on_one_day_and_matches() -> None:
    before = datetime(2026, 3, 2, 14, 59, 59, tzinfo=UTC)
    after = datetime(2026, 3, 2, 15, 0, 1, tzinfo=UTC)
    assert run([rep("b1", at=before)], [tal("b1", at=after)]).breaks == ()


def test_the_break_report_is_canonical_json_and_csv_with_their_sha256() -> None:
    result = run([rep("b1", amount=1001)], [tal("b1")])
    js, cs = to_json(result), to_csv(result)
    assert b'"kind":"amount_mismatch"' in js.body and b'"difference":"0.01"' in js.body
    assert cs.body.splitlines()[1] == (
        b"amount_mismatch:2026-03-02:b1:bet|acme:b1:bet,amount_mismatch,acme,op1,EUR,"
        b"2026-03-02,2026-03-02,b1:bet,acme:b1:bet,10.01,10.00,0.01"
    )
    assert len(js.sha256) == 64 and js.sha256 != cs.sha256


def test_the_worked_example_of_the_concept_page_gives_its_breaks_and_balances() -> None:
    # docs/concepts/reconciliation.md, "Worked example".
    rules = MatchRules("acme", zone="Asia/Tokyo")
    t10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    late = datetime(2026, 3, 2, 14, 59, 59, tzinfo=UTC)
    report = [
        rep("a1", at=t10),
        rep("a2", "win", 450, at=t10 + timedelta(seconds=1)),
        rep("a3", amount=500, at=late),
        rep("a4", amount=200, at=t10),
    ]
    tally = [
        tal("a1", at=t10),
        tal("a2", "win", 400, at=t10 + timedelta(seconds=1)),
        tal("a3", amount=500, at=late + timedelta(seconds=2)),
    ]
    result = run(report, tally, rules)
    assert [(b.kind, b.report_ref, b.difference) for b in result.breaks] == [
        (BreakKind.MISSING_IN_TALLY, "a4:bet", 200),
        (BreakKind.AMOUNT_MISMATCH, "a2:win", -50),
        (BreakKind.TIMING, "a3:bet", 0),
    ]
    rows = [(r.day, r.report_total, r.tally_total, r.explained) for r in result.balances]
    assert rows == [(D, 1250, 600, 650), (date(2026, 3, 3), 0, 500, -500)]
    assert not any(r.unexplained for r in result.balances)


def test_a_bet_rolled_back_just_after_midnight_matches_its_rolled_back_bet() -> None:
    # The bet at 23:59:58 on the 2nd, its rollback at 00:00:03 on the 3rd (UTC): the
    # report's rollback is in the next day's window, Tally's bet is marked rolled back.
    # The bet waits with the day's tail for the rollback instead of being a mismatch.
    bet_at = datetime(2026, 3, 2, 23, 59, 58, tzinfo=UTC)
    rb_at = bet_at + timedelta(seconds=5)
    report = [rep("b0", at=bet_at - timedelta(hours=2)), rep("b1", at=bet_at)]
    report.append(rep("x1", "rollback", 1000, at=rb_at, ref="b1"))
    tally = [tal("b0", at=bet_at - timedelta(hours=2)), tal("b1", at=bet_at, rolled_back=True)]
    tally.append(tal("x1", "rollback", 1000, at=rb_at, ref="b1"))
    result = run(report, tally)
    assert result.breaks == ()
    assert result.matched == 3
    rows = {(r.day, r.report_total, r.tally_total, r.unexplained) for r in result.balances}
    assert rows == {(D, 1000, 1000, False), (date(2026, 3, 3), 0, 0, False)}


def test_a_bet_the_report_never_rolls_back_is_still_a_rollback_mismatch_after_waiting() -> None:
    bet_at = datetime(2026, 3, 2, 23, 59, 58, tzinfo=UTC)
    rb_at = bet_at + timedelta(seconds=5)
    report = [rep("b1", at=bet_at), rep("b2", at=rb_at)]
    tally = [tal("b1", at=bet_at, rolled_back=True), tal("b2", at=rb_at)]
    tally.append(tal("x1", "rollback", 1000, at=rb_at, ref="b1"))
    assert kinds(run(report, tally)) == [
        (BreakKind.ROLLBACK_MISMATCH, "b1:bet", "acme:b1:bet", 1000, 0),
        (BreakKind.ROLLBACK_MISMATCH, "", "acme:x1:rollback", 0, 0),
    ]
