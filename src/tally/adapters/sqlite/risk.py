"""The alerts store in the embedded SQLite file (its writers are serialised by the file's
lock, so one (kind, key) is never changed by two at once)."""

from __future__ import annotations

from pathlib import Path

from tally.adapters.sql.risk import SqlAlertStore
from tally.adapters.sqlite.connection import FileStore
from tally.adapters.sqlite.ledger import migrate


class SqliteAlertStore(FileStore, SqlAlertStore):
    busy_label = "alerts store"

    def __init__(self, path: Path | str) -> None:
        super().__init__(path)
        with self._lock:
            migrate(self._conn, "risk")
