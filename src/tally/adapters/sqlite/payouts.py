"""Payouts in the embedded SQLite file, committed in the ledger's transactions."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from tally.adapters.sql.payouts import SqlPayoutStore
from tally.adapters.sqlite.connection import connect
from tally.adapters.sqlite.ledger import SqliteLedgerStore, migrate


class SqlitePayoutStore(SqlPayoutStore):
    def __init__(self, ledger: SqliteLedgerStore) -> None:
        self.ledger = ledger
        self._conn = connect(ledger.path)
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._conn, "payouts")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            rows: list[tuple[Any, ...]] = self._conn.execute(sql, tuple(params)).fetchall()
        return rows

    def _in(self, column: str) -> str:
        return f"{column} IN (SELECT value FROM json_each(?))"

    def _list(self, values: Sequence[str]) -> Any:
        return json.dumps(list(values))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
