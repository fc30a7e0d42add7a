"""Payout runs, computed by hand: netting, minimums, carry-forward, maker-checker."""

from __future__ import annotations

import pytest

from tally.payouts.model import (
    PayoutPolicy,
    PayoutRefused,
    PayoutState,
    Refusal,
    RunScope,
    RunStatus,
)
from tests.support.payouts import World, payable

POLICY = PayoutPolicy(
    minimum_minor={"EUR": 10_000, "GBP": 10_000},
    approval_above_default_minor=10_000_000,
)

PAYABLES = [
    payable("fee:evo:op1", "provider:evo", "EUR", 50_000, "op1"),
    payable("fee:evo:op2", "provider:evo", "EUR", 25_000, "op2"),
    payable("com:a1:03", "partner:a1", "EUR", 30_000),
    payable("com:a1:02", "partner:a1", "EUR", -12_000),
    payable("com:a2:03", "partner:a2", "EUR", 8_000),
    payable("com:a2:02", "partner:a2", "EUR", -1_000),
    payable("com:a3:03", "partner:a3", "EUR", 2_000),
    payable("com:a3:02", "partner:a3", "EUR", -5_000),
    payable("com:a1:gbp", "partner:a1", "GBP", 9_999),
    payable("fee:evo:gbp", "provider:evo", "GBP", 10_000, "op1"),
]

# (counterparty, currency, owed, owing, net, paid?) worked out by hand from PAYABLES:
# evo EUR 50,000 + 25,000; a1 EUR 30,000 - 12,000 = 18,000 (>= 10,000: paid);
# a2 EUR 8,000 - 1,000 = 7,000 (< 10,000: carried); a3 EUR 2,000 - 5,000 = -3,000 (it
# owes: carried); a1 GBP 9,999 (one short of the minimum: carried); evo GBP 10,000 (the
# minimum exactly: paid).
FIRST_RUN = [
    ("partner:a1", "EUR", 30_000, 12_000, 18_000, True),
    ("partner:a1", "GBP", 9_999, 0, 9_999, False),
    ("partner:a2", "EUR", 8_000, 1_000, 7_000, False),
    ("partner:a3", "EUR", 2_000, 5_000, -3_000, False),
    ("provider:evo", "EUR", 75_000, 0, 75_000, True),
    ("provider:evo", "GBP", 10_000, 0, 10_000, True),
]


@pytest.fixture
def world() -> World:
    w = World(payables=PAYABLES, policy=POLICY)
    for cp in ("provider:evo", "partner:a1", "partner:a2", "partner:a3"):
        w.register(cp)
    return w


def test_a_run_nets_each_counterparty_per_currency_and_carries_what_is_below_the_minimum(
    world: World,
) -> None:
    run = world.service.build_run(RunScope("all"), world.maker)
    assert run.status is RunStatus.APPROVED
    got = [
        (ln.counterparty, ln.currency, ln.owed, ln.owing, ln.net, bool(ln.payout_id))
        for ln in run.lines
    ]
    assert got == FIRST_RUN
    assert dict(run.totals) == {"EUR": 93_000, "GBP": 10_000}
    payouts = {(p.counterparty, p.currency): p for p in world.service.payouts_of_run(run.id)}
    evo = payouts[("provider:evo", "EUR")]
    # One leg per payable account: the provider's fees owed by two operators.
    assert [(leg.account_id, leg.amount) for leg in evo.legs] == [
        ("provider:evo:fee_payable:op1:EUR", 50_000),
        ("provider:evo:fee_payable:op2:EUR", 25_000),
    ]
    world.worker.drain()
    assert {p.state for p in world.service.payouts_of_run(run.id)} == {PayoutState.CONFIRMED}
    # Paid payables are cleared; carried ones stay where settlement left them.
    assert world.net("provider:evo:fee_payable:op1:EUR") == 0
    assert world.net("provider:evo:fee_payable:op2:EUR") == 0
    assert world.net("partner:a1:commission_payable:EUR") == 0
    assert world.net("partner:a2:commission_payable:EUR") == 7_000
    assert world.net("partner:a3:commission_payable:EUR") == -3_000
    assert world.net("partner:a1:commission_payable:GBP") == 9_999
    assert world.net("platform:payouts:clearing:EUR") == 93_000
    assert world.net("platform:payouts:clearing:GBP") == 10_000
    totals = world.ledger.totals_by_currency()
    assert all(
        b.debits_posted == b.credits_posted and b.debits_pending == b.credits_pending
        for b in totals.values()
    )


