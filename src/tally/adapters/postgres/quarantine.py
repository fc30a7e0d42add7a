"""The input quarantine and batch-file progress in PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg

from tally.adapters.postgres.connection import Link, connect_kwargs
from tally.adapters.postgres.ledger import migrate
from tally.adapters.sql.quarantine import SqlImportProgress, SqlInputQuarantine


class PostgresIngestStore(SqlInputQuarantine, SqlImportProgress):
    placeholder = "%s"

    def __init__(self, dsn: str, *, schema: str | None = None) -> None:
        self._link = Link(dsn, autocommit=True, **connect_kwargs(schema))
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._link.conn, "quarantine")
            migrate(self._link.conn, "ingest")
        self.redact_kept()  # entries kept before secrets were redacted

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            cursor = self._link.conn.execute(sql, tuple(params))
            rows: list[tuple[Any, ...]] = cursor.fetchall() if cursor.description else []
        return rows

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


PostgresInputQuarantine = PostgresIngestStore
PostgresImportProgress = PostgresIngestStore
