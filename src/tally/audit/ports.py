"""What the audit trail needs from a store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from tally.audit.chain import AuditEntry, AuditHead, AuditRecord
from tally.ledger.model import Page


class AuditStore(Protocol):
    def append(self, entry: AuditEntry) -> AuditRecord:
        """Chain and store one record (in its own transaction)."""
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
