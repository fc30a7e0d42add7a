"""The embedded back-office store: users, sessions, API keys and the audit chain.

Lives in the same SQLite file as the ledger (its own tables, components ``auth``
and ``audit``), on its own connection.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from tally.adapters.sql.backoffice import Cursor, SqlBackofficeStore
from tally.adapters.sqlite.connection import connect, immediate
from tally.adapters.sqlite.ledger import migrate
from tally.audit.chain import Sealer
from tally.kernel.clock import from_micros, to_micros
from tally.kernel.errors import StoreUnavailable


class SqliteBackofficeStore(SqlBackofficeStore):
    duplicate_error = sqlite3.IntegrityError

    def __init__(self, path: Path | str, sealer: Sealer) -> None:
        super().__init__(sealer)
        self.path = Path(path)
        try:
            self._conn = connect(self.path)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._conn, "auth")
            migrate(self._conn, "audit")
            migrate(self._conn, "secrets")

    @contextmanager
    def _transaction(self) -> Iterator[Cursor]:
        with self._lock, immediate(self._conn, busy="back-office database") as conn:
            yield conn

    def _time_in(self, when: datetime) -> Any:
        return to_micros(when)

    def _time_out(self, value: Any) -> datetime:
        return from_micros(int(value))

    def ping(self) -> None:
        with self._lock:
            self._conn.execute("SELECT 1").fetchone()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
