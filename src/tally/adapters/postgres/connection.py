"""How the PostgreSQL stores open their connections.

Every PostgreSQL connection of the adapters is opened here, with the settings of
:func:`connect_kwargs`: one-off (:func:`connect`), kept and opened again once the server
drops it (:class:`Link`), or lent from a pool of readers (:func:`pool`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
import structlog
from psycopg_pool import ConnectionPool

from tally.kernel.errors import StoreUnavailable

log = structlog.get_logger("tally.postgres")


def connect_kwargs(schema: str | None) -> dict[str, Any]:
    # Lookups by key (``key = ANY(...)``) must use the primary key's index at any table
    # size. Two planner settings see to it (measured: 10-100 ms per settlement batch
    # without them, under 2 ms with them):
    # - psycopg prepares a query it runs often, and PostgreSQL may then keep one generic
    #   plan, made when the table was small: a sequential scan ever slower as it grows.
    #   Plan each execution for its parameters instead.
    # - The default random_page_cost (4) prices an index probe as a disk seek; the working
    #   set here is in memory or on SSD, where 1.1 is the usual figure.
    options = "-c timezone=UTC -c plan_cache_mode=force_custom_plan -c random_page_cost=1.1"
    if schema:
        options += f" -c search_path={schema}"
    return {"options": options}


def connect(dsn: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A connection of its own (closed by its user), with ``kwargs`` from
    :func:`connect_kwargs` and any more psycopg takes."""
    return psycopg.connect(dsn, **kwargs)


def pool(dsn: str, *, max_size: int, name: str, **kwargs: Any) -> ConnectionPool:
    """An open pool of autocommit connections for reads, from one to ``max_size``."""
    return ConnectionPool(
        dsn,
        min_size=1,
        max_size=max_size,
        kwargs={**kwargs, "autocommit": True},
        open=True,
        name=name,
    )


class Link:
    """A connection that is opened again, with the same settings, once it was lost.

    A server restart, a failover or a terminated backend fails the operation under way
    (psycopg raises it, and the caller maps it as before) and leaves the connection
    broken; the next use of :attr:`conn` opens a new one. Nothing is retried here: only
    the caller knows whether its work may run again. Callers serialise their use of a
    link, as they did of the connection."""

    def __init__(self, dsn: str, **kwargs: Any) -> None:
        self._dsn = dsn
        self._kwargs = kwargs
        self._shut = False
        self._conn = self._open()

    def _open(self) -> psycopg.Connection[Any]:
        try:
            return connect(self._dsn, **self._kwargs)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"cannot reach PostgreSQL: {exc}") from exc

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn.broken and not self._shut:
            log.warning("postgres_reconnecting", backend=self._conn.info.backend_pid)
            self._conn.close()  # a broken connection still holds its socket until closed
            self._conn = self._open()
        return self._conn

    def close(self) -> None:
        self._shut = True
        self._conn.close()


class LinkedStore:
    """The plumbing of a store over one autocommit :class:`Link` used under a lock: a
    statement at a time (``_run``), a transaction (``_transaction``), PostgreSQL's own
    timestamps, and ``close``. The SQL stores above it supply the statements."""

    def __init__(self, dsn: str, *, schema: str | None = None) -> None:
        self._dsn = dsn
        self._kwargs = connect_kwargs(schema)
        self._link = Link(dsn, autocommit=True, **self._kwargs)
        self._lock = threading.Lock()

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
