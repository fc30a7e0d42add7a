"""The input quarantine and batch-file progress in the embedded SQLite file."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from tally.adapters.sql.quarantine import SqlImportProgress, SqlInputQuarantine
from tally.adapters.sqlite.connection import connect, immediate
from tally.adapters.sqlite.ledger import migrate
from tally.kernel.clock import from_micros, to_micros


class SqliteIngestStore(SqlInputQuarantine, SqlImportProgress):
    def __init__(self, path: Path | str) -> None:
        self._conn = connect(path)
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._conn, "quarantine")
            migrate(self._conn, "ingest")
        self.redact_kept()  # entries kept before secrets were redacted

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            rows: list[tuple[Any, ...]] = self._conn.execute(sql, tuple(params)).fetchall()
        return rows

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate(self._conn, busy="input quarantine") as conn:
            yield conn

    def _time_in(self, when: datetime) -> Any:
        return to_micros(when)

    def _time_out(self, value: Any) -> datetime:
        return from_micros(value)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


SqliteInputQuarantine = SqliteIngestStore
SqliteImportProgress = SqliteIngestStore
