"""The event log as a port: append with deduplication, read in order from a position."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from tally.events.model import Event
from tally.kernel.values import value


class Appended(StrEnum):
    ACCEPTED = "accepted"  # new: it has a position now
    DUPLICATE = "duplicate"  # the same key and content: counted once, first position
    CONFLICT = "conflict"  # the same key, other content: refused and kept for a person


@value
class AppendResult:
    key: str
    outcome: Appended
    position: int  # of the first delivery (0 for a conflict within its own batch)
    differs_in: str = ""  # for a conflict: the first field that differs


class EventLog(Protocol):
    def append(self, events: Sequence[Event]) -> list[AppendResult]: ...

    def read(self, after: int, limit: int) -> list[tuple[int, Event]]:
        """Up to ``limit`` events with positions greater than ``after``, in order."""
        ...

    def read_stored(self, after: int, limit: int) -> list[tuple[int, str | bytes]]:
        """Like :meth:`read`, but each event as stored (what ``codec.dumps`` wrote), for a
        reader that decodes only what it needs."""
        ...

    def conflicts(self, limit: int = 100) -> list[tuple[str, str, str]]:
        """Refused deliveries: (key, what differs, the body as received)."""
        ...

    def head(self) -> int:
        """The last position written (0 for an empty log)."""
        ...

    def close(self) -> None:
        """Release what the log holds (connections); a log that holds nothing does nothing."""
        ...


@runtime_checkable
class ProviderWindows(Protocol):
    """What a log with an index of its events' providers and times can also do (the
    embedded one): read one provider's events by time, never the whole log. A log
    without it is scanned (JetStream: its subjects name no time)."""

    def provider_window(
        self, provider: str, start: datetime, end: datetime
    ) -> Iterator[str | bytes]:
        """``provider``'s events with occurred_at in [start, end), as stored, in time
        order (read a page at a time)."""
        ...

    def provider_rollbacks(self, provider: str) -> Iterator[str | bytes]:
        """Every rollback ``provider`` sent, whatever its time, as stored."""
        ...
