"""One PostgreSQL connection that a lost server does not end for good."""

from __future__ import annotations

from typing import Any

import psycopg
import structlog

from tally.kernel.errors import StoreUnavailable

log = structlog.get_logger("tally.postgres")


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
            return psycopg.connect(self._dsn, **self._kwargs)
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
