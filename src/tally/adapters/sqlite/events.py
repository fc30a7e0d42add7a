"""The embedded event log: a table in the ledger's SQLite file."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from tally.adapters.sqlite.ledger import connect, immediate, json_array, migrate
from tally.events import codec
from tally.events.model import Event, first_difference
from tally.events.ports import Appended, AppendResult
from tally.kernel.clock import to_micros


class SqliteEventLog:
    def __init__(self, path: Path | str) -> None:
        self._write = connect(path)
        self._read = connect(path)
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._write, "events")

    def append(self, events: Sequence[Event]) -> list[AppendResult]:
        """Deduplicated by idempotency key, in one transaction; conflicts are kept apart."""
        keys = [e.key for e in events]
        results: list[AppendResult] = []
        with self._lock, immediate(self._write) as conn:
            # Keys joined to the log, each a probe of its key (see SqliteWalletMarks.marked).
            known = {
                key: (position, codec.loads(body))
                for key, position, body in conn.execute(
                    "SELECT e.key, e.position, e.body FROM json_each(?) AS j "
                    "JOIN event_log AS e ON e.key = j.value",
                    (json_array(keys),),
                )
            }
            rows: list[tuple[int, str, str, int]] = []
            conflicts: list[tuple[str, str, str, int]] = []
            (head,) = conn.execute("SELECT COALESCE(MAX(position), 0) FROM event_log").fetchone()
            for key, event in zip(keys, events, strict=True):
                found = known.get(key)
                if found is None:
                    head += 1
                    known[key] = (head, event)
                    rows.append((head, key, codec.dumps(event), to_micros(event.recorded_at)))
                    results.append(AppendResult(key, Appended.ACCEPTED, head))
                    continue
                position, first = found
                differs = first_difference(first, event)
                if differs is None:
                    results.append(AppendResult(key, Appended.DUPLICATE, position))
                else:
                    conflicts.append(
                        (key, differs, codec.dumps(event), to_micros(event.recorded_at))
                    )
                    results.append(AppendResult(key, Appended.CONFLICT, position, differs))
            # One statement over the rows as a JSON array: SQLite inserts them all in one
            # step, without taking the interpreter lock back for each row (ADR 0015).
            conn.execute(
                "INSERT INTO event_log (position, key, body, recorded_at) "
                "SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each(?)",
                (json_array(rows),),
            )
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
