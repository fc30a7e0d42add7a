"""Reconciliation's store in the embedded SQLite file."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tally.adapters.sql.reconciliation import LINES_FETCHED, SqlReconciliationStore
from tally.adapters.sqlite.connection import FileStore, connect
from tally.adapters.sqlite.ledger import migrate


class SqliteReconciliationStore(FileStore, SqlReconciliationStore):
    busy_label = "reconciliation store"

    def __init__(self, path: Path | str) -> None:
        super().__init__(path)
        with self._lock:
            migrate(self._conn, "reconciliation")

    def _cursor_rows(self, sql: str, params: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
        # A connection of its own: the read may be long, and the writer's stays free.
        reader = connect(self.path)
        try:
            cursor = reader.execute(sql, tuple(params))
            while batch := cursor.fetchmany(LINES_FETCHED):
                yield from batch
        finally:
            reader.close()
