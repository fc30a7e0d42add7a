"""The alerts store in the embedded SQLite file (its writers are serialised by the file's
lock, so one (kind, key) is never changed by two at once)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from tally.adapters.sql.risk import SqlAlertStore
from tally.adapters.sqlite.connection import connect, immediate
from tally.adapters.sqlite.ledger import migrate
from tally.kernel.clock import from_micros, to_micros


class SqliteAlertStore(SqlAlertStore):
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conn = connect(path)
        self._lock = threading.RLock()
        with self._lock:
            migrate(self._conn, "risk")

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            rows: list[tuple[Any, ...]] = self._conn.execute(sql, tuple(params)).fetchall()
        return rows

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate(self._conn, busy="alerts store") as conn:
            yield conn

    def _time_in(self, when: datetime) -> Any:
        return to_micros(when)

    def _time_out(self, value: Any) -> datetime:
        return from_micros(value)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
