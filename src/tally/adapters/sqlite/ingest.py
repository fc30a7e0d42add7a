"""Batch-file import progress in the embedded SQLite file."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path

from tally.adapters.sqlite.ledger import connect, migrate
from tally.kernel.clock import to_micros


class SqliteImportProgress:
    def __init__(self, path: Path | str) -> None:
        self._conn = connect(path)
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._conn, "ingest")

    def committed(self, file_id: str) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT lines_done FROM import_progress WHERE file_id = ?", (file_id,)
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
                "INSERT INTO import_progress VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (file_id) DO UPDATE SET lines_done = excluded.lines_done, "
                "counts = excluded.counts, updated_at = excluded.updated_at, "
                "finished = excluded.finished",
                (file_id, name, provider, lines, json.dumps(counts), to_micros(at), finished),
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()
