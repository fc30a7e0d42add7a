"""Payouts test kit: a world of payables on a ledger, a recording alert sink, a second
factor, and a rail that fails in every way a real one does (over a bank that is the
truth of what was paid)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tally.adapters.memory.backoffice import MemoryBackofficeStore
from tally.adapters.memory.ledger import MemoryLedgerStore
from tally.adapters.memory.payouts import MemoryPayoutStore
from tally.adapters.payouts.internal import InternalRail
from tally.audit.chain import Sealer
from tally.audit.service import Auditing
from tally.kernel.alerts import AlertSignal
from tally.kernel.clock import FixedClock
from tally.kernel.limits import PayoutLimits
from tally.ledger.model import Account, OwnerKind, TransferRequest
from tally.payouts.model import (
    Counterparty,
    CounterpartyKind,
    Payable,
    Payout,
    PayoutPolicy,
    PayoutState,
)
from tally.payouts.rails import PayoutInstruction, RailAnswer, RailOutcome
from tally.payouts.service import PayoutService, PayoutWorker

START = datetime(2026, 4, 2, 9, 0, tzinfo=UTC)


class RecordingAlerts:
    """Stands in for the risk context's sink: keeps what was signalled and cleared."""

    def __init__(self) -> None:
        self.signals: list[AlertSignal] = []
        self.cleared: list[tuple[str, str]] = []

    def signal(self, alert: AlertSignal) -> None:
        self.signals.append(alert)

    def clear(self, kind: str, key: str, at: datetime) -> None:
        self.cleared.append((kind, key))

    def kinds(self) -> list[str]:
        return [s.kind for s in self.signals]


class Codes:
    """A second factor that accepts each listed (actor, code) once."""

    def __init__(self, valid: Sequence[tuple[str, str]] = ()) -> None:
        self.valid = set(valid)

    def verify(self, actor: str, code: str) -> bool:
        if (actor, code) in self.valid:
            self.valid.discard((actor, code))
            return True
        return False


class StaticPayables:
    def __init__(
        self, payables: Sequence[Payable] = (), tree: dict[str, set[str]] | None = None
    ) -> None:
        self.items = list(payables)
        self.tree = tree or {}

    def payables(self) -> list[Payable]:
        return list(self.items)

    def subtree(self, agent: str) -> frozenset[str]:
        out = {agent}
        todo = [agent]
        while todo:
            for child in self.tree.get(todo.pop(), set()):
                if child not in out:
                    out.add(child)
                    todo.append(child)
        return frozenset(out)


def payable_account(counterparty: str, currency: str, operator: str = "op1") -> Account:
    kind, party = counterparty.split(":", 1)
    if kind == "provider":
        return Account(
            f"provider:{party}:fee_payable:{operator}:{currency}",
            OwnerKind.PROVIDER,
            party,
            currency,
            "fee_payable",
        )
    return Account(
        f"partner:{party}:commission_payable:{currency}",
        OwnerKind.PARTNER,
        party,
        currency,
        "commission_payable",
    )


def expense_account(currency: str, operator: str = "op1") -> Account:
    return Account(
        f"operator:{operator}:expense:{currency}", OwnerKind.OPERATOR, operator, currency, "expense"
    )


# -- the faulty rail ------------------------------------------------------------------------
@dataclass
class Faults:
    """Chances (per mille) of each way a rail fails."""

    down: int = 0  # the call fails before the rail takes anything (a 5xx)
    lost_reply: int = 0  # the rail took it, the reply was lost (a timeout)
    unknown: int = 0  # the rail answers UNKNOWN for one payment
    asynchronous: int = 0  # the rail answers SUBMITTED; the result comes later
    reject: int = 0  # the bank refuses the payment (a definite no)
    status_unknown: int = 0  # a status query answers UNKNOWN or fails
    webhook_lost: int = 0  # an async answer is never delivered
    webhook_duplicate: int = 0  # an async answer is delivered twice


class RailDown(Exception):
    pass


@dataclass
class Bank:
    """The truth outside Tally: which payments were taken and paid, by idempotency key."""

    taken: dict[str, tuple[PayoutInstruction, bool]] = field(default_factory=dict)
    payments: dict[str, int] = field(default_factory=dict)  # key -> times paid (must stay <= 1)

    def paid(self, payout_id: str) -> bool:
        return any(i.payout_id == payout_id and ok for i, ok in self.taken.values())


