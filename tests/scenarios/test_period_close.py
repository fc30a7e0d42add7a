"""Closing periods: statements, minimum fee, carry-over, late events, FX policies, rebuilds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tally.events.model import EventKind
from tally.settlement.contracts import Basis, ContractTerms, Deduction, FxPolicy, Tier, flat
from tally.settlement.engine import PeriodCloseError, SettlementEvent
from tally.settlement.fx import FxRate
from tally.settlement.periods import PeriodKind
from tests.support.settlement import TestWorker

MAR = datetime(2026, 3, 1, tzinfo=UTC)
APR = datetime(2026, 4, 1, tzinfo=UTC)
FEE = "provider:acme:fee_payable:op1:EUR"


def contract(**kw: object) -> ContractTerms:
    base: dict[str, object] = {
        "contract_id": "acme-std",
        "version": 1,
        "provider": "acme",
        "effective_from": datetime(2026, 1, 1, tzinfo=UTC),
        "settlement_currency": "EUR",
        "rates": {"*": flat("0.10")},
    }
    base.update(kw)
    return ContractTerms(**base)  # type: ignore[arg-type]


def ev(key: str, kind: EventKind, amount: int, at: datetime, **kw: object) -> SettlementEvent:
    fields: dict[str, object] = {
        "provider": "acme",
        "operator": "op1",
        "player": "p1",
        "game_type": "slots",
        "currency": "EUR",
    }
    fields.update(kw)
    return SettlementEvent(key, kind, amount=amount, occurred_at=at, **fields)  # type: ignore[arg-type]


def test_closing_tops_the_live_accrual_up_to_the_minimum_fee() -> None:
    worker = TestWorker([contract(minimum_fee=5_000)])
    worker.feed([ev("b1", EventKind.BET, 20_000, MAR), ev("w1", EventKind.WIN, 10_000, MAR)], MAR)
    assert worker.net(FEE) == 1_000  # live: 10% of 100.00 GGR
    doc = worker.close("acme-std", "op1", "2026-03", APR).to_dict()
    assert doc["totals"]["fee_before_rules"] == "10.00"
    assert doc["totals"]["minimum_fee_topup"] == "40.00"
    assert doc["totals"]["fee"] == "50.00"
    assert doc["totals"]["close_adjustment"] == "40.00"
    assert worker.net(FEE) == 5_000  # the ledger now holds the statement's fee


def test_a_negative_month_carries_into_the_next_one() -> None:
    worker = TestWorker([contract(carry_over_negative=True)])
    worker.feed([ev("b1", EventKind.BET, 10_000, MAR), ev("w1", EventKind.WIN, 40_000, MAR)], MAR)
    assert worker.net(FEE) == -3_000  # live accruals may go negative
    march = worker.close("acme-std", "op1", "2026-03", APR)
    assert (march.fee.fee, march.fee.carried_out) == (0, -3_000)
    assert worker.net(FEE) == 0
    worker.feed([ev("b2", EventKind.BET, 50_000, APR)], APR)
    april = worker.close("acme-std", "op1", "2026-04", datetime(2026, 5, 1, tzinfo=UTC))
    assert april.fee.carried_in == -3_000
    assert april.fee.fee == 2_000  # 5,000 earned, 3,000 carried off
    assert worker.net(FEE) == 2_000


def test_an_event_after_its_period_closed_goes_into_the_open_period_with_a_reference() -> None:
    worker = TestWorker([contract()])
    worker.feed([ev("b1", EventKind.BET, 10_000, MAR + timedelta(days=3))], MAR)
    march = worker.close("acme-std", "op1", "2026-03", APR)
    before = march.to_json()
    worker.feed([ev("late", EventKind.BET, 7_000, MAR + timedelta(days=30))], APR)
    assert worker.effect("late").bucket.period == "2026-04"
    assert worker.effect("late").late_of == "2026-03"
    # A rollback of a March bet after the close is booked in April as well.
    worker.feed([ev("rb", EventKind.ROLLBACK, 0, APR, ref="b1")], APR)
    april = worker.close("acme-std", "op1", "2026-04", datetime(2026, 5, 1, tzinfo=UTC))
    assert april.to_dict()["totals"]["turnover"] == "-30.00"  # 70.00 - 100.00
    assert march.to_json() == before


def test_periods_close_in_order_and_only_after_they_end() -> None:
    worker = TestWorker([contract()])
    with pytest.raises(PeriodCloseError, match="cannot close before"):
        worker.close("acme-std", "op1", "2026-03", APR - timedelta(microseconds=1))
    worker.close("acme-std", "op1", "2026-03", APR)
    with pytest.raises(PeriodCloseError, match="is closed"):
        worker.close("acme-std", "op1", "2026-03", APR)
    with pytest.raises(PeriodCloseError, match="close 2026-04 before 2026-05"):
        worker.close("acme-std", "op1", "2026-05", datetime(2026, 7, 1, tzinfo=UTC))
    with pytest.raises(PeriodCloseError, match="not known"):
        worker.close("nope", "op1", "2026-03", APR)


def test_fx_at_event_time_and_at_period_end_give_their_own_statements() -> None:
    rates = [
        FxRate("EUR", "JPY", MAR, Decimal("160")),
        FxRate("EUR", "JPY", MAR + timedelta(days=20), Decimal("200")),
    ]
    events = [
        ev("b1", EventKind.BET, 160_000, MAR + timedelta(days=1), currency="JPY"),  # 1,000 EUR
        ev("b2", EventKind.BET, 200_000, MAR + timedelta(days=25), currency="JPY"),  # 1,000 EUR
    ]
    at_event = TestWorker([contract(fx_policy=FxPolicy.EVENT_TIME)], rates=rates)
    at_event.feed(events, MAR)
    at_end = TestWorker([contract(fx_policy=FxPolicy.PERIOD_END)], rates=rates)
    at_end.feed(events, MAR)
    event_doc = at_event.close("acme-std", "op1", "2026-03", APR).to_dict()
    end_doc = at_end.close("acme-std", "op1", "2026-03", APR).to_dict()
    assert event_doc["totals"]["turnover"] == "2000.00"  # each at its own day's rate
    assert end_doc["totals"]["turnover"] == "1800.00"  # 360,000 JPY at 200
    assert (event_doc["totals"]["fee"], end_doc["totals"]["fee"]) == ("200.00", "180.00")
    assert at_end.net(FEE) == 18_000


def test_a_week_in_tokyo_closes_by_tokyo_midnight() -> None:
    weekly = contract(period=PeriodKind.WEEK, timezone="Asia/Tokyo")
    worker = TestWorker([weekly])
    # Sunday 2026-03-08 20:00 UTC is already Monday in Tokyo: the next ISO week.
    worker.feed([ev("b1", EventKind.BET, 1_000, datetime(2026, 3, 8, 20, tzinfo=UTC))], MAR)
    assert worker.effect("b1").bucket.period == "2026-W11"
    with pytest.raises(PeriodCloseError, match="cannot close before"):
        worker.close("acme-std", "op1", "2026-W11", datetime(2026, 3, 15, 14, 59, tzinfo=UTC))
    closing = worker.close("acme-std", "op1", "2026-W11", datetime(2026, 3, 15, 15, tzinfo=UTC))
    assert closing.to_dict()["period"]["start"] == "2026-03-08T15:00:00+00:00"


def test_a_rebuild_from_the_same_events_gives_a_byte_identical_statement() -> None:
    events = [ev(f"b{i}", EventKind.BET, 1_000 + i, MAR + timedelta(hours=i)) for i in range(50)]
    events += [
        ev(f"w{i}", EventKind.WIN, 700 + i, MAR + timedelta(hours=i)) for i in range(0, 50, 3)
    ]
    events += [ev("rb", EventKind.ROLLBACK, 0, MAR + timedelta(days=5), ref="b7")]
    first = TestWorker([contract(minimum_fee=10)])
    for i in range(0, len(events), 7):
        first.feed(events[i : i + 7], MAR)
    second = TestWorker([contract(minimum_fee=10)])
    second.feed(list(reversed(events)), MAR)
    a = first.close("acme-std", "op1", "2026-03", APR)
    b = second.close("acme-std", "op1", "2026-03", APR)
    assert a.to_json() == b.to_json()
    assert a.sha256 == b.sha256
    assert a.to_csv() == b.to_csv()
    assert first.net(FEE) == second.net(FEE) == a.fee.fee


def test_a_contract_version_changed_mid_month_earns_each_part_at_its_rate() -> None:
    v1 = contract()
    v2 = contract(version=2, effective_from=MAR + timedelta(days=15), rates={"*": flat("0.20")})
    worker = TestWorker([v1, v2])
    worker.feed(
        [
            ev("b1", EventKind.BET, 10_000, MAR + timedelta(days=1)),
            ev("b2", EventKind.BET, 10_000, MAR + timedelta(days=20)),
        ],
        MAR,
    )
    statement = worker.close("acme-std", "op1", "2026-03", APR)
    assert [(line.version, line.totals.turnover) for line in statement.lines] == [
        (1, 10_000),
        (2, 10_000),
    ]
    assert statement.fee.fee == 1_000 + 2_000
    assert worker.net(FEE) == 3_000


def test_a_bonus_win_is_a_bonus_cost_deducted_once_for_ngr() -> None:
    from tally.settlement.contracts import Basis, Deduction

    ngr = contract(basis=Basis.NGR, deductions=frozenset({Deduction.BONUSES}))
    worker = TestWorker([ngr])
    worker.feed(
        [
            ev("b1", EventKind.BET, 10_000, MAR),
            ev("w1", EventKind.WIN, 6_000, MAR),
            ev("fs", EventKind.BONUS_WIN, 1_000, MAR),
        ],
        MAR,
    )
    doc = worker.close("acme-std", "op1", "2026-03", APR).to_dict()
    # GGR = 100.00 - 60.00 = 40.00; NGR = 40.00 - 10.00 bonus = 30.00; fee 10% = 3.00
    assert (doc["totals"]["ggr"], doc["totals"]["bonuses"]) == ("40.00", "10.00")
    assert (doc["totals"]["basis"], doc["totals"]["fee"]) == ("30.00", "3.00")


# -- one period, several contract versions (ADR 0018) --------------------------------------
LADDER = {"*": (Tier(0, Decimal("0.10")), Tier(100_000, Decimal("0.05")))}  # 10% to 1,000.00

LADDER_SCENARIOS = [
    # (what it shows, v2's overrides, v1's bet, v2's bet, fee before rules, v1's and v2's part)
    (
        # v1: 0 -> 2,000.00: 1,000.00 x 10% + 1,000.00 x 5% = 100.00 + 50.00 = 150.00
        # v2: 2,000.00 -> 4,000.00, all above 1,000.00: 2,000.00 x 5% = 100.00
        # = 250.00, what 4,000.00 earns on one ladder (not 150.00 + 150.00 = 300.00)
        "a version change that leaves the tiers alone leaves the fee alone",
        {"minimum_fee": 1},
        200_000,
        200_000,
        25_000,
        (15_000, 10_000),
    ),
    (
        # v1: 0 -> 500.00 at 10% = 50.00
        # v2 (8% to 3,000.00, 2% above) goes on from 500.00 on its own ladder:
        #   500.00 -> 3,000.00 at 8% = 200.00; 3,000.00 -> 4,500.00 at 2% = 30.00
        # = 50.00 + 230.00 = 280.00
        "the later version continues up its own ladder from where the earlier one stopped",
        {"rates": {"*": (Tier(0, Decimal("0.08")), Tier(300_000, Decimal("0.02")))}},
        50_000,
        400_000,
        28_000,
        (5_000, 23_000),
    ),
    (
        # v1 (10% below 1,000.00) and v2 (flat 10%): v1 10.05 x 10% = 1.005, v2 the
        # same: 2.01 rounded once = 2.01 (per version, half to even: 1.00 + 1.00 = 2.00).
        # v1 accrues round(1.005) = 1.00, v2 round(2.01) - 1.00 = 1.01.
        "the period's fee is rounded once, not once per version",
        {"rates": {"*": flat("0.10")}},
        1_005,
        1_005,
        201,
        (100, 101),
    ),
]


@pytest.mark.parametrize(
    ("what", "v2_overrides", "v1_bet", "v2_bet", "fee", "parts"),
    LADDER_SCENARIOS,
    ids=[s[0] for s in LADDER_SCENARIOS],
)
@pytest.mark.parametrize("v2_first", [False, True], ids=["in order", "v2 delivered first"])
def test_a_period_over_two_versions_climbs_one_ladder_and_rounds_once(
    what: str,
    v2_overrides: dict[str, object],
    v1_bet: int,
    v2_bet: int,
    fee: int,
    parts: tuple[int, int],
    v2_first: bool,
) -> None:
    v1 = contract(rates=LADDER)
    v2 = contract(
        **{"version": 2, "effective_from": MAR + timedelta(days=15), "rates": LADDER} | v2_overrides
    )
    worker = TestWorker([v1, v2])
    first = ev("b1", EventKind.BET, v1_bet, MAR + timedelta(days=1))
    second = ev("b2", EventKind.BET, v2_bet, MAR + timedelta(days=20))
    for event in [second, first] if v2_first else [first, second]:
        worker.feed([event], MAR)
    assert worker.net(FEE) == fee  # live accruals already hold the period's fee
    accrued = worker.worker.book.figures.fee_accrued
    assert (
        accrued[("acme-std", 1, "acme", "op1", "2026-03")],
        accrued[("acme-std", 2, "acme", "op1", "2026-03")],
    ) == parts
    statement = worker.close("acme-std", "op1", "2026-03", APR)
    assert statement.fee.fee_before_rules == fee
    assert statement.close_adjustment == 0
    assert worker.net(FEE) == fee


def test_a_carry_lapses_when_the_version_at_the_periods_end_has_no_carry_over() -> None:
    # February (v1, carry-over on): 100.00 - 400.00 = -300.00 GGR, fee -30.00 carried out.
    # March ends under v2 (carry-over off): the -30.00 is not taken off March's 50.00; it
    # lapses, and the statement says so.
    v1 = contract(carry_over_negative=True)
    v2 = contract(version=2, effective_from=MAR + timedelta(days=9), carry_over_negative=False)
    worker = TestWorker([v1, v2])
    feb = MAR - timedelta(days=20)
    worker.feed([ev("b1", EventKind.BET, 10_000, feb), ev("w1", EventKind.WIN, 40_000, feb)], MAR)
    february = worker.close("acme-std", "op1", "2026-02", MAR)
    assert february.fee.carried_out == -3_000
    worker.feed([ev("b2", EventKind.BET, 50_000, MAR + timedelta(days=12))], APR)
    march = worker.close("acme-std", "op1", "2026-03", APR)
    totals = march.to_dict()["totals"]
    assert (totals["carried_in"], totals["carry_lapsed"], totals["fee"]) == (
        "0.00",
        "-30.00",
        "50.00",
    )
    assert worker.net(FEE) == 5_000


def test_gaming_tax_is_the_rate_times_the_periods_ggr() -> None:
    # NGR = GGR - 20% gaming tax, fee 10% of NGR.
    # slots: 150.00 - 50.00 = 100.00 GGR; live: 20.00 - 60.00 = -40.00 GGR
    # period GGR 60.00, tax 20% x 60.00 = 12.00, NGR 48.00, fee 4.80
    # (taxing the positive line only gave 100.00 - 20.00 - 40.00 = 40.00, fee 4.00)
    taxed = contract(
        basis=Basis.NGR,
        deductions=frozenset({Deduction.GAMING_TAX}),
        gaming_tax_rate=Decimal("0.20"),
    )
    worker = TestWorker([taxed])
    worker.feed(
        [
            ev("b1", EventKind.BET, 15_000, MAR),
            ev("w1", EventKind.WIN, 5_000, MAR),
            ev("b2", EventKind.BET, 2_000, MAR, game_type="live"),
            ev("w2", EventKind.WIN, 6_000, MAR, game_type="live"),
        ],
        MAR,
    )
    totals = worker.close("acme-std", "op1", "2026-03", APR).to_dict()["totals"]
    assert (totals["ggr"], totals["basis"], totals["fee"]) == ("60.00", "48.00", "4.80")
    assert worker.net(FEE) == 480


def test_a_versions_part_moved_by_another_versions_events_survives_a_restart(
    tmp_path: Path,
) -> None:
    # The first ladder example, v2 delivered first: v2 alone is 150.00; when v1's
    # 2,000.00 arrives, v2 (untouched by that batch) drops to 100.00 and must be kept so.
    v1 = contract(rates=LADDER)
    v2 = contract(version=2, effective_from=MAR + timedelta(days=15), rates=LADDER)
    worker = TestWorker([v1, v2], sqlite_path=tmp_path / "t.db")
    worker.feed([ev("b2", EventKind.BET, 200_000, MAR + timedelta(days=20))], MAR)
    worker.feed([ev("b1", EventKind.BET, 200_000, MAR + timedelta(days=1))], MAR)
    worker.restart()
    statement = worker.close("acme-std", "op1", "2026-03", APR)
    assert (statement.fee.fee, statement.accrued_before_close) == (25_000, 25_000)
    assert statement.close_adjustment == 0
