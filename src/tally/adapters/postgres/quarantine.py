"""The input quarantine and batch-file progress in PostgreSQL."""

from __future__ import annotations

from tally.adapters.postgres.connection import LinkedStore
from tally.adapters.postgres.ledger import migrate
from tally.adapters.sql.quarantine import SqlImportProgress, SqlInputQuarantine


class PostgresIngestStore(LinkedStore, SqlInputQuarantine, SqlImportProgress):
    placeholder = "%s"

    def __init__(self, dsn: str, *, schema: str | None = None) -> None:
        LinkedStore.__init__(self, dsn, schema=schema)
        with self._lock:
            migrate(self._link.conn, "quarantine")
            migrate(self._link.conn, "ingest")
        self.redact_kept()  # entries kept before secrets were redacted


PostgresInputQuarantine = PostgresIngestStore
PostgresImportProgress = PostgresIngestStore
