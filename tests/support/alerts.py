"""A recording alert sink for tests, until the risk context's store is the sink."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tally.kernel.alerts import AlertSignal


@dataclass
class RecordingAlertSink:
    """Every signal and clear in order; ``open`` is what is raised and not cleared, by
    (kind, key), the last signal of each (as an idempotent sink keeps it)."""

    signals: list[AlertSignal] = field(default_factory=list)
    clears: list[tuple[str, str, datetime]] = field(default_factory=list)
    open: dict[tuple[str, str], AlertSignal] = field(default_factory=dict)

    def signal(self, alert: AlertSignal) -> None:
        self.signals.append(alert)
        self.open[(alert.kind, alert.key)] = alert

    def clear(self, kind: str, key: str, at: datetime) -> None:
        self.clears.append((kind, key, at))
        self.open.pop((kind, key), None)

    def kinds(self) -> set[str]:
        return {kind for kind, _ in self.open}
