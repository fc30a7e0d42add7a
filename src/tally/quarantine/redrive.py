"""Re-driving the input quarantine: an entry goes through the door it came in by, again.

Each source ("callback", "file", "feed") registers a re-driver that takes the kept
payload through the same checks as on arrival. Accepted: the entry is marked re-driven.
Refused again: the entry stays open and the new reason is answered (no second entry).
Re-driving a callback replays it exactly as the provider's own retry would: idempotent,
and a bet whose rollback has arrived since is cancelled, not applied. Every re-drive and
dismissal is on the audit trail with who, when and the outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tally.audit.chain import AuditEntry
from tally.audit.ports import AuditStore
from tally.kernel.clock import Clock
from tally.quarantine.inputs import InputQuarantine, Quarantined, Status
from tally.quarantine.ledger import QuarantineError


@dataclass(frozen=True, slots=True)
class RedriveOutcome:
    accepted: bool
    detail: str  # what happened, or why it is refused again


Redriver = Callable[[Quarantined], RedriveOutcome]


class QuarantineDesk:
    def __init__(self, store: InputQuarantine, audit: AuditStore, clock: Clock) -> None:
        self.store = store
        self.audit = audit
        self.clock = clock
        self._redrivers: dict[str, Redriver] = {}

    def register(self, source: str, redriver: Redriver) -> None:
        self._redrivers[source] = redriver

    def _open(self, entry_id: int) -> Quarantined:
        entry = self.store.get(entry_id)
        if entry is None:
            raise QuarantineError("entry_not_found", f"no quarantine entry {entry_id}")
        if entry.status is not Status.OPEN:
            raise QuarantineError("already_resolved", f"entry {entry_id} is {entry.status}")
        return entry

    def redrive(self, entry_id: int, *, actor: str, source: str = "") -> RedriveOutcome:
        entry = self._open(entry_id)
        redriver = self._redrivers.get(entry.refused.source)
        if redriver is None:
            raise QuarantineError(
                "no_redriver",
                f"entries from {entry.refused.source!r} cannot be re-driven by this process",
            )
        outcome = redriver(entry)
        now = self.clock.now()
        record = AuditEntry(
            actor=actor,
            action="input_quarantine.redriven",
            target=f"input_quarantine:{entry_id}",
            at=now,
            source=source,
            before={"status": "open", "reason": entry.refused.reason.value},
            after={"accepted": outcome.accepted, "detail": outcome.detail},
        )
        if not outcome.accepted:
            # Refused again: nothing changes, but the attempt is on record.
            self.audit.append(record)
            return outcome
        # What the re-drive logged is idempotent (keyed events, keyed lines): if the entry
        # and its record fail to commit here, re-driving it again logs nothing twice.
        moved = self.store.resolve(
            entry_id,
            Status.REDRIVEN,
            by=actor,
            at=now,
            note=outcome.detail,
            within=lambda tx: self.audit.append_in(tx, record),
        )
        if not moved:
            raise QuarantineError("already_resolved", f"entry {entry_id} was resolved meanwhile")
        return outcome

    def dismiss(self, entry_id: int, *, actor: str, note: str, source: str = "") -> None:
        entry = self._open(entry_id)
        if not note.strip():
            raise QuarantineError("note_required", "say why the entry is dismissed")
        now = self.clock.now()
        record = AuditEntry(
            actor=actor,
            action="input_quarantine.dismissed",
            target=f"input_quarantine:{entry_id}",
            at=now,
            source=source,
            before={"status": "open", "reason": entry.refused.reason.value},
            after={"status": "dismissed", "note": note},
        )
        moved = self.store.resolve(
            entry_id,
            Status.DISMISSED,
            by=actor,
            at=now,
            note=note,
            within=lambda tx: self.audit.append_in(tx, record),
        )
        if not moved:
            raise QuarantineError("already_resolved", f"entry {entry_id} was resolved meanwhile")
