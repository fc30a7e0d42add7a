"""Input quarantine rows, shared by the SQL stores (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from tally.quarantine.inputs import Quarantined, Reason, Refused, Status

COLUMNS = (
    "id, source, channel, reason, detail, payload, headers, idem_key, received_at, "
    "status, resolved_at, resolved_by, note"
)
INSERT_COLUMNS = "source, channel, reason, detail, payload, headers, idem_key, received_at"


def insert_values(r: Refused, instant: Callable[[datetime], Any]) -> tuple[Any, ...]:
    headers = json.dumps(dict(r.headers), sort_keys=True)
    return (
        r.source,
        r.channel,
        r.reason.value,
        r.detail,
        r.payload.replace("\0", "\\x00"),  # neither store keeps NUL in text
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
    values: list[Any] = [int(cursor) if cursor and cursor.isdigit() else 0]
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
