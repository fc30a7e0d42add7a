"""The input quarantine and batch-file progress over SQL, shared by SQLite and PostgreSQL.

The two differ in placeholders, timestamps and how a statement runs; each subclass
supplies those (``_run``, ``_time_in``, ``_time_out``) and the rest is written once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from tally.kernel.page import Page, decode_cursor, fetch_size, page_from_rows
from tally.quarantine.inputs import (
    Quarantined,
    Reason,
    Refused,
    Status,
    storable,
    storable_refused,
)
from tally.quarantine.redaction import redact_parts

# The clean-up that redacts secrets from entries kept before redaction (see redact_kept).
REDACTION_CLEANUP = "redact_secrets_v1"
# Entries read per round trip by the clean-up (a payload is at most 256 KiB).
CLEANUP_BATCH = 200

COLUMNS = (
    "id, source, channel, reason, detail, payload, headers, idem_key, received_at, "
    "status, resolved_at, resolved_by, note"
)
INSERT_COLUMNS = "source, channel, reason, detail, payload, headers, idem_key, received_at"


def insert_values(r: Refused, instant: Callable[[datetime], Any]) -> tuple[Any, ...]:
    r = storable_refused(r)  # neither store keeps NUL or lone surrogates in text
    headers = json.dumps(dict(r.headers), sort_keys=True)
    return (
        r.source,
        r.channel,
        r.reason.value,
        r.detail,
        r.payload,
        headers,
        r.key,
        instant(r.received_at),
    )


def from_row(row: Sequence[Any], instant: Callable[[Any], datetime]) -> Quarantined:
    (entry_id, source, channel, reason, detail, payload, headers, key, received) = row[:9]
    status, resolved_at, resolved_by, note = row[9:]
    if isinstance(headers, str):
        headers = json.loads(headers)
    return Quarantined(
        id=int(entry_id),
        refused=Refused(
            source=source,
            channel=channel,
            reason=Reason(reason),
            detail=detail,
            payload=payload,
            received_at=instant(received),
            headers=dict(headers),
            key=key,
        ),
        status=Status(status),
        resolved_at=None if resolved_at is None else instant(resolved_at),
        resolved_by=resolved_by,
        note=note,
    )


def page_filter(
    status: Status | None, reason: Reason | None, source: str | None, cursor: str | None
) -> tuple[str, list[Any]]:
    """A WHERE clause (with ``?`` placeholders) and its values."""
    where = ["id > ?"]
    values: list[Any] = [decode_cursor(cursor)]
    if status is not None:
        where.append("status = ?")
        values.append(status.value)
    if reason is not None:
        where.append("reason = ?")
        values.append(reason.value)
    if source is not None:
        where.append("source = ?")
        values.append(source)
    return " AND ".join(where), values


class SqlInputQuarantine:
    placeholder = "?"

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run one statement (its own transaction); the rows it returns."""
        raise NotImplementedError

    def _time_in(self, when: datetime) -> Any:
        raise NotImplementedError

    def _time_out(self, value: Any) -> datetime:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.placeholder)

    def put(self, refused: Refused) -> int:
        rows = self._run(
            self._sql(
                f"INSERT INTO input_quarantine ({INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (idem_key) WHERE source = 'file' DO NOTHING RETURNING id"
            ),
            insert_values(refused, self._time_in),
        )
        if not rows:  # that file line was kept before
            rows = self._run(
                self._sql("SELECT id FROM input_quarantine WHERE source = 'file' AND idem_key = ?"),
                (storable(refused.key),),
            )
        return int(rows[0][0])

    def redact_kept(self) -> int:
        """Redact the secrets of entries kept before ``put`` redacted them; how many changed.

        Run at startup, once per database: SQL cannot parse the JSON and form bodies, so it
        is done here with the same function as ``put`` (idempotent: a redacted entry stays
        as it is) and recorded as done in ``input_quarantine_cleanups``.
        """
        done = self._run(
            self._sql("SELECT 1 FROM input_quarantine_cleanups WHERE name = ?"),
            (REDACTION_CLEANUP,),
        )
        if done:
            return 0
        changed = 0
        after = 0
        while True:
            rows = self._run(
                self._sql(
                    "SELECT id, detail, payload, headers FROM input_quarantine "
                    "WHERE id > ? ORDER BY id LIMIT ?"
                ),
                (after, CLEANUP_BATCH),
            )
            for entry_id, detail, payload, headers in rows:
                kept = json.loads(headers) if isinstance(headers, str) else dict(headers)
                clean = redact_parts(detail, payload, kept)
                if clean != (detail, payload, kept):
                    self._run(
                        self._sql(
                            "UPDATE input_quarantine SET detail = ?, payload = ?, headers = ? "
                            "WHERE id = ?"
                        ),
                        (clean[0], clean[1], json.dumps(clean[2], sort_keys=True), entry_id),
                    )
                    changed += 1
            if len(rows) < CLEANUP_BATCH:
                break
            after = int(rows[-1][0])
        self._run(
            self._sql(
                "INSERT INTO input_quarantine_cleanups VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
            ),
            (REDACTION_CLEANUP, changed),
        )
        return changed

    def get(self, entry_id: int) -> Quarantined | None:
        rows = self._run(
            self._sql(f"SELECT {COLUMNS} FROM input_quarantine WHERE id = ?"), (entry_id,)
        )
        return from_row(rows[0], self._time_out) if rows else None

    def entries(
        self,
        *,
        status: Status | None = None,
        reason: Reason | None = None,
        source: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[Quarantined]:
        where, values = page_filter(status, reason, source, cursor)
        rows = self._run(
            self._sql(f"SELECT {COLUMNS} FROM input_quarantine WHERE {where} ORDER BY id LIMIT ?"),
            (*values, fetch_size(limit)),
        )
        return page_from_rows(
            rows, limit, key=lambda r: int(r[0]), item=lambda r: from_row(r, self._time_out)
        )

    def _transaction(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def resolve(
        self,
        entry_id: int,
        status: Status,
        *,
        by: str,
        at: datetime,
        note: str = "",
        within: Callable[[Any], object],
    ) -> bool:
        assert status is not Status.OPEN, "an entry is resolved to redriven or dismissed"
        with self._transaction() as tx:
            moved = tx.execute(
                self._sql(
                    "UPDATE input_quarantine SET status = ?, resolved_at = ?, resolved_by = ?, "
                    "note = ? WHERE id = ? AND status = 'open' RETURNING id"
                ),
                (status.value, self._time_in(at), by, storable(note), entry_id),
            ).fetchall()
            if moved:
                within(tx)
        return len(moved) == 1

    def counts(self) -> dict[tuple[str, str], int]:
        rows = self._run(
            "SELECT status, reason, COUNT(*) FROM input_quarantine GROUP BY status, reason", ()
        )
        return {(s, r): int(n) for s, r, n in rows}


class SqlImportProgress:
    """How far each batch file got (see :class:`tally.ingest.files.ImportProgress`)."""

    placeholder = "?"

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _time_in(self, when: datetime) -> Any:
        raise NotImplementedError

    def committed(self, file_id: str) -> int:
        rows = self._run(
            "SELECT lines_done FROM import_progress WHERE file_id = ?".replace(
                "?", self.placeholder
            ),
            (file_id,),
        )
        return int(rows[0][0]) if rows else 0

    def record(
        self,
        file_id: str,
        name: str,
        provider: str,
        lines: int,
        counts: dict[str, int],
        at: datetime,
        *,
        finished: bool,
    ) -> None:
        self._run(
            (
                "INSERT INTO import_progress VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (file_id) DO UPDATE SET lines_done = excluded.lines_done, "
                "counts = excluded.counts, updated_at = excluded.updated_at, "
                "finished = excluded.finished"
            ).replace("?", self.placeholder),
            (file_id, name, provider, lines, json.dumps(counts), self._time_in(at), finished),
        )
