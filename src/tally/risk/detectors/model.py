"""What the detectors read and what they say. Pure.

A detector reads :class:`WatchEvent` (the few fields of a canonical event the watch needs,
times as whole seconds since the epoch so a minute is an integer division) and says
either an :class:`~tally.kernel.alerts.AlertSignal` (a condition holds) or a
:class:`Clear` (it no longer does). Time is the watch's clock: when *we* recorded an
event, so a late batch is late and an outage is silence, whatever the provider's clock
says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from tally.kernel.alerts import AlertSignal, Severity

MINUTE = 60
HOUR = 3600
WEEK = 7 * 24 * HOUR

# The kinds of event the watch tells apart (the canonical EventKind values).
BET = "bet"
WIN = "win"
JACKPOT_WIN = "jackpot_win"
BONUS_WIN = "bonus_win"
ROLLBACK = "rollback"
RETURNS = frozenset({WIN, JACKPOT_WIN})  # what a game pays back (bonuses are the operator's)


@dataclass(frozen=True, slots=True)
class WatchEvent:
    key: str  # the event's idempotency key
    kind: str
    provider: str
    operator: str
    player: str
    game: str
    round_id: str
    amount: int  # minor units of ``currency``
    currency: str
    region: str
    agent: str
    at: int  # recorded_at, whole seconds since the epoch (the watch's clock)
    occurred: int  # occurred_at, the provider's clock, likewise


@dataclass(frozen=True, slots=True)
class Clear:
    kind: str
    key: str
    at: datetime


Said = AlertSignal | Clear


def instant(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def signal(
    kind: str,
    key: str,
    at: int,
    cause: str,
    *,
    severity: Severity = Severity.WARNING,
    evidence: Mapping[str, object] | None = None,
    **dims: Any,
) -> AlertSignal:
    """An AlertSignal with its evidence as strings (the port keeps figures as text)."""
    return AlertSignal(
        kind=kind,
        key=key,
        severity=severity,
        cause=cause,
        at=instant(at),
        evidence={k: _text(v) for k, v in (evidence or {}).items()},
        **dims,
    )


def _text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class Detector(Protocol):
    """A pure detector: feed it events in log order and tell it when time moves on."""

    name: str

    def observe(self, e: WatchEvent, out: list[Said]) -> None:
        """Take one event into account; append anything it makes true or false."""

    def tick(self, now: int, out: list[Said]) -> None:
        """The watch's clock reached ``now`` (seconds): close whatever windows ended."""

    def state(self) -> dict[str, Any]:
        """Everything it has learnt, as JSON-able data (committed with the log position)."""

    def load(self, state: Mapping[str, Any]) -> None:
        """Take back what :meth:`state` gave (after a restart)."""