class FaultyRail:
    def __init__(self, name: str = "psp", seed: int = 0, faults: Faults | None = None) -> None:
        self._name = name
        self.rng = random.Random(seed)
        self.faults = faults or Faults()
        self.bank = Bank()
        self.outbox: list[RailAnswer] = []
        self.calls = 0
        self.submitted_runs: list[set[str]] = []  # the runs each submit call carried

    @property
    def name(self) -> str:
        return self._name

    def supports(self, currency: str) -> bool:
        return currency != "JPY"

    def _roll(self, per_mille: int) -> bool:
        return per_mille > 0 and self.rng.randrange(1000) < per_mille

    def _take(self, i: PayoutInstruction) -> bool:
        found = self.bank.taken.get(i.idempotency_key)
        if found is not None:
            return found[1]
        ok = not self._roll(self.faults.reject)
        self.bank.taken[i.idempotency_key] = (i, ok)
        if ok:
            self.bank.payments[i.idempotency_key] = self.bank.payments.get(i.idempotency_key, 0) + 1
        return ok

    def submit(self, instructions: Sequence[PayoutInstruction]) -> Sequence[RailAnswer]:
        self.calls += 1
        self.submitted_runs.append({i.run_id for i in instructions})
        if self._roll(self.faults.down):
            raise RailDown("503 service unavailable")
        out = []
        for i in instructions:
            ok = self._take(i)
            definite = RailAnswer(
                i.payout_id,
                RailOutcome.CONFIRMED if ok else RailOutcome.REJECTED,
                f"psp-{i.idempotency_key[-8:]}",
            )
            if self._roll(self.faults.unknown):
                out.append(RailAnswer(i.payout_id, RailOutcome.UNKNOWN))
                self._later(definite)
            elif self._roll(self.faults.asynchronous):
                out.append(RailAnswer(i.payout_id, RailOutcome.SUBMITTED, definite.rail_reference))
                self._later(definite)
            else:
                out.append(definite)
        if self._roll(self.faults.lost_reply):
            raise RailDown("timed out reading the reply")
        return out

    def _later(self, answer: RailAnswer) -> None:
        if self._roll(self.faults.webhook_lost):
            return
        self.outbox.append(answer)
        if self._roll(self.faults.webhook_duplicate):
            self.outbox.append(answer)

    def status(self, instruction: PayoutInstruction) -> RailAnswer:
        if self._roll(self.faults.status_unknown):
            if self.rng.randrange(2):
                raise RailDown("status: 502 bad gateway")
            return RailAnswer(instruction.payout_id, RailOutcome.UNKNOWN)
        found = self.bank.taken.get(instruction.idempotency_key)
        if found is None:
            return RailAnswer(instruction.payout_id, RailOutcome.REJECTED, reason="no such payment")
        return RailAnswer(
            instruction.payout_id, RailOutcome.CONFIRMED if found[1] else RailOutcome.REJECTED
        )

    def deliver(self, count: int | None = None) -> list[RailAnswer]:
        """Take up to ``count`` pending async answers, in a shuffled order (delays)."""
        self.rng.shuffle(self.outbox)
        n = len(self.outbox) if count is None else min(count, len(self.outbox))
        taken, self.outbox = self.outbox[:n], self.outbox[n:]
        return taken


