"""The audit trail as a service: append, read, verify."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tally.audit.chain import Anchor, AuditEntry, AuditRecord, Problem, Sealer, verify
from tally.audit.ports import AuditStore
from tally.ledger.model import Page


class AuditService:
    def __init__(
        self, store: AuditStore, sealer: Sealer, kept: Callable[[], str] | None = None
    ) -> None:
        """``kept()`` names what the stores hold that leaves a trail ("2 users"), or "" if
        nothing: an empty trail beside it was wiped (see ``verify``)."""
        self.store = store
        self.sealer = sealer
        self.kept = kept or (lambda: "")

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

    def verify(self, anchors: Sequence[Anchor] = ()) -> tuple[int, list[Problem]]:
        """How many records were checked, and what is wrong with them (also against
        ``anchors``, heads published earlier)."""
        records = list(self.store.iter_audit())
        head = self.store.audit_head()
        kept = self.kept() if not records and head is None else ""
        return len(records), verify(records, self.sealer, head, anchors=anchors, kept=kept)
