"""The scaled back-office store on PostgreSQL (components ``auth`` and ``audit``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from tally.adapters.postgres.connection import Link, connect_kwargs
from tally.adapters.postgres.ledger import migrate
from tally.adapters.sql.backoffice import Cursor, SqlBackofficeStore
from tally.audit.chain import Sealer
from tally.kernel.errors import StoreUnavailable


class PostgresBackofficeStore(SqlBackofficeStore):
    placeholder = "%s"
    duplicate_error = pg_errors.UniqueViolation
    # Appenders in other processes wait for the head row: the chain stays one line.
    # (Two processes writing the very first record at once collide on the primary
    # key instead; one of them fails and nothing is lost.)
    head_lock = "FOR UPDATE"
    row_lock = "FOR UPDATE"

    def __init__(self, dsn: str, sealer: Sealer, *, schema: str | None = None) -> None:
        super().__init__(sealer)
        self._link = Link(dsn, **connect_kwargs(schema))
        self._lock = threading.Lock()
        with self._lock:
            for component in ("auth", "audit", "secrets"):
                migrate(self._link.conn, component)

    @contextmanager
    def _transaction(self) -> Iterator[Cursor]:
        with self._lock:
            try:
                conn = self._link.conn
                with conn.transaction():
                    yield conn
            except psycopg.OperationalError as exc:
                raise StoreUnavailable(f"PostgreSQL failed: {exc}") from exc

    def _time_in(self, when: datetime) -> Any:
        return when

    def _time_out(self, value: Any) -> datetime:
        assert isinstance(value, datetime)
        return value.astimezone(UTC)

    def ping(self) -> None:
        with self._lock:
            conn = self._link.conn
            with conn.transaction():
                conn.execute("SELECT 1")

    def close(self) -> None:
        with self._lock:
            self._link.close()
