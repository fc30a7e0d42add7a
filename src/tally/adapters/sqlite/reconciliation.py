"""Reconciliation's store in the embedded SQLite file."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from tally.adapters.sql.reconciliation import LINES_FETCHED, SqlReconciliationStore
from tally.adapters.sqlite.connection import connect, immediate
from tally.adapters.sqlite.ledger import migrate
from tally.kernel.clock import from_micros, to_micros


class SqliteReconciliationStore(SqlReconciliationStore):
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conn = connect(path)
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._conn, "reconciliation")

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            rows: list[tuple[Any, ...]] = self._conn.execute(sql, tuple(params)).fetchall()
        return rows

    def _cursor_rows(self, sql: str, params: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
        # A connection of its own: the read may be long, and the writer's stays free.
        reader = connect(self.path)
        try:
            cursor = reader.execute(sql, tuple(params))
            while batch := cursor.fetchmany(LINES_FETCHED):
                yield from batch
        finally:
            reader.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate(self._conn, busy="reconciliation store") as conn:
            yield conn

    def _time_in(self, when: datetime) -> Any:
        return to_micros(when)

    def _time_out(self, value: Any) -> datetime:
        return from_micros(value)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
