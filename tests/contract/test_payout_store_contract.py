"""The payouts store behaves the same on memory, SQLite and PostgreSQL: runs and claims,
the saga's transitions written with their ledger transfers, compare-and-set on state."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from tally.payouts.model import (
    PayoutPolicy,
    PayoutRefused,
    PayoutState,
    Refusal,
    RunScope,
    RunStatus,
    post_transfers,
    reserve,
)
from tally.payouts.rails import RailAnswer, RailOutcome
from tests.support.payouts import Faults, FaultyRail, World, payable

POLICY = PayoutPolicy(
    minimum_minor={"EUR": 1_000},
    approval_above_minor={"EUR": 100_000},
    reservation_timeout_s=3_600,
    status_retry_s=60,
    answer_wait_s=600,
    expired_check_s=600,
)
PAYABLES = [
    payable("fee:evo:op1", "provider:evo", "EUR", 40_000, "op1"),
    payable("fee:evo:op2", "provider:evo", "EUR", 2_500, "op2"),
    payable("com:a1:03", "partner:a1", "EUR", 9_000),
    payable("com:a1:02", "partner:a1", "EUR", -1_500),
    payable("com:a2:03", "partner:a2", "EUR", 900),
]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    made: list[World] = []

    def factory(**kw: object) -> World:
        where: dict[str, object] = {}
        if request.param == "sqlite":
            where["path"] = tmp_path / f"payouts-{len(made)}.sqlite"
        elif request.param == "postgres":
            assert not made, "one PostgreSQL world per test"
            where["pg_schema"] = request.getfixturevalue("pg_schema")
        kw.setdefault("payables", PAYABLES)
        kw.setdefault("policy", POLICY)
        made.append(World(request.param, **where, **kw))  # type: ignore[arg-type]
        for cp in ("provider:evo", "partner:a1", "partner:a2"):
            made[-1].register(cp)
        return made[-1]

    yield factory
    for w in made:
        w.close()


def test_a_run_is_stored_whole_with_its_lines_payouts_and_claims(make) -> None:  # type: ignore[no-untyped-def]
    w = make()
    run = w.service.build_run(RunScope("all"), w.maker)
    again = w.service.run(run.id)
    assert again == run
    assert [(ln.counterparty, ln.net, bool(ln.payout_id)) for ln in run.lines] == [
        ("partner:a1", 7_500, True),
        ("partner:a2", 900, False),
        ("provider:evo", 42_500, True),
    ]
    payouts = w.service.payouts_of_run(run.id)
    assert [(p.counterparty, p.amount, p.state) for p in payouts] == [
        ("partner:a1", 7_500, PayoutState.REQUESTED),
        ("provider:evo", 42_500, PayoutState.REQUESTED),
    ]
    assert w.store.payouts([payouts[1].id]) == {payouts[1].id: payouts[1]}
    assert w.store.claimed([p.id for p in PAYABLES]) == {
        "fee:evo:op1",
        "fee:evo:op2",
        "com:a1:03",
        "com:a1:02",
    }
    assert [c.id for c in w.store.counterparties()] == ["partner:a1", "partner:a2", "provider:evo"]
    assert w.store.counterparty("partner:a2").name == "a2 Ltd"
    assert w.service.runs() == [run]


def test_a_second_claim_on_a_payable_is_refused_and_rolls_the_run_back(make) -> None:  # type: ignore[no-untyped-def]
    w = make()
    run = w.service.build_run(RunScope("provider", "evo"), w.maker)
    # A stale planner (another process) that did not see the first run's claims:
    from tally.payouts.model import plan_run

    plan = plan_run(
        "run-stale",
        [p for p in PAYABLES if p.counterparty == "provider:evo"],
        {c.id: c for c in w.store.counterparties()},
        POLICY,
        {"psp": None, "internal": None},
        w.clock.now(),
    )
    stale = replace(run, id="run-stale")
    with pytest.raises(PayoutRefused) as err, w.store.unit_of_work() as tx:
        w.store.create_run_in(tx, stale, plan)
    assert err.value.code is Refusal.PAYABLES_ALREADY_CLAIMED
    assert w.store.run("run-stale") is None
    assert w.store.payouts(["run-stale-000001"]) == {}


def test_due_holds_back_a_run_awaiting_approval(make) -> None:  # type: ignore[no-untyped-def]
    w = make(
        payables=[payable("big", "provider:evo", "EUR", 100_001)],
        codes=[("user:checker", "111111")],
    )
    run = w.service.build_run(RunScope("all"), w.maker)
    assert run.status is RunStatus.AWAITING_APPROVAL
    assert w.store.due(w.clock.now(), 10) == []
    w.service.approve(run.id, "111111", w.checker)
    assert w.store.run(run.id).approver == "user:checker"
    assert [p.state for p in w.store.due(w.clock.now(), 10)] == [PayoutState.REQUESTED]


def test_a_transition_whose_payout_moved_meanwhile_writes_nothing(make) -> None:  # type: ignore[no-untyped-def]
    w = make()
    run = w.service.build_run(RunScope("provider", "evo"), w.maker)
    [p] = w.service.payouts_of_run(run.id)
    t = reserve(p, POLICY, w.clock.now())
    [(_, written)] = w.service.commit([t], "test")
    assert written.state is PayoutState.RESERVED
    # The same move again (a second worker, a replayed step): the payout is not REQUESTED.
    assert w.service.commit([t], "test") == []
    balance = w.ledger.balance("provider:evo:fee_payable:op1:EUR")
    assert (balance.debits_pending, balance.net_credit) == (40_000, 40_000)


def test_the_ledger_refusing_a_transition_writes_its_fallback(make) -> None:  # type: ignore[no-untyped-def]
    w = make()
    run = w.service.build_run(RunScope("provider", "evo"), w.maker)
    [p] = w.service.payouts_of_run(run.id)
    # A post before any reservation: the ledger refuses (pending transfer not found).
    t = reserve(p, POLICY, w.clock.now())
    bad = replace(t, transfers=post_transfers(p, w.clock.now()))
    [(_, written)] = w.service.commit([bad], "test")
    assert written.state is PayoutState.FAILED
    assert "pending_transfer_not_found" in written.reason
    assert w.store.claimed(["fee:evo:op1", "fee:evo:op2"]) == set()
    assert "payouts.reservation_refused" in w.alerts.kinds()


def test_the_saga_runs_the_same_on_every_store(make) -> None:  # type: ignore[no-untyped-def]
    w = make(rail=FaultyRail(faults=Faults(asynchronous=1000)))
    run = w.service.build_run(RunScope("all"), w.maker)
    w.worker.drain()
    payouts = w.service.payouts_of_run(run.id)
    assert {p.state for p in payouts} == {PayoutState.SUBMITTED}
    evo = next(p for p in payouts if p.counterparty == "provider:evo")
    a1 = next(p for p in payouts if p.counterparty == "partner:a1")
    w.service.absorb(
        "psp",
        [
            RailAnswer(evo.id, RailOutcome.CONFIRMED, "ref-1"),
            RailAnswer(a1.id, RailOutcome.REJECTED, reason="closed"),
        ],
    )
    got = {
        p.counterparty: (p.state, p.rail_reference, p.reason)
        for p in w.service.payouts_of_run(run.id)
    }
    assert got == {
        "provider:evo": (PayoutState.CONFIRMED, "ref-1", ""),
        "partner:a1": (PayoutState.FAILED, "psp-" + a1.idempotency_key[-8:], "closed"),
    }
    assert w.net("provider:evo:fee_payable:op1:EUR") == 0
    assert w.net("provider:evo:fee_payable:op2:EUR") == 0
    assert w.net("partner:a1:commission_payable:EUR") == 7_500
    assert w.net("platform:payouts:clearing:EUR") == 42_500
    assert w.store.claimed(["com:a1:03", "com:a1:02"]) == set()
    positions = {p.counterparty: p for p in w.service.positions()}
    assert (positions["provider:evo"].paid, positions["partner:a1"].carried_forward) == (
        42_500,
        7_500,
    )
    assert (positions["partner:a2"].owed, positions["partner:a2"].carried_forward) == (900, 900)
    actions = [r.entry.action for r in w.audit.iter_audit()]
    assert actions.count("payouts.answers.absorbed") == 1
    assert actions.count("payouts.run.created") == 1


def test_due_returns_checks_only_when_they_fall_due(make) -> None:  # type: ignore[no-untyped-def]
    w = make(rail=FaultyRail(faults=Faults(unknown=1000, webhook_lost=1000)))
    w.service.build_run(RunScope("provider", "evo"), w.maker)
    w.worker.drain()
    assert w.store.due(w.clock.now(), 10) == []
    [p] = w.store.due(w.clock.now() + timedelta(seconds=60), 10)
    assert p.state is PayoutState.SUBMITTED
