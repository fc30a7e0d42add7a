"""Embedded ledger files as an earlier migration left them, for migration tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tally.adapters.sql.migrate import MIGRATIONS_TABLE, load_migrations


def ledger_file_at(path: Path, version: int) -> sqlite3.Connection:
    """A ledger file as the first ``version`` migrations left it, and a connection to it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(MIGRATIONS_TABLE)
    for migration in load_migrations("tally.adapters.sqlite.migrations", "ledger")[:version]:
        conn.executescript(migration.sql)
        conn.execute(
            "INSERT INTO schema_migrations VALUES ('ledger', ?, ?)",
            (migration.version, migration.name),
        )
    return conn
