"""Payouts in memory beside a memory ledger (the reference fake the contract suite runs)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from tally.adapters.memory.ledger import MemoryLedgerStore
from tally.payouts.model import (
    Counterparty,
    Payout,
    PayoutRefused,
    PayoutState,
    Refusal,
    Run,
    RunPlan,
    RunStatus,
    Transition,
    clearing_accounts,
    written,
)


class MemoryPayoutStore:
    """Everything under one lock; memory cannot roll back, so each write checks first
    and changes after."""

    def __init__(self, ledger: MemoryLedgerStore) -> None:
        self.ledger = ledger
        self._lock = threading.RLock()
        self._counterparties: dict[str, Counterparty] = {}
        self._runs: dict[str, Run] = {}
        self._order: list[str] = []
        self._payouts: dict[str, Payout] = {}
        self._claims: dict[str, str] = {}  # payable id -> payout id

    @contextmanager
    def unit_of_work(self) -> Iterator[None]:
        with self._lock:
            yield None

    def put_counterparty_in(self, tx: object, counterparty: Counterparty, now: datetime) -> None:
        with self._lock:
            self._counterparties[counterparty.id] = counterparty

    def counterparty(self, counterparty_id: str) -> Counterparty | None:
        with self._lock:
            return self._counterparties.get(counterparty_id)

    def counterparties(self) -> list[Counterparty]:
        with self._lock:
            return [self._counterparties[k] for k in sorted(self._counterparties)]

    def claimed(self, payable_ids: Iterable[str]) -> set[str]:
        with self._lock:
            return {p for p in payable_ids if p in self._claims}

    def create_run_in(self, tx: object, run: Run, plan: RunPlan) -> None:
        with self._lock:
            taken = [p for p, _ in plan.claims if p in self._claims]
            if taken:
                raise PayoutRefused(
                    Refusal.PAYABLES_ALREADY_CLAIMED,
                    f"payable {taken[0]} is already in another run's payout",
                )
            self._runs[run.id] = run
            self._order.append(run.id)
            for payout in plan.payouts:
                self._payouts[payout.id] = payout
            self._claims.update(dict(plan.claims))

    def run_in(self, tx: object, run_id: str) -> Run | None:
        return self.run(run_id)

    def approve_in(self, tx: object, run: Run) -> None:
        with self._lock:
            self._runs[run.id] = run

    def run(self, run_id: str) -> Run | None:
        with self._lock:
            return self._runs.get(run_id)

    def runs(self, limit: int) -> list[Run]:
        with self._lock:
            return [self._runs[k] for k in reversed(self._order[-limit:])]

    def payouts(self, payout_ids: Sequence[str]) -> dict[str, Payout]:
        with self._lock:
            return {p: self._payouts[p] for p in payout_ids if p in self._payouts}

    def payouts_of_run(self, run_id: str) -> list[Payout]:
        with self._lock:
            return sorted(
                (p for p in self._payouts.values() if p.run_id == run_id), key=lambda p: p.id
            )

    def payouts_of(self, counterparties: Sequence[str]) -> list[Payout]:
        wanted = set(counterparties)
        with self._lock:
            return sorted(
                (p for p in self._payouts.values() if p.counterparty in wanted), key=lambda p: p.id
            )

    def due(self, now: datetime, limit: int) -> list[Payout]:
        with self._lock:
            approved = {r.id for r in self._runs.values() if r.status is RunStatus.APPROVED}
            out = []
            for p in sorted(self._payouts.values(), key=lambda p: p.id):
                s = p.state
                if (
                    (s is PayoutState.REQUESTED and p.run_id in approved)
                    or s is PayoutState.RESERVED
                    or (
                        s in (PayoutState.SUBMITTED, PayoutState.EXPIRED)
                        and (p.next_check_at is None or p.next_check_at <= now)
                    )
                ):
                    out.append(p)
                    if len(out) >= limit:
                        break
            return out

    def commit(
        self,
        transitions: Sequence[Transition],
        now: datetime,
        within: Callable[[object, list[Payout]], object],
    ) -> list[tuple[Transition, Payout]]:
        with self._lock:
            live = [
                t
                for t in transitions
                if (p := self._payouts.get(t.payout_id)) is not None and p.state is t.expect
            ]
            moving = [t for t in live if t.transfers]
            if moving:
                self.ledger.create_accounts(clearing_accounts(moving), now)
                results = self.ledger.apply([list(t.transfers) for t in moving], now)
            else:
                results = []
            out = written(live, results)
            payouts = [p for _, p in out]
            within(None, payouts)
            for payout in payouts:
                self._payouts[payout.id] = payout
                if payout.state is PayoutState.FAILED:
                    for key in [k for k, v in self._claims.items() if v == payout.id]:
                        del self._claims[key]
            return out

    def close(self) -> None:
        """Nothing held: nothing to release."""
