"""The part of the ledger store written once for SQLite and PostgreSQL.

Both stores open a transaction and decide and write in it the same way; what differs
(the connection, how a transaction begins and how the batch is decided) stays in each.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol, TypeVar

from tally.ledger.model import Account, AccountResult, TransferRequest, TransferResult
from tally.ledger.ports import AuditedWrite

C = TypeVar("C")


class _WritesInTransaction(Protocol[C]):
    """What :class:`AuditedWrites` needs of the store it is mixed into."""

    def _transaction(self) -> AbstractContextManager[C]: ...

    def create_accounts_in(
        self, conn: C, accounts: Sequence[Account], now: datetime
    ) -> list[AccountResult]: ...

    def apply_in(
        self, conn: C, submissions: Sequence[Sequence[TransferRequest]], now: datetime
    ) -> list[list[TransferResult]]: ...


class AuditedWrites:
    """``write_audited`` of :class:`tally.ledger.ports.LedgerStore`, for a store with a
    ``_transaction`` and the ``..._in`` methods that write inside one."""

    def write_audited(
        self: _WritesInTransaction[C],
        accounts: Sequence[Account],
        transfers: Sequence[TransferRequest],
        now: datetime,
        within: AuditedWrite,
    ) -> tuple[list[AccountResult], list[TransferResult]]:
        with self._transaction() as conn:
            created = self.create_accounts_in(conn, accounts, now)
            moved = self.apply_in(conn, [transfers], now)[0] if transfers else []
            within(conn, created, moved)
        return created, moved
