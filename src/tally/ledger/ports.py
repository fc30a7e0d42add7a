"""What the ledger service needs from a store. Adapters implement it; the service uses it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from tally.kernel.page import Page
from tally.ledger.model import (
    Account,
    AccountResult,
    Balance,
    OwnerKind,
    Rejection,
    Transfer,
    TransferRequest,
    TransferResult,
)

# Called inside a write's transaction with it and the write's results (see write_audited).
AuditedWrite = Callable[[Any, list[AccountResult], list[TransferResult]], object]


class LedgerStore(Protocol):
    """Durable accounts, balances and transfers.

    ``apply`` is the one write path for transfers: it expires due pending transfers,
    loads (and locks) what the submissions refer to, decides them with
    :func:`tally.ledger.engine.apply_batch`, and writes the result in one database
    transaction, on state no other writer changed after it was read.
    """

    def create_accounts(
        self, accounts: Sequence[Account], now: datetime
    ) -> list[AccountResult]: ...

    def apply(
        self, submissions: Sequence[Sequence[TransferRequest]], now: datetime
    ) -> list[list[TransferResult]]: ...

    def write_audited(
        self,
        accounts: Sequence[Account],
        transfers: Sequence[TransferRequest],
        now: datetime,
        within: AuditedWrite,
    ) -> tuple[list[AccountResult], list[TransferResult]]:
        """Create ``accounts`` and apply ``transfers`` (one submission) in one transaction,
        and call ``within(tx, account_results, transfer_results)`` in it before it commits:
        a change made by a person, with its audit record (``tx`` is the store's open
        transaction, for the audit trail of the same database to write in)."""
        ...

    def get_account(self, account_id: str) -> Account | None: ...

    def balance(self, account_id: str, at: datetime | None = None) -> Balance | None:
        """The balance now (``at`` None), or as it stood at instant ``at``."""
        ...

    def balances(self, account_ids: Sequence[str]) -> dict[str, Balance]:
        """The balances now of the accounts named, in one read; unknown ones are left out."""
        ...

    def get_transfer(self, transfer_id: str) -> Transfer | None: ...

    def account_transfers(
        self, account_id: str, *, cursor: str | None = None, limit: int = 100
    ) -> Page[Transfer]:
        """An account's transfers, oldest first, ``limit`` at a time."""
        ...

    def balances_by_owner(
        self, owner_kind: OwnerKind, owner_id: str, currency: str | None = None
    ) -> list[tuple[Account, Balance]]: ...

    def balances_by_owners(
        self, owner_kind: OwnerKind, owner_ids: Sequence[str]
    ) -> list[tuple[Account, Balance]]:
        """Every account of any of the owners, in one read, by id."""
        ...

    def rejections(self, *, cursor: str | None = None, limit: int = 100) -> Page[Rejection]: ...

    def totals_by_currency(self) -> dict[str, Balance]:
        """Per currency, the sum of every account's balance (debits must equal credits)."""
        ...

    def close(self) -> None: ...


class Decided(Protocol):
    """A batch a store decided ahead of writing it; only that store can commit it."""

    @property
    def submissions(self) -> Sequence[Sequence[TransferRequest]]: ...


@runtime_checkable
class PipelinedLedgerStore(LedgerStore, Protocol):
    """A store whose writer can decide a batch while the one before it commits (ADR 0015).

    ``decide`` runs the engine on the store's own view of the balances and returns what
    to write; ``commit`` writes it, in the order the batches were decided, and returns
    the results. A commit that cannot trust its decision any more decides again in its
    transaction. ``apply`` stays the one-step path.

    ``commit_lanes`` batches may be committing at once, from as many threads (ADR 0016);
    the store still makes them take effect in the order they were decided. Every batch
    decided must be committed (a store may hold later batches back until it is).
    """

    @property
    def commit_lanes(self) -> int: ...

    def decide(
        self, submissions: Sequence[Sequence[TransferRequest]], now: datetime
    ) -> Decided: ...

    def commit(self, decided: Decided) -> list[list[TransferResult]]: ...