# -- a world ----------------------------------------------------------------------------------
class World:
    """Ledger, payouts store, service and worker on one store kind."""

    def __init__(
        self,
        kind: str = "memory",
        *,
        path: Path | None = None,
        pg_schema: str | None = None,
        payables: Sequence[Payable] = (),
        tree: dict[str, set[str]] | None = None,
        policy: PayoutPolicy | None = None,
        rail: Any = None,
        limits: PayoutLimits | None = None,
        codes: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.clock = FixedClock(START)
        self.alerts = RecordingAlerts()
        self.kind = kind
        sealer = Sealer(bytes(32))
        self.ledger: Any
        self.audit: Any
        if kind == "memory":
            self.ledger = MemoryLedgerStore()
            self.store: Any = MemoryPayoutStore(self.ledger)
            self.audit = MemoryBackofficeStore(sealer)
        elif kind == "sqlite":
            from tally.adapters.sqlite.backoffice import SqliteBackofficeStore
            from tally.adapters.sqlite.ledger import SqliteLedgerStore
            from tally.adapters.sqlite.payouts import SqlitePayoutStore

            assert path is not None
            self.ledger = SqliteLedgerStore(path)
            self.store = SqlitePayoutStore(self.ledger)
            self.audit = SqliteBackofficeStore(path, sealer)
        else:
            from tally.adapters.postgres.backoffice import PostgresBackofficeStore
            from tally.adapters.postgres.ledger import PostgresLedgerStore
            from tally.adapters.postgres.payouts import PostgresPayoutStore
            from tests.conftest import PG_DSN

            self.ledger = PostgresLedgerStore(PG_DSN, schema=pg_schema)
            self.store = PostgresPayoutStore(self.ledger, PG_DSN, schema=pg_schema)
            self.audit = PostgresBackofficeStore(PG_DSN, sealer, schema=pg_schema)
        self.source = StaticPayables(payables, tree)
        self.rail = rail if rail is not None else FaultyRail()
        self.internal = InternalRail(self.ledger, self.clock)
        self.maker = Auditing(self.audit, "user:maker", "test")
        self.checker = Auditing(self.audit, "user:checker", "test")
        self.service = PayoutService(
            self.store,
            self.source,
            {self.rail.name: self.rail, self.internal.name: self.internal},
            self.clock,
            self.alerts,
            second_factor=Codes(codes),
            policy=policy,
            limits=limits,
            system=Auditing(self.audit, "system:payouts", "worker"),
        )
        self.worker = PayoutWorker(self.service)
        self._fund(payables)

    def _fund(self, payables: Sequence[Payable]) -> None:
        """Put each payable in its ledger account, as settlement's accruals would."""
        accounts: dict[str, Account] = {}
        requests = []
        for p in payables:
            account = payable_account(p.counterparty, p.currency, p.operator or "op1")
            assert account.id == p.account_id, (account.id, p.account_id)
            expense = expense_account(p.currency)
            accounts[account.id] = account
            accounts[expense.id] = expense
            debit, credit = (expense.id, account.id) if p.amount > 0 else (account.id, expense.id)
            requests.append(
                TransferRequest(
                    f"accrue:{p.id}", debit, credit, abs(p.amount), p.currency, "accrual"
                )
            )
        if accounts:
            self.ledger.create_accounts(list(accounts.values()), self.clock.now())
            [results] = self.ledger.apply([requests], self.clock.now())
            assert all(r.code.ok for r in results), results

    def register(
        self, counterparty: str, rail: str = "", blocked: bool = False, account: str = ""
    ) -> None:
        kind, party = counterparty.split(":", 1)
        self.service.register_counterparty(
            Counterparty(
                counterparty,
                CounterpartyKind(kind),
                party,
                f"{party} Ltd",
                rail or self.rail.name,
                account or f"DE89370400440532013000-{party}",
                "COBADEFFXXX",
                blocked,
            ),
            self.maker,
        )

    def net(self, account_id: str) -> int:
        balance = self.ledger.balance(account_id)
        return 0 if balance is None else balance.net_credit

    def all_payouts(self) -> list[Payout]:
        out: list[Payout] = []
        for run in self.service.runs(1000):
            out.extend(self.service.payouts_of_run(run.id))
        return out

    def advance(self, seconds: int) -> None:
        self.clock.advance(timedelta(seconds=seconds))

    def close(self) -> None:
        self.store.close()
        if self.kind != "memory":
            self.audit.close()
        self.ledger.close()


def payable(
    pid: str, counterparty: str, currency: str, amount: int, operator: str = "op1"
) -> Payable:
    return Payable(
        pid,
        counterparty,
        currency,
        amount,
        payable_account(counterparty, currency, operator).id,
        "2026-03",
        operator,
    )


def states(payouts: Sequence[Payout]) -> dict[str, PayoutState]:
    return {p.id: p.state for p in payouts}
