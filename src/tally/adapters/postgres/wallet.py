"""Wallet rollback marks in PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

from tally.adapters.postgres.connection import Link, connect_kwargs
from tally.adapters.postgres.ledger import migrate
from tally.adapters.postgres.params import ANY_TEXTS, texts


class PostgresWalletMarks:
    def __init__(self, dsn: str, *, schema: str | None = None) -> None:
        self._link = Link(dsn, autocommit=True, **connect_kwargs(schema))
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._link.conn, "wallet")

    def mark(self, original: str, rollback_key: str, at: datetime) -> None:
        with self._lock:
            self._link.conn.execute(
                "INSERT INTO wallet_rollback_marks VALUES (%s, %s, %s) "
                "ON CONFLICT (original) DO NOTHING",
                (original, rollback_key, at),
            )

    def marked(self, originals: Sequence[str]) -> dict[str, str]:
        with self._lock:
            found = self._link.conn.execute(
                "SELECT original, rollback_key FROM wallet_rollback_marks "
                f"WHERE original = {ANY_TEXTS}",
                (texts(originals),),
            ).fetchall()
        return dict(found)

    def close(self) -> None:
        with self._lock:
            self._link.close()
