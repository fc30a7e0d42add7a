"""An in-memory event log: the reference fake for the event log contract."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from tally.events import codec
from tally.events.model import Event, first_difference
from tally.events.ports import Appended, AppendResult


class MemoryEventLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self._positions: dict[str, int] = {}
        self._conflicts: list[tuple[str, str, str]] = []

    def append(self, events: Sequence[Event]) -> list[AppendResult]:
        results: list[AppendResult] = []
        with self._lock:
            for event in events:
                position = self._positions.get(event.key)
                if position is None:
                    self._events.append(event)
                    position = self._positions[event.key] = len(self._events)
                    results.append(AppendResult(event.key, Appended.ACCEPTED, position))
                    continue
                differs = first_difference(self._events[position - 1], event)
                if differs is None:
                    results.append(AppendResult(event.key, Appended.DUPLICATE, position))
                else:
                    self._conflicts.append((event.key, differs, codec.dumps(event)))
                    results.append(AppendResult(event.key, Appended.CONFLICT, position, differs))
        return results

    def read(self, after: int, limit: int) -> list[tuple[int, Event]]:
        with self._lock:
            return [(after + i + 1, e) for i, e in enumerate(self._events[after : after + limit])]

    def read_stored(self, after: int, limit: int) -> list[tuple[int, str | bytes]]:
        return [(position, codec.dumps(e)) for position, e in self.read(after, limit)]

    def conflicts(self, limit: int = 100) -> list[tuple[str, str, str]]:
        with self._lock:
            return self._conflicts[:limit]

    def head(self) -> int:
        with self._lock:
            return len(self._events)

    def close(self) -> None:
        """Nothing held: nothing to release."""
