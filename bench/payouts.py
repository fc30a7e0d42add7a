"""Payouts: a run of N payouts reserved and submitted on the embedded store, and the
rail's asynchronous answers absorbed, beside a naive worker (one payout per transaction).

Two rails: ``internal`` (a ledger transfer in the same file, confirmed at once: reserve,
submit and post) and ``async`` (an in-process rail that takes each payment and answers
SUBMITTED, as a PSP does; its confirmations are then absorbed as webhooks would be).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tally.adapters.memory.backoffice import scratch_auditing
from tally.adapters.payouts.internal import InternalRail
from tally.adapters.sqlite.ledger import SqliteLedgerStore
from tally.adapters.sqlite.payouts import SqlitePayoutStore
from tally.kernel.alerts import AlertSignal
from tally.kernel.clock import SystemClock
from tally.kernel.limits import PayoutLimits
from tally.ledger.model import Account, OwnerKind, TransferRequest
from tally.payouts.model import (
    Counterparty,
    CounterpartyKind,
    Payable,
    PayoutPolicy,
    PayoutState,
    RunScope,
)
from tally.payouts.rails import PayoutInstruction, RailAnswer, RailOutcome
from tally.payouts.service import PayoutService, PayoutWorker

TARGET_PER_S = 5_000


class _Alerts:
    def signal(self, alert: AlertSignal) -> None:
        pass

    def clear(self, kind: str, key: str, at: object) -> None:
        pass


class _NoFactor:
    def verify(self, actor: str, code: str) -> bool:
        return False


class _Payables:
    def __init__(self, items: list[Payable]) -> None:
        self.items = items

    def payables(self) -> list[Payable]:
        return self.items

    def subtree(self, agent: str) -> frozenset[str]:
        return frozenset({agent})


class AsyncRail:
    """Takes each payment (idempotent on its key) and answers SUBMITTED."""

    def __init__(self) -> None:
        self.taken: dict[str, PayoutInstruction] = {}

    @property
    def name(self) -> str:
        return "async"

    def supports(self, currency: str) -> bool:
        return True

    def submit(self, instructions: Sequence[PayoutInstruction]) -> Sequence[RailAnswer]:
        out = []
        for i in instructions:
            self.taken.setdefault(i.idempotency_key, i)
            out.append(
                RailAnswer(i.payout_id, RailOutcome.SUBMITTED, f"a-{i.idempotency_key[-12:]}")
            )
        return out

    def status(self, instruction: PayoutInstruction) -> RailAnswer:
        found = instruction.idempotency_key in self.taken
        return RailAnswer(
            instruction.payout_id, RailOutcome.SUBMITTED if found else RailOutcome.REJECTED
        )


def _world(
    path: Path, n: int, rail_name: str, step: int
) -> tuple[PayoutService, SqliteLedgerStore]:
    clock = SystemClock()
    ledger = SqliteLedgerStore(path)
    store = SqlitePayoutStore(ledger)
    internal = InternalRail(ledger, clock)
    rail: Any = internal if rail_name == "internal" else AsyncRail()
    service = PayoutService(
        store,
        _Payables([]),
        {rail.name: rail},
        clock,
        _Alerts(),
        second_factor=_NoFactor(),
        policy=PayoutPolicy(approval_above_default_minor=10**15),
        limits=PayoutLimits(step_max_payouts=step),
        system=scratch_auditing("system:payouts", "bench"),
    )
    now = clock.now()
    expense = Account(
        "operator:op1:commission_expense:EUR",
        OwnerKind.OPERATOR,
        "op1",
        "EUR",
        "commission_expense",
    )
    items: list[Payable] = []
    accounts = [expense]
    for i in range(n):
        payable_id = f"partner:a{i}:commission_payable:EUR"
        accounts.append(
            Account(payable_id, OwnerKind.PARTNER, f"a{i}", "EUR", "commission_payable")
        )
        accounts.append(
            Account(f"partner:a{i}:wallet:EUR", OwnerKind.PARTNER, f"a{i}", "EUR", "wallet")
        )
        items.append(
            Payable(
                f"com:a{i}:2026-03",
                f"partner:a{i}",
                "EUR",
                10_000 + i,
                payable_id,
                "2026-03",
                "op1",
            )
        )
    for start in range(0, len(accounts), 20_000):
        ledger.create_accounts(accounts[start : start + 20_000], now)
    for start in range(0, n, 10_000):
        chunk = items[start : start + 10_000]
        ledger.apply(
            [
                [
                    TransferRequest(
                        f"accrue:{p.id}",
                        expense.id,
                        p.account_id,
                        p.amount,
                        "EUR",
                        "commission_accrual",
                    )
                ]
                for p in chunk
            ],
            now,
        )
    with store.unit_of_work() as tx:
        for i in range(n):
            cp = Counterparty(
                f"partner:a{i}",
                CounterpartyKind.PARTNER,
                f"a{i}",
                f"Agent {i}",
                rail.name,
                f"partner:a{i}:wallet:EUR",
            )
            store.put_counterparty_in(tx, cp, now)
    service.payables = _Payables(items)
    return service, ledger


def run_once(n: int, rail_name: str, step: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        service, ledger = _world(Path(tmp) / "payouts.sqlite", n, rail_name, step)
        started = time.perf_counter()
        run = service.build_run(RunScope("all"), scratch_auditing("user:maker", "bench"))
        built_s = time.perf_counter() - started
        worker = PayoutWorker(service)
        started = time.perf_counter()
        worker.drain()
        moved_s = time.perf_counter() - started
        payouts = service.payouts_of_run(run.id)
        want = PayoutState.CONFIRMED if rail_name == "internal" else PayoutState.SUBMITTED
        assert all(p.state is want for p in payouts), "not every payout reached " + want.value
        result: dict[str, Any] = {
            "rail": rail_name,
            "payouts": len(payouts),
            "step": step,
            "build_s": round(built_s, 3),
            "reserve_submit_s": round(moved_s, 3),
            "payouts_per_s": round(len(payouts) / moved_s, 1),
        }
        if rail_name == "async":
            answers = [RailAnswer(p.id, RailOutcome.CONFIRMED, p.rail_reference) for p in payouts]
            started = time.perf_counter()
            for start in range(0, len(answers), service.limits.absorb_max_answers):
                service.absorb("async", answers[start : start + service.limits.absorb_max_answers])
            absorbed_s = time.perf_counter() - started
            assert all(p.state is PayoutState.CONFIRMED for p in service.payouts_of_run(run.id))
            result["absorb_s"] = round(absorbed_s, 3)
            result["absorbed_per_s"] = round(len(answers) / absorbed_s, 1)
        service.store.close()
        ledger.close()
        return result


def run(payouts: int, naive_sample: int) -> dict[str, Any]:
    runs = [run_once(payouts, "internal", 5_000), run_once(payouts, "async", 5_000)]
    naive = run_once(naive_sample, "internal", 1)
    for r in runs:
        r["x_naive"] = round(r["payouts_per_s"] / naive["payouts_per_s"], 1)
        r["met_target"] = (
            r["payouts_per_s"] >= TARGET_PER_S
            and r.get("absorbed_per_s", TARGET_PER_S) >= TARGET_PER_S
        )
    return {"benchmark": "payouts", "target_per_s": TARGET_PER_S, "runs": runs, "naive": naive}
