"""A list-backed input quarantine for tests that only need to see what was kept."""

from __future__ import annotations

from datetime import datetime

from tally.ledger.model import Page
from tally.quarantine.inputs import Quarantined, Reason, Refused, Status


class ListQuarantine:
    def __init__(self) -> None:
        self.kept: list[Quarantined] = []

    def put(self, refused: Refused) -> int:
        self.kept.append(Quarantined(len(self.kept) + 1, refused))
        return len(self.kept)

    def get(self, entry_id: int) -> Quarantined | None:
        return self.kept[entry_id - 1] if 0 < entry_id <= len(self.kept) else None

    def entries(
        self,
        *,
        status: Status | None = None,
        reason: Reason | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[Quarantined]:
        found = [
            q
            for q in self.kept
            if (status is None or q.status is status)
            and (reason is None or q.refused.reason is reason)
        ]
        return Page(found[:limit], None)

    def resolve(
        self, entry_id: int, status: Status, *, by: str, at: datetime, note: str = ""
    ) -> bool:
        return False

    def counts(self) -> dict[tuple[str, str], int]:
        return {}

    def reasons(self) -> list[Reason]:
        return [q.refused.reason for q in self.kept]
