"""An alert sink that writes each signal to the ``logging`` module.

A stand-in until the risk context's alert store is wired (it groups, deduplicates,
silences and delivers alerts): a signal is one WARNING log record (ERROR when critical)
naming its kind, key and cause, with its fields as the record's ``alert`` extra; a clear
is one INFO record. It keeps nothing, so it is trivially idempotent on (kind, key).
"""

from __future__ import annotations

import logging
from datetime import datetime

from tally.kernel.alerts import AlertSignal, Severity

LOGGER = "tally.alerts"


class LoggingAlertSink:
    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(LOGGER)

    def signal(self, alert: AlertSignal) -> None:
        level = logging.ERROR if alert.severity is Severity.CRITICAL else logging.WARNING
        fields = {
            "kind": alert.kind, "key": alert.key, "severity": alert.severity.value,
            "at": alert.at.isoformat(), "provider": alert.provider,
            "operator": alert.operator, "money_at_risk": alert.money_at_risk,
            "currency": alert.currency, "evidence": dict(alert.evidence),
            "refs": list(alert.refs),
        }  # fmt: skip
        self.logger.log(
            level, "alert %s %s: %s", alert.kind, alert.key, alert.cause, extra={"alert": fields}
        )

    def clear(self, kind: str, key: str, at: datetime) -> None:
        self.logger.info(
            "alert cleared %s %s", kind, key,
            extra={"alert": {"kind": kind, "key": key, "at": at.isoformat()}},
        )  # fmt: skip
