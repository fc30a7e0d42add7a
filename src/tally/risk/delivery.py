"""Where alerts go: signed webhooks and Prometheus Alertmanager, through an outbox.

The bodies are made when the alert changes and written to the outbox in the same
transaction as the change (``AlertService``), so a crash after the commit loses no
delivery; :class:`Deliverer` sends what is due, marks it delivered, or schedules the next
attempt with exponential backoff until the attempt limit (then it is kept as dead, never
dropped). A crash between a receiver's 2xx and our mark sends it once more: every
delivery carries its outbox id (``X-Tally-Delivery``) so a receiver drops the repeat, and
Alertmanager itself merges the same labels into one alert.

Webhook signature (``X-Tally-Signature: t=<unix seconds>,v1=<hex>``): HMAC-SHA256 under
the webhook's secret over ``"<t>." + body``, as the providers' own callback signatures
(SoftSwiss' ``X-REQUEST-SIGN`` is HMAC-SHA256 of the body); the timestamp inside the MAC
lets a receiver refuse a replay.

Alertmanager: ``POST /api/v2/alerts`` with a JSON array of ``postableAlert`` (its OpenAPI
``api/v2/openapi.yaml``): ``labels`` (required, string to string), ``annotations``,
``startsAt``, ``endsAt``, ``generatorURL``. An active alert is sent with ``endsAt`` a few
refresh periods ahead and re-sent every period (``AlertService.repush``), as Prometheus
does; a resolved one with ``endsAt`` its resolution time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog

from tally.kernel.alerts import Severity
from tally.kernel.clock import Clock
from tally.risk.alerts_model import Alert, AlertStatus, alert_to_dict
from tally.risk.ports import AlertStore, Delivery, Transport

log = structlog.get_logger("tally.risk.delivery")

SIGNATURE_HEADER = "X-Tally-Signature"
DELIVERY_HEADER = "X-Tally-Delivery"
ALERTMANAGER_PATH = "/api/v2/alerts"


class SinkKind(StrEnum):
    WEBHOOK = "webhook"
    ALERTMANAGER = "alertmanager"


@dataclass(frozen=True, slots=True)
class Sink:
    name: str
    kind: SinkKind
    url: str  # a webhook's URL; Alertmanager's base URL (the path is added)
    secret: str = ""  # a webhook's HMAC key
    min_severity: Severity = Severity.WARNING

    @property
    def id(self) -> str:
        return f"{self.kind.value}:{self.name}"

    def __repr__(self) -> str:  # the secret never reaches a log
        return f"Sink({self.id!r}, {self.url!r})"


@dataclass(frozen=True, slots=True)
class DeliveryLimits:
    attempts_max: int = 12  # then the delivery is dead (kept, listed)
    backoff_first_s: float = 5.0
    backoff_max_s: float = 3600.0
    timeout_s: float = 5.0
    batch_max: int = 100  # deliveries sent per run
    refresh_s: float = 60.0  # Alertmanager re-send period for active alerts


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes) -> bool:
    """Whether ``header`` is a valid signature of ``body`` (a receiver's check)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts or not parts["t"].isdigit():
        return False
    return hmac.compare_digest(sign(secret, int(parts["t"]), body), header)


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def alertmanager_alert(
    a: Alert, at: datetime, generator_url: str, refresh: timedelta
) -> dict[str, Any]:
    """One ``postableAlert``. Empty labels are left out (Alertmanager treats an empty
    label as absent)."""
    labels = {
        "alertname": a.kind,
        "severity": a.severity.value,
        "tally_key": a.key,
        "region": a.region,
        "provider": a.provider,
        "operator": a.operator,
        "game": a.game,
    }
    annotations = {
        "summary": a.cause,
        "priority": str(a.priority),
        "money_at_risk": str(a.money_at_risk),
        "currency": a.currency,
        "confidence_permille": str(a.confidence_permille),
        "evidence": json.dumps(dict(a.evidence), sort_keys=True),
        "refs": " ".join(a.refs),
        "tally_alert_id": str(a.id),
    }
    ends = a.resolved_at if a.status is AlertStatus.RESOLVED and a.resolved_at else at + refresh
    return {
        "labels": {k: v for k, v in labels.items() if v},
        "annotations": {k: v for k, v in annotations.items() if v},
        "startsAt": _utc(a.opened_at),
        "endsAt": _utc(ends),
        "generatorURL": generator_url.rstrip("/") + f"/v1/alerts/{a.id}",
    }


def webhook_body(a: Alert, action: str, at: datetime) -> bytes:
    return json.dumps(
        {"event": action, "at": at.isoformat(), "alert": alert_to_dict(a)}, sort_keys=True
    ).encode()


class Sinks:
    """The configured sinks, and the bodies each wants for a change."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        generator_url: str = "http://localhost:8000",
        limits: DeliveryLimits | None = None,
    ) -> None:
        self.by_id = {s.id: s for s in sinks}
        self.generator_url = generator_url
        self.limits = limits or DeliveryLimits()

    def _refresh(self) -> timedelta:
        return timedelta(seconds=self.limits.refresh_s * 3)

    def bodies(self, a: Alert, action: str, at: datetime) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        for s in self.by_id.values():
            if a.severity.order < s.min_severity.order:
                continue
            if s.kind is SinkKind.WEBHOOK:
                out.append((s.id, webhook_body(a, action, at)))
            else:
                body = [alertmanager_alert(a, at, self.generator_url, self._refresh())]
                out.append((s.id, json.dumps(body, sort_keys=True).encode()))
        return out

    def refresh_bodies(self, a: Alert, at: datetime) -> list[tuple[str, bytes]]:
        return [
            (sink, body)
            for sink, body in self.bodies(a, "alert.refreshed", at)
            if self.by_id[sink].kind is SinkKind.ALERTMANAGER
        ]


class Deliverer:
    """Sends due outbox rows; run it on a timer (the worker does)."""

    def __init__(self, store: AlertStore, sinks: Sinks, transport: Transport, clock: Clock) -> None:
        self.store = store
        self.sinks = sinks
        self.transport = transport
        self.clock = clock

    def run_once(self) -> tuple[int, int]:
        """(delivered, failed) in this run."""
        ok = failed = 0
        for d in self.store.due(self.clock.now(), self.sinks.limits.batch_max):
            if self._send(d):
                ok += 1
            else:
                failed += 1
        return ok, failed

    def _send(self, d: Delivery) -> bool:
        limits = self.sinks.limits
        sink = self.sinks.by_id.get(d.sink)
        now = self.clock.now()
        if sink is None:
            self.store.failed(d.id, d.attempts + 1, now, f"no sink {d.sink} configured", True)
            return False
        headers = {"Content-Type": "application/json", DELIVERY_HEADER: str(d.id)}
        url = sink.url
        if sink.kind is SinkKind.WEBHOOK:
            headers[SIGNATURE_HEADER] = sign(sink.secret, int(now.timestamp()), d.body)
        else:
            url = url.rstrip("/") + ALERTMANAGER_PATH
        try:
            status = self.transport.post(url, d.body, headers, limits.timeout_s)
            error = "" if 200 <= status < 300 else f"answered HTTP {status}"
        except OSError as exc:
            error = f"unreachable: {type(exc).__name__}: {exc}"
        if not error:
            self.store.delivered(d.id, self.clock.now())
            return True
        attempts = d.attempts + 1
        wait = min(limits.backoff_first_s * 2 ** (attempts - 1), limits.backoff_max_s)
        dead = attempts >= limits.attempts_max
        self.store.failed(d.id, attempts, now + timedelta(seconds=wait), error[:500], dead)
        log.warning("alert_delivery_failed", delivery=d.id, sink=d.sink, attempts=attempts)
        return False


def sinks_from_settings(raw: Sequence[Mapping[str, str]]) -> list[Sink]:
    """Sinks from configuration entries ``{"name", "kind", "url", "secret"?, "severity"?}``."""
    return [
        Sink(
            name=r["name"],
            kind=SinkKind(r["kind"]),
            url=r["url"],
            secret=r.get("secret", ""),
            min_severity=Severity(r.get("severity", "warning")),
        )
        for r in raw
    ]
