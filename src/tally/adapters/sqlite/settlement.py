"""Settlement configuration documents in the embedded SQLite file."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from tally.adapters.sqlite.ledger import connect, migrate
from tally.kernel.clock import to_micros
from tally.ledger.codec import dumps


class SqliteConfigDocuments:
    def __init__(self, path: Path | str) -> None:
        self._conn = connect(path)
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._conn, "settlement")

    def get(self, kind: str, key: str) -> Mapping[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT document FROM settlement_config WHERE kind = ? AND key = ?", (kind, key)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def insert(self, kind: str, key: str, document: Mapping[str, Any], now: datetime) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO settlement_config (kind, key, document, recorded_at) "
                "VALUES (?, ?, ?, ?)",
                (kind, key, dumps(dict(document)), to_micros(now)),
            )

    def all(self, kind: str) -> list[Mapping[str, Any]]:
        with self._lock:
            found = self._conn.execute(
                "SELECT document FROM settlement_config WHERE kind = ? ORDER BY seq", (kind,)
            ).fetchall()
        return [json.loads(text) for (text,) in found]

    def revision(self) -> int:
        with self._lock:
            (revision,) = self._conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM settlement_config"
            ).fetchone()
        return int(revision)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
