"""Payouts in PostgreSQL, committed in the ledger's transactions (rows locked there)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from tally.adapters.postgres.connection import Link, connect_kwargs
from tally.adapters.postgres.ledger import PostgresLedgerStore, migrate
from tally.adapters.sql.payouts import SqlPayoutStore


class PostgresPayoutStore(SqlPayoutStore):
    placeholder = "%s"
    lock_rows = " FOR UPDATE"

    def __init__(self, ledger: PostgresLedgerStore, dsn: str, *, schema: str | None = None) -> None:
        self.ledger = ledger
        self._link = Link(dsn, autocommit=True, **connect_kwargs(schema))
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._link.conn, "payouts")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            rows: list[tuple[Any, ...]] = self._link.conn.execute(sql, tuple(params)).fetchall()
        return rows

    def _in(self, column: str) -> str:
        return f"{column} = ANY(%s)"

    def _list(self, values: Sequence[str]) -> Any:
        return list(values)

    def close(self) -> None:
        with self._lock:
            self._link.close()
