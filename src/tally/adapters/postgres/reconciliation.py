"""Reconciliation's store in PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg

from tally.adapters.postgres.connection import Link, connect, connect_kwargs
from tally.adapters.postgres.ledger import migrate
from tally.adapters.sql.reconciliation import LINES_FETCHED, SqlReconciliationStore


class PostgresReconciliationStore(SqlReconciliationStore):
    placeholder = "%s"

    def __init__(self, dsn: str, *, schema: str | None = None) -> None:
        self._dsn = dsn
        self._kwargs = connect_kwargs(schema)
        self._link = Link(dsn, autocommit=True, **self._kwargs)
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._link.conn, "reconciliation")

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            cursor = self._link.conn.execute(sql, tuple(params))
            rows: list[tuple[Any, ...]] = cursor.fetchall() if cursor.description else []
        return rows

    def _cursor_rows(self, sql: str, params: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
        # A server-side cursor on a connection of its own: rows come a batch at a time.
        with (
            connect(self._dsn, **self._kwargs) as conn,
            conn.cursor(name="recon_lines") as cursor,
        ):
            cursor.execute(sql, tuple(params))
            while batch := cursor.fetchmany(LINES_FETCHED):
                yield from batch

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            conn = self._link.conn
            with conn.transaction():
                yield conn

    def _time_in(self, when: datetime) -> Any:
        return when

    def _time_out(self, value: Any) -> datetime:
        assert isinstance(value, datetime)
        return value

    def close(self) -> None:
        with self._lock:
            self._link.close()
