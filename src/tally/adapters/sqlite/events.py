"""The embedded event log: a table in the ledger's SQLite file."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from tally.adapters.sqlite.connection import connect, immediate
from tally.adapters.sqlite.ledger import json_array, migrate
from tally.events import codec
from tally.events.model import Event, EventKind, first_difference
from tally.events.ports import Appended, AppendResult
from tally.kernel.clock import to_micros

_ROWS_PER_INSERT = 256  # 1,024 parameters, well within SQLite's limit (32,766)
WINDOW_PAGE = 5_000  # events of a provider's window read per query
_FILL_PAGE = 10_000  # events filled into event_times per transaction on open


@functools.cache
def _insert(rows: int) -> str:
    """An insert of ``rows`` events (kept: a statement per size that occurs)."""
    values = ", ".join(["(?, ?, ?, ?)"] * rows)
    return f"INSERT INTO event_log (position, key, body, recorded_at) VALUES {values}"


@functools.cache
def _insert_times(rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?)"] * rows)
    return f"INSERT INTO event_times (provider, occurred_at, position, rollback) VALUES {values}"


def _time_row(position: int, event: Event) -> tuple[str, int, int, int]:
    return (
        event.provider, to_micros(event.occurred_at), position,
        int(event.kind is EventKind.ROLLBACK),
    )  # fmt: skip


def _insert_rows(
    conn: Any, statement: Callable[[int], str], rows: Sequence[tuple[Any, ...]]
) -> None:
    # Many rows a statement: SQLite inserts them in one step, without taking the
    # interpreter lock back for each row (ADR 0015); bound as parameters, not as a
    # JSON array, which SQLite would parse, bodies and their escapes included.
    for at in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[at : at + _ROWS_PER_INSERT]
        conn.execute(statement(len(chunk)), [v for row in chunk for v in row])


class SqliteEventLog:
    def __init__(self, path: Path | str) -> None:
        self._write = connect(path)
        self._read = connect(path)
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._write, "events")
            self._fill_times()

    def _fill_times(self) -> None:
        """Events logged before event_times existed get their rows (once, on open)."""
        while True:
            with immediate(self._write) as conn:
                rows = conn.execute(
                    "SELECT position, body FROM event_log WHERE position > "
                    "(SELECT COALESCE(MAX(position), 0) FROM event_times) "
                    "ORDER BY position LIMIT ?",
                    (_FILL_PAGE,),
                ).fetchall()
                _insert_rows(
                    conn, _insert_times, [_time_row(p, codec.loads_stored(b)) for p, b in rows]
                )
            if len(rows) < _FILL_PAGE:
                return

    def append(self, events: Sequence[Event]) -> list[AppendResult]:
        """Deduplicated by idempotency key, in one transaction; conflicts are kept apart."""
        keys = [e.key for e in events]
        # Encoded before the file's write lock is taken, so no other writer of the file
        # waits on it (a duplicate's body goes unused).
        bodies = [codec.dumps(e) for e in events]
        results: list[AppendResult] = []
        with self._lock, immediate(self._write) as conn:
            # Keys joined to the log, each a probe of its key (see SqliteWalletMarks.marked).
            known = {
                key: (position, codec.loads(stored))
                for key, position, stored in conn.execute(
                    "SELECT e.key, e.position, e.body FROM json_each(?) AS j "
                    "JOIN event_log AS e ON e.key = j.value",
                    (json_array(keys),),
                )
            }
            rows: list[tuple[int, str, str, int]] = []
            times: list[tuple[str, int, int, int]] = []
            conflicts: list[tuple[str, str, str, int]] = []
            (head,) = conn.execute("SELECT COALESCE(MAX(position), 0) FROM event_log").fetchone()
            for key, event, body in zip(keys, events, bodies, strict=True):
                found = known.get(key)
                if found is None:
                    head += 1
                    known[key] = (head, event)
                    rows.append((head, key, body, to_micros(event.recorded_at)))
                    times.append(_time_row(head, event))
                    results.append(AppendResult(key, Appended.ACCEPTED, head))
                    continue
                position, first = found
                differs = first_difference(first, event)
                if differs is None:
                    results.append(AppendResult(key, Appended.DUPLICATE, position))
                else:
                    conflicts.append((key, differs, body, to_micros(event.recorded_at)))
                    results.append(AppendResult(key, Appended.CONFLICT, position, differs))
            _insert_rows(conn, _insert, rows)
            _insert_rows(conn, _insert_times, times)
            conn.executemany(
                "INSERT INTO event_conflicts (key, differs_in, body, recorded_at) "
                "VALUES (?, ?, ?, ?)",
                conflicts,
            )
        return results

    def read(self, after: int, limit: int) -> list[tuple[int, Event]]:
        return [
            (position, codec.loads_stored(body))
            for position, body in self.read_stored(after, limit)
        ]

    def read_stored(self, after: int, limit: int) -> list[tuple[int, str | bytes]]:
        with self._lock:
            found: list[tuple[int, str | bytes]] = self._read.execute(
                "SELECT position, body FROM event_log WHERE position > ? ORDER BY position LIMIT ?",
                (after, limit),
            ).fetchall()
        return found

    def provider_window(
        self, provider: str, start: datetime, end: datetime
    ) -> Iterator[str | bytes]:
        """``provider``'s events with occurred_at in [start, end), as stored, in time order
        (by event_times' key: a page at a time, never the whole window)."""
        after = (to_micros(start) - 1, 2**63 - 1)
        stop = to_micros(end)
        while True:
            with self._lock:
                page = self._read.execute(
                    "SELECT t.occurred_at, t.position, e.body FROM event_times AS t "
                    "JOIN event_log AS e ON e.position = t.position "
                    "WHERE t.provider = ? AND (t.occurred_at, t.position) > (?, ?) "
                    "AND t.occurred_at < ? ORDER BY t.occurred_at, t.position LIMIT ?",
                    (provider, *after, stop, WINDOW_PAGE),
                ).fetchall()
            for _, _, body in page:
                yield body
            if len(page) < WINDOW_PAGE:
                return
            after = (page[-1][0], page[-1][1])

    def provider_rollbacks(self, provider: str) -> Iterator[str | bytes]:
        """Every rollback ``provider`` sent, whenever it happened, as stored."""
        after = 0
        while True:
            with self._lock:
                page = self._read.execute(
                    "SELECT t.position, e.body FROM event_times AS t "
                    "JOIN event_log AS e ON e.position = t.position "
                    "WHERE t.provider = ? AND t.rollback = 1 AND t.position > ? "
                    "ORDER BY t.position LIMIT ?",
                    (provider, after, WINDOW_PAGE),
                ).fetchall()
            for _, body in page:
                yield body
            if len(page) < WINDOW_PAGE:
                return
            after = page[-1][0]

    def conflicts(self, limit: int = 100) -> list[tuple[str, str, str]]:
        with self._lock:
            found: list[tuple[str, str, str]] = self._read.execute(
                "SELECT key, differs_in, body FROM event_conflicts ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return found

    def head(self) -> int:
        with self._lock:
            (head,) = self._read.execute(
                "SELECT COALESCE(MAX(position), 0) FROM event_log"
            ).fetchone()
        return int(head)

    def close(self) -> None:
        with self._lock:
            self._write.close()
            self._read.close()
