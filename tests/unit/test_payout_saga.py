"""Each payout's saga against a rail that fails: reserve, submit, post, void, ask, expire."""

from __future__ import annotations

import pytest

from tally.ledger.model import Account, OwnerKind, PendingStatus
from tally.payouts.model import PayoutPolicy, PayoutRefused, PayoutState, Refusal, RunScope
from tally.payouts.rails import RailAnswer, RailOutcome
from tests.support.payouts import Faults, FaultyRail, World, payable

POLICY = PayoutPolicy(
    reservation_timeout_s=3_600, answer_wait_s=600, status_retry_s=60, expired_check_s=600
)
FEE = "provider:evo:fee_payable:op1:EUR"
CLEARING = "platform:payouts:clearing:EUR"


def world_with(faults: Faults, amount: int = 50_000) -> World:
    w = World(
        payables=[payable("fee:evo:op1", "provider:evo", "EUR", amount)],
        policy=POLICY,
        rail=FaultyRail(faults=faults),
    )
    w.register("provider:evo")
    w.service.build_run(RunScope("all"), w.maker)
    return w


def only(world: World):  # type: ignore[no-untyped-def]
    [p] = world.all_payouts()
    return p


def test_a_confirmed_payment_posts_its_reservation_once() -> None:
    w = world_with(Faults())
    w.worker.drain()
    p = only(w)
    assert p.state is PayoutState.CONFIRMED
    assert w.net(FEE) == 0 and w.net(CLEARING) == 50_000
    reservation = w.ledger.get_transfer(f"payout:{p.id}:reserve:0")
    assert reservation.status is PendingStatus.POSTED
    assert w.rail.bank.payments == {p.idempotency_key: 1}


def test_a_rejected_payment_voids_and_frees_its_payables_for_the_next_run() -> None:
    w = world_with(Faults(reject=1000))
    w.worker.drain()
    p = only(w)
    assert p.state is PayoutState.FAILED
    assert w.ledger.get_transfer(f"payout:{p.id}:reserve:0").status is PendingStatus.VOIDED
    balance = w.ledger.balance(FEE)
    assert (balance.net_credit, balance.debits_pending) == (50_000, 0)
    assert w.store.claimed(["fee:evo:op1"]) == set()
    w.rail.faults.reject = 0
    again = w.service.build_run(RunScope("all"), w.maker)
    w.worker.drain()
    assert [q.state for q in w.service.payouts_of_run(again.id)] == [PayoutState.CONFIRMED]
    assert w.net(FEE) == 0


def test_an_asynchronous_answer_absorbed_twice_posts_once() -> None:
    w = world_with(Faults(asynchronous=1000, webhook_duplicate=1000))
    w.worker.drain()
    assert only(w).state is PayoutState.SUBMITTED
    answers = w.rail.deliver()
    assert len(answers) == 2
    done = w.service.absorb("psp", answers)
    assert (done.applied, done.unchanged) == (1, 1)
    assert only(w).state is PayoutState.CONFIRMED
    assert w.service.absorb("psp", answers).applied == 0
    assert w.net(FEE) == 0 and w.net(CLEARING) == 50_000


def test_an_unknown_answer_is_never_voided_the_rail_is_asked_first() -> None:
    w = world_with(Faults(unknown=1000, webhook_lost=1000))
    w.worker.drain()
    p = only(w)
    assert p.state is PayoutState.SUBMITTED
    assert w.ledger.get_transfer(f"payout:{p.id}:reserve:0").status is PendingStatus.PENDING
    w.advance(60)
    w.worker.drain()
    assert only(w).state is PayoutState.CONFIRMED  # status said it was paid


def test_a_rail_that_was_down_is_asked_and_a_payment_it_never_took_fails() -> None:
    w = world_with(Faults(down=1000))
    w.worker.drain()
    assert only(w).state is PayoutState.SUBMITTED  # maybe taken: not voided
    w.rail.faults.down = 0
    w.advance(60)
    w.worker.drain()
    p = only(w)
    assert (p.state, p.reason) == (PayoutState.FAILED, "no such payment")
    assert w.net(FEE) == 50_000


def test_a_lost_reply_is_resolved_by_status_not_by_paying_again() -> None:
    w = world_with(Faults(lost_reply=1000))
    w.worker.drain()
    w.advance(60)
    w.worker.drain()
    p = only(w)
    assert p.state is PayoutState.CONFIRMED
    assert w.rail.bank.payments == {p.idempotency_key: 1}


def test_a_lapsed_reservation_expires_with_an_alert_and_a_late_confirmation_posts_outright() -> (
    None
):
    w = world_with(Faults(asynchronous=1000, webhook_lost=1000, status_unknown=1000))
    w.worker.drain()
    w.advance(3_600)
    w.worker.drain()
    p = only(w)
    assert p.state is PayoutState.EXPIRED
    [alert] = [a for a in w.alerts.signals if a.kind == "payouts.reservation_expired"]
    assert (alert.key, alert.money_at_risk, alert.severity.value) == (
        f"payout:{p.id}",
        50_000,
        "critical",
    )
    # The ledger let the reservation go (it expires due pendings on its next write).
    w.ledger.apply([], w.clock.now())
    assert w.ledger.get_transfer(f"payout:{p.id}:reserve:0").status is PendingStatus.EXPIRED
    assert w.net(FEE) == 50_000
    # It stays claimed (it may have been paid): a new run does not pay it again.
    with pytest.raises(PayoutRefused):
        w.service.build_run(RunScope("all"), w.maker)
    w.rail.faults.status_unknown = 0
    w.advance(600)
    w.worker.drain()
    assert only(w).state is PayoutState.CONFIRMED
    assert "payouts.confirmed_after_expiry" in w.alerts.kinds()
    assert ("payouts.reservation_expired", f"payout:{p.id}") in w.alerts.cleared
    assert w.net(FEE) == 0 and w.net(CLEARING) == 50_000
    assert w.rail.bank.payments == {p.idempotency_key: 1}


