"""An in-memory input quarantine: the reference fake for the quarantine contract."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from tally.kernel.page import Page, decode_cursor, fetch_size, page_from_rows
from tally.quarantine.inputs import Quarantined, Reason, Refused, Status, storable, storable_refused


class MemoryInputQuarantine:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[Quarantined] = []

    def put(self, refused: Refused) -> int:
        refused = storable_refused(refused)  # kept as the SQL stores keep it
        with self._lock:
            if refused.source == "file":
                for entry in self._entries:  # a file line is kept once
                    if entry.refused.source == "file" and entry.refused.key == refused.key:
                        return entry.id
            self._entries.append(Quarantined(len(self._entries) + 1, refused))
            return len(self._entries)

    def get(self, entry_id: int) -> Quarantined | None:
        with self._lock:
            return self._entries[entry_id - 1] if 0 < entry_id <= len(self._entries) else None

    def entries(
        self,
        *,
        status: Status | None = None,
        reason: Reason | None = None,
        source: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[Quarantined]:
        # Entry ids count from 1 in order, so the entries after id n start at index n.
        after = decode_cursor(cursor)
        with self._lock:
            found = [
                q
                for q in self._entries[after:]
                if (status is None or q.status is status)
                and (reason is None or q.refused.reason is reason)
                and (source is None or q.refused.source == source)
            ][: fetch_size(limit)]
        return page_from_rows(found, limit, key=lambda q: q.id, item=lambda q: q)

    def resolve(
        self,
        entry_id: int,
        status: Status,
        *,
        by: str,
        at: datetime,
        note: str = "",
        within: Callable[[object], object],
    ) -> bool:
        assert status is not Status.OPEN, "an entry is resolved to redriven or dismissed"
        with self._lock:
            if not 0 < entry_id <= len(self._entries):
                return False
            entry = self._entries[entry_id - 1]
            if entry.status is not Status.OPEN:
                return False
            within(None)  # memory cannot roll back: what runs in the transaction goes first
            self._entries[entry_id - 1] = replace(
                entry, status=status, resolved_at=at, resolved_by=by, note=storable(note)
            )
            return True

    def counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(Counter((q.status.value, q.refused.reason.value) for q in self._entries))

    def close(self) -> None:
        """Nothing held: nothing to release."""
