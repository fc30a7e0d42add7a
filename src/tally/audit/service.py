"""The audit trail as a service: append, read, verify."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tally.audit.chain import Anchor, AuditEntry, AuditRecord, Problem, Sealer, verify
from tally.audit.ports import AuditStore, Transaction
from tally.kernel.page import Page


@dataclass(frozen=True, slots=True)
class Auditing:
    """Who makes a change, from where, and the trail it goes on.

    A use case that changes state takes one and writes the record itself, inside the
    change's own transaction (:meth:`record_in`): an entry point cannot forget it, and no
    change commits without its record (nor a record without its change).
    """

    trail: AuditStore
    actor: str  # "user:<id>", "api_key:<id>", "system:cli", ...
    source: str = ""  # client address, "cli", "worker", ...

    def record_in(
        self,
        tx: Transaction,
        action: str,
        target: str,
        at: datetime,
        *,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        entry = AuditEntry(self.actor, action, target, at, self.source, before, after)
        return self.trail.append_in(tx, entry)


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