def test_carried_amounts_are_paid_by_the_first_run_that_lifts_them_over_the_minimum(
    world: World,
) -> None:
    world.service.build_run(RunScope("all"), world.maker)
    world.worker.drain()
    world.source.items += [
        payable("com:a2:04", "partner:a2", "EUR", 4_000),
        payable("com:a3:04", "partner:a3", "EUR", 3_000),
    ]
    world._fund(world.source.items[-2:])
    second = world.service.build_run(RunScope("all"), world.maker)
    # a2: carried 7,000 + 4,000 = 11,000, paid; a3: -3,000 + 3,000 = 0, still carried;
    # a1 GBP still 9,999 short; the paid ones are not in it again.
    got = [
        (ln.counterparty, ln.currency, ln.owed, ln.owing, ln.net, bool(ln.payout_id))
        for ln in second.lines
    ]
    assert got == [
        ("partner:a1", "GBP", 9_999, 0, 9_999, False),
        ("partner:a2", "EUR", 12_000, 1_000, 11_000, True),
        ("partner:a3", "EUR", 5_000, 5_000, 0, False),
    ]
    world.worker.drain()
    assert world.net("partner:a2:commission_payable:EUR") == 0
    positions = {(p.counterparty, p.currency): p for p in world.service.positions()}
    a2 = positions[("partner:a2", "EUR")]
    assert (a2.owed, a2.paid, a2.in_flight, a2.carried_forward) == (11_000, 11_000, 0, 0)
    a3 = positions[("partner:a3", "EUR")]
    assert (a3.owed, a3.paid, a3.carried_forward) == (0, 0, 0)
    evo = positions[("provider:evo", "EUR")]
    assert (evo.owed, evo.paid, evo.carried_forward) == (75_000, 75_000, 0)


def test_a_run_by_partner_subtree_takes_only_that_subtree(world: World) -> None:
    world.source.tree = {"a1": {"a2"}, "a2": set()}
    run = world.service.build_run(RunScope("partner", "a1", "EUR"), world.maker)
    assert [(ln.counterparty, ln.net, bool(ln.payout_id)) for ln in run.lines] == [
        ("partner:a1", 18_000, True),
        ("partner:a2", 7_000, False),
    ]


def test_a_run_by_provider_and_currency(world: World) -> None:
    run = world.service.build_run(RunScope("provider", "evo", "GBP"), world.maker)
    assert [(ln.counterparty, ln.currency, ln.net) for ln in run.lines] == [
        ("provider:evo", "GBP", 10_000)
    ]


def test_a_payable_is_never_in_two_live_payouts(world: World) -> None:
    world.service.build_run(RunScope("provider", "evo"), world.maker)
    with pytest.raises(PayoutRefused) as err:
        world.service.build_run(RunScope("provider", "evo"), world.maker)
    assert err.value.code is Refusal.NOTHING_TO_PAY


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("unknown", Refusal.UNKNOWN_COUNTERPARTY),
        ("blocked", Refusal.BLOCKED_COUNTERPARTY),
        ("gold", Refusal.NO_RAIL_FOR_CURRENCY),
    ],
)
def test_bad_input_refuses_the_whole_run_with_an_alert_and_claims_nothing(
    setup: str, code: Refusal
) -> None:
    items = [payable("fee:evo:op1", "provider:evo", "EUR", 50_000)]
    if setup == "unknown":
        items.append(payable("com:zz", "partner:zz", "EUR", 20_000))
    if setup == "gold":
        items.append(payable("fee:evo:jpy", "provider:evo", "JPY", 20_000))
    world = World(payables=items, policy=POLICY)
    world.register("provider:evo", blocked=setup == "blocked")
    with pytest.raises(PayoutRefused) as err:
        world.service.build_run(RunScope("all"), world.maker)
    assert err.value.code is code
    assert world.alerts.kinds() == [f"payouts.refused.{code.slug}"]
    assert world.service.runs() == []
    assert world.store.claimed(p.id for p in items) == set()
    assert world.net("provider:evo:fee_payable:op1:EUR") == 50_000


def test_a_run_over_the_amount_waits_for_a_second_user_with_a_fresh_code() -> None:
    policy = PayoutPolicy(approval_above_minor={"EUR": 50_000})
    items = [payable("fee:evo:op1", "provider:evo", "EUR", 50_001)]
    world = World(payables=items, policy=policy, codes=[("user:checker", "123456")])
    world.register("provider:evo")
    run = world.service.build_run(RunScope("all"), world.maker)
    assert run.status is RunStatus.AWAITING_APPROVAL
    assert world.worker.drain() == 0  # nothing moves before the approval
    assert {p.state for p in world.service.payouts_of_run(run.id)} == {PayoutState.REQUESTED}
    with pytest.raises(PayoutRefused) as err:
        world.service.approve(run.id, "123456", world.maker)
    assert err.value.code is Refusal.MAKER_CANNOT_APPROVE
    with pytest.raises(PayoutRefused) as err:
        world.service.approve(run.id, "654321", world.checker)
    assert err.value.code is Refusal.SECOND_FACTOR_REFUSED
    approved = world.service.approve(run.id, "123456", world.checker)
    assert (approved.status, approved.approver, approved.maker) == (
        RunStatus.APPROVED,
        "user:checker",
        "user:maker",
    )
    with pytest.raises(PayoutRefused) as err:
        world.service.approve(run.id, "123456", world.checker)
    assert err.value.code is Refusal.RUN_NOT_AWAITING_APPROVAL
    world.worker.drain()
    assert {p.state for p in world.service.payouts_of_run(run.id)} == {PayoutState.CONFIRMED}
    actions = [r.entry.action for r in world.audit.iter_audit()]
    assert actions.count("payouts.run.created") == 1
    assert actions.count("payouts.run.approved") == 1
    assert "payouts.worker.step" in actions


def test_a_run_at_the_amount_exactly_needs_no_approval() -> None:
    policy = PayoutPolicy(approval_above_minor={"EUR": 50_000})
    world = World(payables=[payable("f", "provider:evo", "EUR", 50_000)], policy=policy)
    world.register("provider:evo")
    assert world.service.build_run(RunScope("all"), world.maker).status is RunStatus.APPROVED
