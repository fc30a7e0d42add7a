"""What payouts need from the world: a store (written with the ledger in one transaction),
the payables closed periods left, and a second factor for the checker."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Protocol

from tally.audit.ports import Transaction, UnitOfWork
from tally.payouts.model import Counterparty, Payable, Payout, Run, RunPlan, Transition


class PayablesSource(Protocol):
    """Settlement's closed periods as payouts reads them (bootstrap wires it)."""

    def payables(self) -> list[Payable]:
        """Every amount closed periods left owed or owing, paid or not (payouts knows
        which it claimed)."""
        ...

    def subtree(self, agent: str) -> frozenset[str]:
        """The agent and every agent beneath it in its partner tree."""
        ...


class SecondFactor(Protocol):
    def verify(self, actor: str, code: str) -> bool:
        """Whether ``code`` is a fresh TOTP code of the user behind ``actor``
        (``user:<id>``), consuming its time step so it cannot be used twice."""
        ...


class PayoutStore(UnitOfWork, Protocol):
    """Runs, payouts, claims and counterparties, in the ledger's database.

    ``commit`` is the saga's one write: for each transition whose payout is still in the
    state it expects, the payout's row and its ledger transfers (one linked submission)
    are written in one transaction with ``within(tx)`` (the audit record); a transition
    whose transfers the ledger refuses writes its fallback instead. A payout written as
    FAILED releases its payables' claims in the same transaction.
    """

    # -- counterparties
    def put_counterparty_in(
        self, tx: Transaction, counterparty: Counterparty, now: datetime
    ) -> None: ...

    def counterparty(self, counterparty_id: str) -> Counterparty | None: ...

    def counterparties(self) -> list[Counterparty]: ...

    # -- runs
    def claimed(self, payable_ids: Iterable[str]) -> set[str]:
        """The ones among ``payable_ids`` a payout holds (not FAILED)."""
        ...

    def create_run_in(self, tx: Transaction, run: Run, plan: RunPlan) -> None:
        """Write the run, its lines, its payouts and their claims. Raises
        :class:`~tally.payouts.model.PayoutRefused` (PAYABLES_ALREADY_CLAIMED) if another
        run claimed one of the payables meanwhile; the transaction then rolls back."""
        ...

    def run_in(self, tx: Transaction, run_id: str) -> Run | None:
        """The run as ``tx`` sees it (locked for the transaction where the store can)."""
        ...

    def approve_in(self, tx: Transaction, run: Run) -> None:
        """Write the run's approval (status, approver, when)."""
        ...

    def run(self, run_id: str) -> Run | None: ...

    def runs(self, limit: int) -> list[Run]:
        """Newest first."""
        ...

    # -- payouts
    def payouts(self, payout_ids: Sequence[str]) -> dict[str, Payout]: ...

    def payouts_of_run(self, run_id: str) -> list[Payout]: ...

    def payouts_of(self, counterparties: Sequence[str]) -> list[Payout]: ...

    def due(self, now: datetime, limit: int) -> list[Payout]:
        """Payouts the worker must move: REQUESTED ones of approved runs, RESERVED ones,
        and SUBMITTED or EXPIRED ones whose check is due (``next_check_at <= now``), in
        order of id."""
        ...

    def commit(
        self,
        transitions: Sequence[Transition],
        now: datetime,
        within: Callable[[Transaction, list[Payout]], object],
    ) -> list[tuple[Transition, Payout]]:
        """Write what still applies (see above); returns each written transition with
        the payout written (``after`` or ``fallback``). ``within(tx, written)`` runs in
        the transaction before it commits."""
        ...

    def close(self) -> None: ...
