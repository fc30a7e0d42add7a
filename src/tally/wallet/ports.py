"""What the wallet needs from outside: rollback marks and an event log to append to."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from tally.events.model import Event
from tally.events.ports import AppendResult


class WalletMarks(Protocol):
    """Rollbacks that arrived before their original: ``provider:tx`` -> rollback key."""

    def mark(self, original: str, rollback_key: str, at: datetime) -> None: ...

    def marked(self, originals: Sequence[str]) -> dict[str, str]: ...

    def close(self) -> None:
        """Release what the marks hold (connections); marks that hold nothing do nothing."""
        ...


class Appender(Protocol):
    def append(self, events: Sequence[Event]) -> list[AppendResult]: ...