def test_answers_for_a_payout_that_does_not_exist_are_refused_whole_and_nothing_moves() -> None:
    w = world_with(Faults(asynchronous=1000))
    w.worker.drain()
    p = only(w)
    batch = [
        RailAnswer(p.id, RailOutcome.CONFIRMED),
        RailAnswer("run-x-000001", RailOutcome.CONFIRMED),
    ]
    with pytest.raises(PayoutRefused) as err:
        w.service.absorb("psp", batch)
    assert err.value.code is Refusal.UNKNOWN_PAYOUT
    assert "run-x-000001" in err.value.message
    assert "payouts.refused.unknown_payout" in w.alerts.kinds()
    assert only(w).state is PayoutState.SUBMITTED
    with pytest.raises(PayoutRefused) as err:
        w.service.absorb("internal", [RailAnswer(p.id, RailOutcome.CONFIRMED)])
    assert err.value.code is Refusal.ANSWER_FROM_ANOTHER_RAIL
    with pytest.raises(PayoutRefused) as err:
        w.service.absorb("nope", [RailAnswer(p.id, RailOutcome.CONFIRMED)])
    assert err.value.code is Refusal.UNKNOWN_RAIL
    assert only(w).state is PayoutState.SUBMITTED


def test_a_confirmation_after_a_definite_failure_is_signalled_not_acted_on() -> None:
    w = world_with(Faults(reject=1000))
    w.worker.drain()
    p = only(w)
    done = w.service.absorb("psp", [RailAnswer(p.id, RailOutcome.CONFIRMED)])
    assert done.contradictions == (p.id,)
    assert only(w).state is PayoutState.FAILED
    assert "payouts.contradiction" in w.alerts.kinds()
    assert w.net(FEE) == 50_000


def test_the_internal_rail_pays_a_counterparty_that_holds_an_account_in_tally() -> None:
    w = World(payables=[payable("com:a1", "partner:a1", "EUR", 12_345)], policy=POLICY)
    wallet = Account("partner:a1:wallet:EUR", OwnerKind.PARTNER, "a1", "EUR", "wallet")
    w.ledger.create_accounts([wallet], w.clock.now())
    w.register("partner:a1", rail="internal", account=wallet.id)
    w.service.build_run(RunScope("all"), w.maker)
    w.worker.drain()
    p = only(w)
    assert (p.state, p.rail_reference) == (
        PayoutState.CONFIRMED,
        f"rail:internal:{p.idempotency_key}",
    )
    assert w.net(wallet.id) == 12_345
    assert w.net("partner:a1:commission_payable:EUR") == 0
    assert w.net(CLEARING) == 0  # in through the post, out through the internal transfer
    assert w.internal.status(p.instruction()).outcome is RailOutcome.CONFIRMED
    # Submitting again is the same payment.
    [again] = w.internal.submit([p.instruction()])
    assert again.outcome is RailOutcome.CONFIRMED and w.net(wallet.id) == 12_345


def test_the_internal_rail_refuses_an_account_that_does_not_exist() -> None:
    w = World(payables=[payable("com:a1", "partner:a1", "EUR", 12_345)], policy=POLICY)
    w.register("partner:a1", rail="internal", account="partner:a1:nowhere:EUR")
    w.service.build_run(RunScope("all"), w.maker)
    w.worker.drain()
    p = only(w)
    assert (p.state, p.reason) == (PayoutState.FAILED, "credit_account_not_found")
    assert w.net("partner:a1:commission_payable:EUR") == 12_345


def test_each_submit_carries_one_run_so_a_bank_file_is_one_run() -> None:
    w = World(
        payables=[
            payable("f1", "provider:evo", "EUR", 5_000),
            payable("c1", "partner:a1", "EUR", 7_000),
        ],
        policy=POLICY,
    )
    w.register("provider:evo")
    w.register("partner:a1")
    first = w.service.build_run(RunScope("provider", "evo"), w.maker)
    second = w.service.build_run(RunScope("partner", "a1"), w.maker)
    w.worker.drain()
    assert sorted(map(sorted, w.rail.submitted_runs)) == sorted([[first.id], [second.id]])


def test_a_status_report_for_another_run_is_refused_and_nothing_moves() -> None:
    w = world_with(Faults(asynchronous=1000))
    w.worker.drain()
    p = only(w)
    with pytest.raises(PayoutRefused) as err:
        w.service.absorb("psp", [RailAnswer(p.id, RailOutcome.CONFIRMED)], run_id="run-other")
    assert err.value.code is Refusal.ANSWER_FOR_ANOTHER_RUN
    assert "payouts.refused.answer_for_another_run" in w.alerts.kinds()
    assert only(w).state is PayoutState.SUBMITTED
    assert (
        w.service.absorb("psp", [RailAnswer(p.id, RailOutcome.CONFIRMED)], run_id=p.run_id).applied
        == 1
    )
    assert only(w).state is PayoutState.CONFIRMED
