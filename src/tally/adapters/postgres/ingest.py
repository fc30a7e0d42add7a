"""Batch-file import progress in PostgreSQL."""

from __future__ import annotations

import threading
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from tally.adapters.postgres.ledger import connect_kwargs, migrate


class PostgresImportProgress:
    def __init__(self, dsn: str, *, schema: str | None = None) -> None:
        self._conn = psycopg.connect(dsn, **connect_kwargs(schema))
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._conn, "ingest")
            self._conn.autocommit = True

    def committed(self, file_id: str) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT lines_done FROM import_progress WHERE file_id = %s", (file_id,)
            ).fetchone()
        return int(row[0]) if row else 0

    def record(
        self,
        file_id: str,
        name: str,
        provider: str,
        lines: int,
        counts: dict[str, int],
        at: datetime,
        *,
        finished: bool,
    ) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO import_progress VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (file_id) DO UPDATE SET lines_done = excluded.lines_done, "
                "counts = excluded.counts, updated_at = excluded.updated_at, "
                "finished = excluded.finished",
                (file_id, name, provider, lines, Jsonb(counts), at, finished),
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()
