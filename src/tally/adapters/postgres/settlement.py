"""Settlement configuration documents in PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tally.adapters.postgres.ledger import connect_kwargs, migrate


class PostgresConfigDocuments:
    def __init__(self, dsn: str, *, schema: str | None = None) -> None:
        self._conn = psycopg.connect(dsn, autocommit=True, **connect_kwargs(schema))
        self._lock = threading.Lock()
        with self._lock:
            self._conn.autocommit = False
            migrate(self._conn, "settlement")
            self._conn.autocommit = True

    def get(self, kind: str, key: str) -> Mapping[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT document FROM settlement_config WHERE kind = %s AND key = %s", (kind, key)
            ).fetchone()
        return dict(row[0]) if row else None

    def insert(self, kind: str, key: str, document: Mapping[str, Any], now: datetime) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO settlement_config (kind, key, document, recorded_at) "
                "VALUES (%s, %s, %s, %s)",
                (kind, key, Jsonb(dict(document)), now),
            )

    def all(self, kind: str) -> list[Mapping[str, Any]]:
        with self._lock:
            found = self._conn.execute(
                "SELECT document FROM settlement_config WHERE kind = %s ORDER BY seq", (kind,)
            ).fetchall()
        return [dict(doc) for (doc,) in found]

    def revision(self) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM settlement_config"
            ).fetchone()
        assert row is not None
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
