"""Reconciliation's store in PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from tally.adapters.postgres.connection import LinkedStore, connect
from tally.adapters.postgres.ledger import migrate
from tally.adapters.sql.reconciliation import LINES_FETCHED, SqlReconciliationStore


class PostgresReconciliationStore(LinkedStore, SqlReconciliationStore):
    placeholder = "%s"

    def __init__(self, dsn: str, *, schema: str | None = None) -> None:
        LinkedStore.__init__(self, dsn, schema=schema)
        with self._lock:
            migrate(self._link.conn, "reconciliation")

    def _cursor_rows(self, sql: str, params: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
        # A server-side cursor on a connection of its own: rows come a batch at a time.
        with (
            connect(self._dsn, **self._kwargs) as conn,
            conn.cursor(name="recon_lines") as cursor,
        ):
            cursor.execute(sql, tuple(params))
            while batch := cursor.fetchmany(LINES_FETCHED):
                yield from batch
