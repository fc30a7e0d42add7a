"""Worked settlement examples computed by hand, run by parametrised tests.

Amounts are minor units (EUR cents). Each row says in words what it checks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tally.kernel.money import Rounding
from tally.settlement.contracts import (
    Basis,
    ContractError,
    ContractTerms,
    Deduction,
    Tier,
    Totals,
    flat,
    in_force,
    period_fee,
    validate_terms,
)
from tally.settlement.partners import Agent, PartnerTree, Placement, TreeError, commission_shares
from tally.settlement.periods import PeriodKind, period_of

JAN = datetime(2026, 1, 1, tzinfo=UTC)


def terms(**overrides: object) -> ContractTerms:
    base: dict[str, object] = {
        "contract_id": "c1",
        "version": 1,
        "provider": "acme",
        "effective_from": JAN,
        "settlement_currency": "EUR",
        "rates": {"*": flat("0.10")},
    }
    base.update(overrides)
    return ContractTerms(**base)  # type: ignore[arg-type]


FEE_SCENARIOS = [
    # (what it shows, contract overrides, totals by game type, carried in, expected fee fields)
    (
        "a flat 10% of GGR",
        {},
        {"slots": Totals(turnover=100_000, wins=90_000)},
        0,
        {"basis": 10_000, "fee_before_rules": 1_000, "fee": 1_000, "carried_out": 0},
    ),
    (
        "marginal tiers: 10% to 500, 8% to 1000, 5% above",
        {
            "rates": {
                "*": (
                    Tier(0, Decimal("0.10")),
                    Tier(50_000, Decimal("0.08")),
                    Tier(100_000, Decimal("0.05")),
                )
            }
        },
        {"slots": Totals(turnover=500_000, wins=380_000)},
        0,
        {"basis": 120_000, "fee_before_rules": 10_000, "fee": 10_000},
    ),
    (
        "a minimum fee tops a small period up",
        {"minimum_fee": 2_000},
        {"slots": Totals(turnover=50_000, wins=45_000)},
        0,
        {"fee_before_rules": 500, "minimum_fee_topup": 1_500, "fee": 2_000},
    ),
    (
        "a negative period with carry-over owes nothing and carries its fee forward",
        {"carry_over_negative": True},
        {"slots": Totals(turnover=70_000, wins=100_000)},
        0,
        {"fee_before_rules": -3_000, "fee": 0, "carried_out": -3_000},
    ),
    (
        "the carried amount is taken off the next period's fee",
        {"carry_over_negative": True},
        {"slots": Totals(turnover=150_000, wins=100_000)},
        -3_000,
        {"fee_before_rules": 5_000, "carried_in": -3_000, "fee": 2_000, "carried_out": 0},
    ),
    (
        "without carry-over a negative period is simply zero",
        {"carry_over_negative": False},
        {"slots": Totals(turnover=70_000, wins=100_000)},
        0,
        {"fee_before_rules": -3_000, "fee": 0, "carried_out": 0},
    ),
    (
        "a carry larger than the next period's fee carries on",
        {"carry_over_negative": True},
        {"slots": Totals(turnover=110_000, wins=100_000)},
        -3_000,
        {"fee_before_rules": 1_000, "fee": 0, "carried_out": -2_000},
    ),
    (
        "minimum fee applies after carry-over",
        {"carry_over_negative": True, "minimum_fee": 500},
        {"slots": Totals(turnover=150_000, wins=100_000)},
        -4_800,
        {"fee_before_rules": 5_000, "minimum_fee_topup": 300, "fee": 500},
    ),
    (
        "NGR deducts bonuses and jackpot contributions: 12% of 350.00",
        {
            "basis": Basis.NGR,
            "rates": {"*": flat("0.12")},
            "deductions": frozenset({Deduction.BONUSES, Deduction.JACKPOT_CONTRIBUTIONS}),
        },
        {
            "slots": Totals(
                turnover=200_000, wins=150_000, bonuses=10_000, jackpot_contributions=5_000
            )
        },
        0,
        {"basis": 35_000, "fee": 4_200},
    ),
    (
        "NGR deducts only the named deductions",
        {"basis": Basis.NGR, "deductions": frozenset({Deduction.BONUSES})},
        {
            "slots": Totals(
                turnover=200_000, wins=150_000, bonuses=10_000, jackpot_contributions=5_000
            )
        },
        0,
        {"basis": 40_000, "fee": 4_000},
    ),
    (
        "NGR after a 20% gaming tax on GGR",
        {
            "basis": Basis.NGR,
            "deductions": frozenset({Deduction.GAMING_TAX}),
            "gaming_tax_rate": Decimal("0.20"),
        },
        {"slots": Totals(turnover=150_000, wins=100_000)},
        0,
        {"basis": 40_000, "fee": 4_000},
    ),
    (
        "a GGR basis ignores bonuses",
        {},
        {"slots": Totals(turnover=150_000, wins=100_000, bonuses=20_000)},
        0,
        {"basis": 50_000, "fee": 5_000},
    ),
    (
        "rates per game type with a default for the rest",
        {"rates": {"slots": flat("0.10"), "live": flat("0.05"), "*": flat("0.08")}},
        {
            "slots": Totals(turnover=30_000, wins=20_000),
            "live": Totals(turnover=50_000, wins=30_000),
            "table": Totals(turnover=2_000, wins=1_000),
        },
        0,
        {"fee": 1_000 + 1_000 + 80},
    ),
    (
        "rounding is half-even by default: 10% of 123.45 is 12.34",
        {},
        {"slots": Totals(turnover=12_345, wins=0)},
        0,
        {"fee": 1_234},
    ),
    (
        "and half-up when the contract says so: 12.35",
        {"rounding": Rounding.HALF_UP},
        {"slots": Totals(turnover=12_345, wins=0)},
        0,
        {"fee": 1_235},
    ),
]


@pytest.mark.parametrize(
    ("overrides", "by_game_type", "carried_in", "expected"),
    [pytest.param(o, t, c, e, id=name) for name, o, t, c, e in FEE_SCENARIOS],
)
def test_period_fee_matches_the_hand_computed_example(
    overrides: dict[str, object],
    by_game_type: dict[str, Totals],
    carried_in: int,
    expected: dict[str, int],
) -> None:
    contract = terms(**overrides)
    assert validate_terms(contract) == []
    result = period_fee(contract, by_game_type, carried_in)
    assert {k: getattr(result, k) for k in expected} == expected


def test_a_contract_with_shrinking_tier_floors_is_refused_with_a_reason() -> None:
    bad = terms(rates={"*": (Tier(0, Decimal("0.1")), Tier(0, Decimal("0.2")))})
    assert validate_terms(bad) == ["*: tier floors must strictly increase"]
    assert validate_terms(terms(rates={"*": flat("1.5")})) == ["*: rate 1.5 is outside 0..1"]


VERSIONS = [
    terms(version=1, effective_from=JAN),
    terms(version=2, effective_from=datetime(2026, 3, 1, tzinfo=UTC), rates={"*": flat("0.09")}),
    terms(
        contract_id="c1-op7",
        version=1,
        operator="op7",
        effective_from=datetime(2026, 2, 1, tzinfo=UTC),
        rates={"*": flat("0.07")},
    ),
]


@pytest.mark.parametrize(
    ("operator", "at", "expected"),
    [
        ("op1", datetime(2026, 1, 15, tzinfo=UTC), ("c1", 1)),
        ("op7", datetime(2026, 1, 15, tzinfo=UTC), ("c1", 1)),  # override not yet in force
        ("op7", datetime(2026, 2, 1, tzinfo=UTC), ("c1-op7", 1)),  # from its first instant
        ("op1", datetime(2026, 2, 28, 23, 59, tzinfo=UTC), ("c1", 1)),
        ("op1", datetime(2026, 3, 1, tzinfo=UTC), ("c1", 2)),
        ("op7", datetime(2026, 3, 5, tzinfo=UTC), ("c1-op7", 1)),  # an override beats defaults
    ],
)
def test_the_version_in_force_depends_on_operator_and_instant(
    operator: str, at: datetime, expected: tuple[str, int]
) -> None:
    found = in_force(VERSIONS, "acme", operator, at)
    assert (found.contract_id, found.version) == expected


def test_no_contract_before_the_first_version_is_an_error() -> None:
    with pytest.raises(ContractError, match="no contract in force"):
        in_force(VERSIONS, "acme", "op1", datetime(2025, 12, 31, tzinfo=UTC))


@pytest.mark.parametrize(
    ("when", "kind", "zone", "start", "end", "label"),
    [
        # 16:00 UTC is already the next day in Tokyo (UTC+9).
        (
            "2026-03-01T16:00:00+00:00",
            PeriodKind.DAY,
            "Asia/Tokyo",
            "2026-03-01T15:00:00+00:00",
            "2026-03-02T15:00:00+00:00",
            "2026-03-02",
        ),
        # ... and still the previous day in New York.
        (
            "2026-03-01T03:00:00+00:00",
            PeriodKind.DAY,
            "America/New_York",
            "2026-02-28T05:00:00+00:00",
            "2026-03-01T05:00:00+00:00",
            "2026-02-28",
        ),
        # March in New York spans the DST change: starts at -05:00, ends at -04:00.
        (
            "2026-03-20T12:00:00+00:00",
            PeriodKind.MONTH,
            "America/New_York",
            "2026-03-01T05:00:00+00:00",
            "2026-04-01T04:00:00+00:00",
            "2026-03",
        ),
        # An ISO week in Berlin: Monday 00:00 local.
        (
            "2026-11-25T10:00:00+00:00",
            PeriodKind.WEEK,
            "Europe/Berlin",
            "2026-11-22T23:00:00+00:00",
            "2026-11-29T23:00:00+00:00",
            "2026-W48",
        ),
        (
            "2026-12-31T23:30:00+00:00",
            PeriodKind.MONTH,
            "UTC",
            "2026-12-01T00:00:00+00:00",
            "2027-01-01T00:00:00+00:00",
            "2026-12",
        ),
    ],
)
def test_periods_follow_the_contracts_own_time_zone(
    when: str, kind: PeriodKind, zone: str, start: str, end: str, label: str
) -> None:
    period = period_of(datetime.fromisoformat(when), kind, zone)
    assert (period.start, period.end, period.label) == (
        datetime.fromisoformat(start),
        datetime.fromisoformat(end),
        label,
    )
    assert period.contains(datetime.fromisoformat(when))


def _tree() -> PartnerTree:
    agents = [
        Agent("hq", "op1", Decimal("0.020"), Decimal("0.30")),
        Agent("sub", "op1", Decimal("0.015"), Decimal("0.25")),
        Agent("distA", "op1", Decimal("0.010"), Decimal("0.20")),
        Agent("distB", "op1", Decimal("0.012"), Decimal("0.22")),
        Agent("store", "op1", Decimal("0.006"), Decimal("0.10")),
        # From August the store's rolling rate rises to 0.8%.
        Agent("store", "op1", Decimal("0.008"), Decimal("0.10"), datetime(2026, 8, 1, tzinfo=UTC)),
    ]
    placements = [
        Placement("hq", None, JAN),
        Placement("sub", "hq", JAN),
        Placement("distA", "sub", JAN),
        Placement("distB", "sub", JAN),
        Placement("store", "distA", JAN),
        Placement("store", "distB", datetime(2026, 6, 1, tzinfo=UTC)),
    ]
    return PartnerTree(agents, placements)


def test_each_agent_earns_its_rate_minus_its_childs_on_the_childs_subtree() -> None:
    path = _tree().path("store", datetime(2026, 2, 1, tzinfo=UTC))
    # turnover 1,000.00 and net loss 100.00 at the store
    shares = commission_shares(path, turnover=100_000, net_loss=10_000)
    assert shares == {
        "store": 600 + 1_000,  # 0.6% of turnover + 10% of net loss
        "distA": 400 + 1_000,  # (1.0-0.6)% + (20-10)%
        "sub": 500 + 500,  # (1.5-1.0)% + (25-20)%
        "hq": 500 + 500,  # (2.0-1.5)% + (30-25)%
    }
    assert sum(shares.values()) == 2_000 + 3_000  # the top rates: 2% and 30%


def test_moving_a_store_takes_effect_from_its_instant() -> None:
    tree = _tree()
    before = [a.id for a in tree.path("store", datetime(2026, 5, 31, 23, 59, tzinfo=UTC))]
    after = [a.id for a in tree.path("store", datetime(2026, 6, 1, tzinfo=UTC))]
    assert before == ["store", "distA", "sub", "hq"]
    assert after == ["store", "distB", "sub", "hq"]
    shares = commission_shares(tree.path("store", datetime(2026, 7, 1, tzinfo=UTC)), 100_000, 0)
    assert shares == {"store": 600, "distB": 600, "sub": 300, "hq": 500}


def test_a_rate_change_applies_from_its_effective_instant() -> None:
    tree = _tree()
    july = commission_shares(tree.path("store", datetime(2026, 7, 31, tzinfo=UTC)), 100_000, 0)
    august = commission_shares(tree.path("store", datetime(2026, 8, 1, tzinfo=UTC)), 100_000, 0)
    assert (july["store"], july["distB"]) == (600, 600)
    assert (august["store"], august["distB"]) == (800, 400)
    assert sum(july.values()) == sum(august.values()) == 2_000


def test_a_partner_sees_exactly_its_own_subtree() -> None:
    tree = _tree()
    at = datetime(2026, 2, 1, tzinfo=UTC)
    assert tree.subtree("distA", at) == {"distA", "store"}
    assert tree.subtree("distB", at) == {"distB"}
    assert tree.subtree("hq", at) == {"hq", "sub", "distA", "distB", "store"}


def test_a_parent_with_a_lower_rate_than_its_child_is_refused() -> None:
    agents = [
        Agent("top", "op1", Decimal("0.01"), Decimal("0.1")),
        Agent("leaf", "op1", Decimal("0.02"), Decimal("0.1")),
    ]
    tree = PartnerTree(agents, [Placement("top", None, JAN), Placement("leaf", "top", JAN)])
    with pytest.raises(TreeError, match="rolling rate is below"):
        commission_shares(tree.path("leaf", JAN), 1_000, 0)
