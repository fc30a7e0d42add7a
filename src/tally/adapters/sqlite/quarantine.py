"""The input quarantine in the embedded SQLite file."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

from tally.adapters.quarantine_rows import (
    COLUMNS,
    INSERT_COLUMNS,
    from_row,
    insert_values,
    page_filter,
)
from tally.adapters.sqlite.ledger import connect, migrate
from tally.kernel.clock import from_micros, to_micros
from tally.ledger.model import Page
from tally.quarantine.inputs import Quarantined, Reason, Refused, Status


class SqliteInputQuarantine:
    def __init__(self, path: Path | str) -> None:
        self._conn = connect(path)
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._conn, "quarantine")

    def put(self, refused: Refused) -> int:
        with self._lock:
            row = self._conn.execute(
                f"INSERT INTO input_quarantine ({INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (idem_key) WHERE source = 'file' DO NOTHING RETURNING id",
                insert_values(refused, to_micros),
            ).fetchone()
            if row is None:  # that file line was kept before
                row = self._conn.execute(
                    "SELECT id FROM input_quarantine WHERE source = 'file' AND idem_key = ?",
                    (refused.key,),
                ).fetchone()
        return int(row[0])

    def get(self, entry_id: int) -> Quarantined | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {COLUMNS} FROM input_quarantine WHERE id = ?", (entry_id,)
            ).fetchone()
        return None if row is None else from_row(row, from_micros)

    def entries(
        self,
        *,
        status: Status | None = None,
        reason: Reason | None = None,
        source: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[Quarantined]:
        where, values = page_filter(status, reason, source, cursor)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {COLUMNS} FROM input_quarantine WHERE {where} ORDER BY id LIMIT ?",
                (*values, limit + 1),
            ).fetchall()
        items = [from_row(r, from_micros) for r in rows[:limit]]
        more = len(rows) > limit
        return Page(items, str(items[-1].id) if more and items else None)

    def resolve(
        self, entry_id: int, status: Status, *, by: str, at: datetime, note: str = ""
    ) -> bool:
        assert status is not Status.OPEN, "an entry is resolved to redriven or dismissed"
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE input_quarantine SET status = ?, resolved_at = ?, resolved_by = ?, "
                "note = ? WHERE id = ? AND status = 'open'",
                (status.value, to_micros(at), by, note, entry_id),
            )
        return cursor.rowcount == 1

    def counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT status, reason, COUNT(*) FROM input_quarantine GROUP BY status, reason"
            ).fetchall()
        return {(s, r): n for s, r, n in rows}

    def close(self) -> None:
        with self._lock:
            self._conn.close()
