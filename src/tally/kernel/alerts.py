"""The one door through which any context raises or clears an alert.

The risk context owns alerts (grouping, deduplication, inhibition, silences, delivery);
every other context (reconciliation, payouts, the data lifecycle, the gateway) only
*signals* a condition through :class:`AlertSink` and names it by ``kind`` and ``key``,
so the same condition signalled twice is one alert, and a cleared condition resolves it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class Severity(StrEnum):
    """Ordered from least to most urgent (``Severity.order``)."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def order(self) -> int:
        return _SEVERITY_ORDER[self]


_SEVERITY_ORDER = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


@dataclass(frozen=True, slots=True)
class AlertSignal:
    """A condition one context has noticed.

    ``kind`` names the rule (``payouts.reservation_expired``); ``key`` tells one instance
    of it from another (``payout:p-17``), so (kind, key) is the deduplication key.
    ``cause`` is one sentence a person can act on; ``evidence`` holds the figures behind
    it (strings, so amounts stay exact); ``money_at_risk`` is in minor units of
    ``currency`` (0 when the condition is not about money); ``refs`` name the rows behind
    it (``transfer:…``, ``event:…``, ``break:…``). Confidence is in thousandths (no float
    near money), and the priority is money at risk times confidence.
    """

    kind: str
    key: str
    severity: Severity
    cause: str
    at: datetime
    region: str = ""
    provider: str = ""
    operator: str = ""
    game: str = ""
    money_at_risk: int = 0
    currency: str = ""
    confidence_permille: int = 1000
    evidence: Mapping[str, str] = field(default_factory=dict)
    refs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.kind or not self.key:
            raise ValueError("an alert signal needs a kind and a key")
        if not 0 <= self.confidence_permille <= 1000:
            raise ValueError(f"confidence {self.confidence_permille}‰ is outside [0, 1000]")
        if self.money_at_risk < 0:
            raise ValueError("money at risk is a magnitude, never negative")
        if self.at.tzinfo is None:
            raise ValueError("an alert signal's instant must carry its time zone")

    @property
    def priority(self) -> int:
        """Money at risk (minor units) weighted by confidence, rounded down."""
        return self.money_at_risk * self.confidence_permille // 1000


class AlertSink(Protocol):
    """Where signals go. Implementations must be idempotent on (kind, key)."""

    def signal(self, alert: AlertSignal) -> None:
        """Raise (or refresh) the alert for ``(alert.kind, alert.key)``."""

    def clear(self, kind: str, key: str, at: datetime) -> None:
        """The condition behind ``(kind, key)`` no longer holds."""
