"""What the audit trail needs from a store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeAlias

from tally.audit.chain import AuditEntry, AuditHead, AuditRecord
from tally.kernel.page import Page

# An open write transaction of a store (a connection between BEGIN and COMMIT), opaque
# to the domain. Every store of one deployment lives in one database (embedded: one
# SQLite file; scaled: one PostgreSQL database), so the audit chain can be written in
# the transaction of the change it records: both commit, or neither does.
Transaction: TypeAlias = Any


class UnitOfWork(Protocol):
    """A store whose changes a use case writes in one transaction with their audit record."""

    def unit_of_work(self) -> AbstractContextManager[Transaction]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        ...


class AuditStore(Protocol):
    def append(self, entry: AuditEntry) -> AuditRecord:
        """Chain and store one record (in its own transaction)."""
        ...

    def append_in(self, tx: Transaction, entry: AuditEntry) -> AuditRecord:
        """Chain and store one record inside ``tx``, the open transaction of the change it
        records (from a store of the same database): it commits or rolls back with it."""
        ...

    def audit_records(
        self,
        *,
        cursor: str | None = None,
        limit: int = 100,
        actor: str | None = None,
        action: str | None = None,
    ) -> Page[AuditRecord]:
        """Records oldest first, optionally only one actor's or one action's."""
        ...

    def iter_audit(self) -> Iterator[AuditRecord]:
        """Every record in storage order, for verification and exports."""
        ...

    def audit_head(self) -> AuditHead | None: ...
