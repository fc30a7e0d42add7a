"""Injected time. All timestamps are timezone-aware UTC."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock UTC time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock for tests: stands still until told to move."""

    def __init__(self, start: datetime) -> None:
        require_utc(start)
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: datetime) -> None:
        require_utc(when)
        with self._lock:
            self._now = when


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def require_utc(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"naive datetime {when!r}: timestamps must be timezone-aware")
    return when


def to_micros(when: datetime) -> int:
    """Aware datetime to integer microseconds since the Unix epoch (exact)."""
    delta = require_utc(when) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)
