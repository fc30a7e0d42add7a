"""Wallet rollback marks in the embedded SQLite file."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from tally.adapters.sqlite.connection import connect
from tally.adapters.sqlite.ledger import json_array, migrate
from tally.kernel.clock import to_micros


class SqliteWalletMarks:
    def __init__(self, path: Path | str) -> None:
        self._conn = connect(path)
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._conn, "wallet")

    def mark(self, original: str, rollback_key: str, at: datetime) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO wallet_rollback_marks VALUES (?, ?, ?)",
                (original, rollback_key, to_micros(at)),
            )

    def marked(self, originals: Sequence[str]) -> dict[str, str]:
        # The keys joined to the table, each one a primary-key probe: for
        # ``IN (SELECT value FROM json_each(?))`` SQLite first builds an index of the keys.
        with self._lock:
            found = self._conn.execute(
                "SELECT m.original, m.rollback_key FROM json_each(?) AS j "
                "JOIN wallet_rollback_marks AS m ON m.original = j.value",
                (json_array(originals),),
            ).fetchall()
        return dict(found)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
