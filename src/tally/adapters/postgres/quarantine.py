"""The input quarantine in PostgreSQL."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import psycopg

from tally.adapters.postgres.ledger import connect_kwargs, migrate
from tally.adapters.quarantine_rows import (
    COLUMNS,
    INSERT_COLUMNS,
    from_row,
    insert_values,
    page_filter,
)
from tally.ledger.model import Page
from tally.quarantine.inputs import Quarantined, Reason, Refused, Status


def _same(value: Any) -> Any:
    return value


class PostgresInputQuarantine:
    def __init__(self, dsn: str, *, schema: str | None = None) -> None:
        self._conn = psycopg.connect(dsn, **connect_kwargs(schema))
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._conn, "quarantine")
            self._conn.autocommit = True

    def put(self, refused: Refused) -> int:
        with self._lock:
            row = self._conn.execute(
                f"INSERT INTO input_quarantine ({INSERT_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s) "
                "ON CONFLICT (idem_key) WHERE source = 'file' DO NOTHING RETURNING id",
                insert_values(refused, _same),
            ).fetchone()
            if row is None:  # that file line was kept before
                row = self._conn.execute(
                    "SELECT id FROM input_quarantine WHERE source = 'file' AND idem_key = %s",
                    (refused.key,),
                ).fetchone()
        assert row is not None
        return int(row[0])

    def get(self, entry_id: int) -> Quarantined | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {COLUMNS} FROM input_quarantine WHERE id = %s", (entry_id,)
            ).fetchone()
        return None if row is None else from_row(row, _same)

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
                f"SELECT {COLUMNS} FROM input_quarantine WHERE {where.replace('?', '%s')} "
                "ORDER BY id LIMIT %s",
                (*values, limit + 1),
            ).fetchall()
        items = [from_row(r, _same) for r in rows[:limit]]
        more = len(rows) > limit
        return Page(items, str(items[-1].id) if more and items else None)

    def resolve(
        self, entry_id: int, status: Status, *, by: str, at: datetime, note: str = ""
    ) -> bool:
        assert status is not Status.OPEN, "an entry is resolved to redriven or dismissed"
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE input_quarantine SET status = %s, resolved_at = %s, resolved_by = %s, "
                "note = %s WHERE id = %s AND status = 'open'",
                (status.value, at, by, note, entry_id),
            )
        return cursor.rowcount == 1

    def counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT status, reason, COUNT(*) FROM input_quarantine GROUP BY status, reason"
            ).fetchall()
        return {(s, r): int(n) for s, r, n in rows}

    def close(self) -> None:
        with self._lock:
            self._conn.close()
