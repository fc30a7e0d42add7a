"""The alerts store in PostgreSQL. A change of one (kind, key) takes a transaction-scoped
advisory lock on it, so processes signalling one key at once still make one alert."""

from __future__ import annotations

import threading
from typing import Any

from tally.adapters.postgres.connection import LinkedStore
from tally.adapters.postgres.ledger import migrate
from tally.adapters.sql.risk import SqlAlertStore

_LOCK_SPACE = 0x7A11  # the advisory-lock key space of alerts: hashtextextended's seed


class PostgresAlertStore(LinkedStore, SqlAlertStore):
    placeholder = "%s"

    def __init__(self, dsn: str, *, schema: str | None = None) -> None:
        LinkedStore.__init__(self, dsn, schema=schema)
        # Reentrant: a change's callback reads (silences, the alerts that may inhibit it)
        # on the same connection, inside the change's transaction.
        self._lock = threading.RLock()  # type: ignore[assignment]
        with self._lock:
            migrate(self._link.conn, "risk")

    def _lock_key(self, tx: Any, kind: str, key: str) -> None:
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))",
            (f"{kind}\x1f{key}", _LOCK_SPACE),
        )
