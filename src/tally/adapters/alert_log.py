"""An AlertSink that writes each signal to the structured log.

The risk watch's sink until the alerts service (grouping, silences, delivery) is wired
in its place: nothing is lost meanwhile, every signal is a log line a person can find.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from tally.kernel.alerts import AlertSignal

log = structlog.get_logger(__name__)


class LogAlertSink:
    def signal(self, alert: AlertSignal) -> None:
        log.warning(
            "alert_signalled",
            kind=alert.kind,
            key=alert.key,
            severity=alert.severity.value,
            cause=alert.cause,
            region=alert.region,
            provider=alert.provider,
            operator=alert.operator,
            game=alert.game,
            priority=alert.priority,
            evidence=dict(alert.evidence),
        )

    def clear(self, kind: str, key: str, at: datetime) -> None:
        log.info("alert_cleared", kind=kind, key=key, at=at.isoformat())
