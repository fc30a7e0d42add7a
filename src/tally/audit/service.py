"""The audit trail as a service: append, read, verify."""

from __future__ import annotations

from tally.audit.chain import AuditEntry, AuditRecord, Problem, Sealer, verify
from tally.audit.ports import AuditStore
from tally.ledger.model import Page


class AuditService:
    def __init__(self, store: AuditStore, sealer: Sealer) -> None:
        self.store = store
        self.sealer = sealer

    def record(self, entry: AuditEntry) -> AuditRecord:
        return self.store.append(entry)

    def page(
        self,
        *,
        cursor: str | None = None,
        limit: int = 100,
        actor: str | None = None,
        action: str | None = None,
    ) -> Page[AuditRecord]:
        return self.store.audit_records(cursor=cursor, limit=limit, actor=actor, action=action)

    def verify(self) -> tuple[int, list[Problem]]:
        """How many records were checked, and what is wrong with them."""
        records = list(self.store.iter_audit())
        return len(records), verify(records, self.sealer, self.store.audit_head())
