"""Deliveries: the Alertmanager v2 body against its OpenAPI shape, signed webhooks, and
the outbox's retries with backoff, its dead letters, and no delivery lost or doubled
across a crash."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema_rs
import pytest

from tally.adapters.memory.backoffice import MemoryBackofficeStore
from tally.adapters.memory.risk import MemoryAlertStore
from tally.audit.chain import Sealer
from tally.kernel.alerts import AlertSignal, Severity
from tally.kernel.clock import FixedClock
from tally.risk.alerts import AlertService
from tally.risk.delivery import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    Deliverer,
    DeliveryLimits,
    Sink,
    SinkKind,
    Sinks,
    sign,
    verify,
)
from tally.risk.ports import AlertStore, DeliveryStatus

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

# Alertmanager's api/v2/openapi.yaml, definitions postableAlerts, postableAlert, alert and
# labelSet, as JSON Schema (the OpenAPI 2.0 schema objects are JSON Schema draft 4).
ALERTMANAGER = {
    "definitions": {
        "labelSet": {"type": "object", "additionalProperties": {"type": "string"}},
        "alert": {
            "type": "object",
            "properties": {
                "labels": {"$ref": "#/definitions/labelSet"},
                "generatorURL": {"type": "string", "format": "uri"},
            },
            "required": ["labels"],
        },
        "postableAlert": {
            "type": "object",
            "allOf": [
                {
                    "type": "object",
                    "properties": {
                        "startsAt": {"type": "string", "format": "date-time"},
                        "endsAt": {"type": "string", "format": "date-time"},
                        "annotations": {"$ref": "#/definitions/labelSet"},
                    },
                },
                {"$ref": "#/definitions/alert"},
            ],
        },
    },
    "type": "array",
    "items": {"$ref": "#/definitions/postableAlert"},
}
# What Alertmanager's model.Alert.Validate adds: label names of Prometheus' alphabet,
# values not empty, at least one label, and the start before the end.
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class Recorder:
    """A transport that answers from a script and keeps what it was sent."""

    def __init__(self, answers: list[int | Exception]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
        self.sent.append((url, body, dict(headers)))
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self) -> None:
        pass


HOOK = Sink("ops", SinkKind.WEBHOOK, "https://hooks.example/tally", "hook-secret")
AM = Sink("am", SinkKind.ALERTMANAGER, "http://alertmanager:9093", min_severity=Severity.INFO)


def world(
    answers: list[int | Exception], store: AlertStore | None = None
) -> tuple[AlertService, Deliverer, Recorder, FixedClock]:
    clock = FixedClock(T)
    store = store or MemoryAlertStore()
    sinks = Sinks([HOOK, AM], generator_url="https://tally.example", limits=DeliveryLimits(
        attempts_max=4, backoff_first_s=5.0, backoff_max_s=60.0, refresh_s=60.0
    ))  # fmt: skip
    trail = MemoryBackofficeStore(Sealer(b"k" * 32))
    service = AlertService(store, trail, clock, sinks=sinks)
    transport = Recorder(answers)
    return service, Deliverer(store, sinks, transport, clock), transport, clock


def drift(service: AlertService, at: datetime = T, **kw: object) -> None:
    service.signal(
        AlertSignal(
            "risk.rtp_drift", "acme/g1", kw.pop("severity", Severity.CRITICAL),  # type: ignore[arg-type]
            "RTP of g1 at 112%", at, region="eu", provider="acme", game="g1",
            money_at_risk=125_000, currency="EUR", confidence_permille=900,
            evidence={"observed": "1.12", "band": "0.93-0.99"}, refs=("event:1", "event:2"),
        )
    )  # fmt: skip


def test_the_alertmanager_body_has_the_v2_postable_alerts_shape() -> None:
    service, deliverer, transport, clock = world([])
    drift(service)
    deliverer.run_once()
    (am,) = [s for s in transport.sent if s[0].endswith("/api/v2/alerts")]
    assert am[0] == "http://alertmanager:9093/api/v2/alerts"
    body = json.loads(am[1])
    jsonschema_rs.Draft4Validator(ALERTMANAGER, validate_formats=True).validate(body)
    (alert,) = body
    assert alert["labels"] == {
        "alertname": "risk.rtp_drift", "severity": "critical", "tally_key": "acme/g1",
        "region": "eu", "provider": "acme", "game": "g1",
    }  # fmt: skip
    assert all(LABEL_NAME.match(k) and v for k, v in alert["labels"].items())
    assert alert["annotations"]["summary"] == "RTP of g1 at 112%"
    assert alert["annotations"]["priority"] == "112500"
    assert json.loads(alert["annotations"]["evidence"]) == {"observed": "1.12", "band": "0.93-0.99"}
    assert alert["startsAt"] == "2026-03-02T12:00:00Z"
    assert alert["endsAt"] == "2026-03-02T12:03:00Z"  # three refresh periods ahead
    assert alert["generatorURL"] == "https://tally.example/v1/alerts/1"
    # Resolved: endsAt is the resolution, so Alertmanager resolves it at once.
    # (After the default hysteresis: clear at 12:10, held 5 minutes, swept at 12:15.)
    service.clear("risk.rtp_drift", "acme/g1", T + timedelta(minutes=10))
    clock.set(T + timedelta(minutes=15))
    assert service.sweep() == 1
    deliverer.run_once()
    resolved = json.loads([s for s in transport.sent if "/api/v2/" in s[0]][-1][1])
    jsonschema_rs.Draft4Validator(ALERTMANAGER, validate_formats=True).validate(resolved)
    assert resolved[0]["endsAt"] == "2026-03-02T12:15:00Z"


def test_repush_refreshes_active_unmuted_alerts_for_alertmanager_only() -> None:
    service, deliverer, transport, clock = world([])
    drift(service)
    deliverer.run_once()
    clock.advance(timedelta(minutes=1))
    assert service.repush() == 1
    deliverer.run_once()
    last = transport.sent[-1]
    assert last[0].endswith("/api/v2/alerts")
    assert json.loads(last[1])[0]["endsAt"] == "2026-03-02T12:04:00Z"


def test_a_webhook_is_signed_over_its_timestamp_and_body() -> None:
    service, deliverer, transport, _ = world([])
    drift(service)
    assert deliverer.run_once() == (2, 0)
    _, body, headers = next(s for s in transport.sent if s[0] == HOOK.url)
    assert verify("hook-secret", headers[SIGNATURE_HEADER], body)
    assert not verify("another-secret", headers[SIGNATURE_HEADER], body)
    assert not verify("hook-secret", headers[SIGNATURE_HEADER], body + b" ")
    t = int(T.timestamp())
    assert headers[SIGNATURE_HEADER] == sign("hook-secret", t, body)
    assert (
        sign("k", 1, b"x") == "t=1,v1=" + __import__("hmac").new(b"k", b"1.x", "sha256").hexdigest()
    )
    payload = json.loads(body)
    assert payload["event"] == "alert.opened" and payload["alert"]["refs"] == ["event:1", "event:2"]
    assert headers[DELIVERY_HEADER].isdigit()


def test_failures_back_off_exponentially_and_end_as_kept_dead_letters() -> None:
    errors: list[int | Exception] = [503, ConnectionRefusedError("down"), 500, 502]
    service, deliverer, transport, clock = world(errors)
    drift(service, severity=Severity.INFO)  # below the webhook's threshold: Alertmanager only
    waits = []
    for _ in range(4):
        (due,) = service.store.due(clock.now() + timedelta(days=1))
        clock.set(due.next_at)
        assert deliverer.run_once() == (0, 1)
        (kept,) = service.store.deliveries()
        waits.append((kept.next_at - clock.now()).total_seconds())
    assert waits[:3] == [5.0, 10.0, 20.0]
    (dead,) = service.store.deliveries()
    assert dead.status is DeliveryStatus.DEAD and dead.attempts == 4
    assert dead.last_error == "answered HTTP 502"
    assert service.store.due(clock.now() + timedelta(days=30)) == []
    assert len(transport.sent) == 4


def test_a_crash_after_the_change_loses_no_delivery_and_a_redelivery_is_named(
    tmp_path: Path,
) -> None:
    from tally.adapters.sqlite.risk import SqliteAlertStore

    path = tmp_path / "t.sqlite"
    service, _, _, _ = world([], SqliteAlertStore(path))
    drift(service)  # committed with its outbox rows; the process dies before delivering
    service.store.close()
    reopened = SqliteAlertStore(path)
    _, deliverer, transport, _ = world([], reopened)
    assert deliverer.run_once() == (2, 0)
    assert deliverer.run_once() == (0, 0)  # delivered once, not again
    ids = {h[DELIVERY_HEADER] for _, _, h in transport.sent}
    assert len(ids) == 2  # each delivery names itself, so a receiver drops a repeat
    reopened.close()


@pytest.mark.parametrize("severity", [Severity.WARNING, Severity.CRITICAL])
def test_a_muted_alert_is_not_delivered(severity: Severity) -> None:
    from tally.audit.service import Auditing
    from tally.risk.alerts_model import Matcher

    service, deliverer, transport, _ = world([])
    service.silence(
        [Matcher("provider", "acme")], "maintenance window", T + timedelta(hours=1),
        Auditing(MemoryBackofficeStore(Sealer(b"k" * 32)), "user:u"),
    )  # fmt: skip
    drift(service, severity=severity)
    assert deliverer.run_once() == (0, 0)
    assert transport.sent == []
