"""The alerts service: deduplication, the lifecycle with hysteresis, silences, inhibition,
rules refused when saved, deliveries in the outbox and the audit trail in the change's
own transaction."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tally.adapters.memory.backoffice import MemoryBackofficeStore
from tally.adapters.memory.risk import MemoryAlertStore
from tally.audit.chain import Sealer
from tally.audit.service import Auditing
from tally.kernel.alerts import AlertSignal, Severity
from tally.kernel.clock import FixedClock
from tally.risk.alerts import AlertRefused, AlertService
from tally.risk.alerts_model import AlertStatus, Matcher, RulesRefused, rules_from_document
from tally.risk.delivery import Sink, SinkKind, Sinks
from tally.risk.ports import AlertFilter

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SEALER = Sealer(b"k" * 32)


def sig(key: str = "acme/g1", at: datetime = T, **kw: Any) -> AlertSignal:
    base: dict[str, Any] = {
        "kind": "risk.rtp_drift", "key": key, "severity": Severity.CRITICAL,
        "cause": "RTP drift", "at": at, "provider": "acme", "region": "eu", "game": "g1",
        "money_at_risk": 10_000, "currency": "EUR",
    }  # fmt: skip
    base.update(kw)
    return AlertSignal(**base)


def make(
    rules: dict[str, Any] | None = None, sinks: list[Sink] | None = None
) -> tuple[AlertService, MemoryBackofficeStore, FixedClock]:
    trail = MemoryBackofficeStore(SEALER)
    clock = FixedClock(T)
    service = AlertService(MemoryAlertStore(), trail, clock, sinks=Sinks(sinks or []))
    if rules is not None:
        service.save_rules(rules, Auditing(trail, "user:admin"))
    return service, trail, clock


def actions(trail: MemoryBackofficeStore) -> list[str]:
    return [r.entry.action for r in trail.iter_audit()]


HYSTERESIS = {"hysteresis": {"hold_s": 300, "clean_evaluations": 2, "reopen_s": 600}}


def test_hysteresis_scenario_worked_by_hand() -> None:
    """hold 300 s and 2 clean evaluations; reopen window 600 s."""
    service, trail, _ = make(HYSTERESIS)
    s = service.store
    service.signal(sig(at=T))
    first = s.latest("risk.rtp_drift", "acme/g1")
    assert first is not None and first.status is AlertStatus.OPEN
    # t+0: the condition clears once: clearing, not resolved.
    service.clear("risk.rtp_drift", "acme/g1", T)
    a = s.alert(first.id)
    assert a is not None and a.status is AlertStatus.OPEN and a.clearing_since == T
    # t+400: two clean evaluations and 400 s >= 300 s: but the spell was broken at t+200.
    service.signal(sig(at=T + timedelta(seconds=200)))
    a = s.alert(first.id)
    assert a is not None and a.clearing_since is None and a.reopened == 1
    service.clear("risk.rtp_drift", "acme/g1", T + timedelta(seconds=300))
    service.clear("risk.rtp_drift", "acme/g1", T + timedelta(seconds=400))
    a = s.alert(first.id)
    assert a is not None and a.status is AlertStatus.OPEN  # held 100 s of 300
    service.clear("risk.rtp_drift", "acme/g1", T + timedelta(seconds=600))
    a = s.alert(first.id)
    assert a is not None and a.status is AlertStatus.RESOLVED
    assert a.resolved_at == T + timedelta(seconds=600)
    # Back within the reopen window (600 s): the same alert, reopened.
    service.signal(sig(at=T + timedelta(seconds=1000)))
    a = s.alert(first.id)
    assert a is not None and a.status is AlertStatus.OPEN and a.reopened == 2
    assert len(s.alerts(AlertFilter())) == 1
    # Resolved again, and back only after the window: a new alert.
    for n in (1100, 1500):
        service.clear("risk.rtp_drift", "acme/g1", T + timedelta(seconds=n))
    assert s.alert(first.id).status is AlertStatus.RESOLVED  # type: ignore[union-attr]
    service.signal(sig(at=T + timedelta(seconds=2101)))
    latest = s.latest("risk.rtp_drift", "acme/g1")
    assert latest is not None and latest.id != first.id
    assert actions(trail) == [
        "alert_rules.saved", "alert.opened", "alert.clearing", "alert.reopened",
        "alert.clearing", "alert.resolved", "alert.reopened", "alert.clearing",
        "alert.resolved", "alert.opened",
    ]  # fmt: skip


def test_a_condition_flapping_at_its_threshold_stays_one_open_alert() -> None:
    service, trail, _ = make(HYSTERESIS)
    for n in range(50):
        at = T + timedelta(seconds=30 * n)
        if n % 2:
            service.clear("risk.rtp_drift", "acme/g1", at)
        else:
            service.signal(sig(at=at))
    (only,) = service.store.alerts(AlertFilter())
    assert only.status is AlertStatus.OPEN and only.signals == 25
    assert actions(trail).count("alert.resolved") == 0


def test_the_sweep_resolves_once_the_hold_has_passed() -> None:
    service, _, clock = make({"hysteresis": {"hold_s": 300, "clean_evaluations": 1}})
    service.signal(sig())
    service.clear("risk.rtp_drift", "acme/g1", T)
    clock.set(T + timedelta(seconds=299))
    assert service.sweep() == 0
    clock.set(T + timedelta(seconds=300))
    assert service.sweep() == 1
    a = service.store.latest("risk.rtp_drift", "acme/g1")
    assert a is not None and a.status is AlertStatus.RESOLVED


def test_acknowledge_moves_an_open_alert_once_and_is_audited_with_its_actor() -> None:
    service, trail, _ = make()
    service.signal(sig())
    a = service.store.latest("risk.rtp_drift", "acme/g1")
    assert a is not None
    acked = service.acknowledge(a.id, Auditing(trail, "user:risk1", "10.0.0.1"))
    assert acked.status is AlertStatus.ACKNOWLEDGED and acked.acknowledged_by == "user:risk1"
    with pytest.raises(AlertRefused) as exc:
        service.acknowledge(a.id, Auditing(trail, "user:risk1"))
    assert exc.value.code == "not_open"
    with pytest.raises(AlertRefused):
        service.acknowledge(999, Auditing(trail, "user:risk1"))
    last = list(trail.iter_audit())[-1].entry
    assert (last.action, last.actor, last.target) == (
        "alert.acknowledged",
        "user:risk1",
        f"alert:{a.id}",
    )
    assert last.before is not None and last.before["status"] == "open"


def test_an_escalation_is_news_and_a_repeat_is_counted_not_audited() -> None:
    service, trail, _ = make()
    service.signal(sig(severity=Severity.WARNING))
    service.signal(sig(severity=Severity.WARNING))
    service.signal(sig(severity=Severity.CRITICAL))
    assert actions(trail) == ["alert.opened", "alert.escalated"]


def test_bad_rules_are_refused_when_saved_with_a_clear_reason() -> None:
    service, trail, _ = make()
    by = Auditing(trail, "user:admin")
    cases = {
        "unknown dimension 'country'": {
            "inhibitions": [
                {"source": {"kind": "x"}, "target": {"country": "mt"}, "equal": ["provider"]}
            ]
        },
        "would act on every alert": {
            "playbooks": [{"name": "p", "action": "suspend_provider", "match": {"kind": "*"}}]
        },
        "bind it to an exact alert kind": {
            "playbooks": [{"name": "p", "action": "suspend_game", "match": {"provider": "acme"}}]
        },
        "unknown or unusable dimension 'colour'": {
            "inhibitions": [{"source": {"kind": "a"}, "target": {"kind": "b"}, "equal": ["colour"]}]
        },
        "hold_s must be a whole number": {"hysteresis": {"hold_s": -1}},
        "unknown field(s) hysterisis": {"hysterisis": {}},
        "is not a valid Action": {
            "playbooks": [{"name": "p", "action": "delete_everything", "match": {"kind": "k"}}]
        },
    }
    for reason, doc in cases.items():
        with pytest.raises(RulesRefused, match=reason.replace("(", r"\(").replace(")", r"\)")):
            service.save_rules(doc, by)
    assert trail.audit_head() is None  # nothing refused was kept or audited
    assert service.store.rules_document() is None


def test_a_silence_matching_everything_or_nobody_is_refused() -> None:
    service, trail, _ = make()
    by = Auditing(trail, "user:risk1")
    end = T + timedelta(hours=1)
    for matchers, code in (
        ([], "every alert"),
        ([Matcher("provider", "*")], "every alert"),
    ):
        with pytest.raises(AlertRefused, match=code):
            service.silence(matchers, "maintenance", end, by)
    with pytest.raises(AlertRefused, match="reason"):
        service.silence([Matcher("provider", "acme")], " ", end, by)
    with pytest.raises(AlertRefused, match="at most 30 days"):
        service.silence([Matcher("provider", "acme")], "x", T + timedelta(days=31), by)
    with pytest.raises(RulesRefused, match="unknown dimension"):
        Matcher("colour", "red")


def test_silenced_and_inhibited_alerts_are_kept_but_not_delivered() -> None:
    hook = Sink("ops", SinkKind.WEBHOOK, "http://hooks.example/x", "s3cret")
    service, trail, _ = make(sinks=[hook])
    by = Auditing(trail, "user:risk1")
    service.silence([Matcher("game", "g9")], "game being recertified", T + timedelta(hours=1), by)
    service.signal(sig("acme/g9", game="g9"))
    # A provider outage in eu inhibits RTP alerts of the same provider and region only.
    service.signal(sig("acme/eu", kind="risk.provider_outage", game=""))
    service.signal(sig("acme/g1"))
    service.signal(sig("acme/g1-us", region="us"))
    kept = {a.key: a for a in service.store.alerts(AlertFilter())}
    assert set(kept) == {"acme/g9", "acme/eu", "acme/g1", "acme/g1-us"}
    assert service.muted(kept["acme/g9"], T).startswith("silence:")
    assert service.muted(kept["acme/g1"], T) == f"inhibited:{kept['acme/eu'].id}"
    assert service.muted(kept["acme/g1-us"], T) == ""
    delivered = {d.alert_id for d in service.store.deliveries()}
    assert delivered == {kept["acme/eu"].id, kept["acme/g1-us"].id}


def test_an_audit_failure_keeps_no_alert_on_sqlite(tmp_path: Path) -> None:
    from tally.adapters.sqlite.backoffice import SqliteBackofficeStore
    from tally.adapters.sqlite.risk import SqliteAlertStore

    path = tmp_path / "tally.sqlite"
    trail = SqliteBackofficeStore(path, SEALER)
    store = SqliteAlertStore(path)
    service = AlertService(store, trail, FixedClock(T))
    service.signal(sig())
    (record,) = list(trail.iter_audit())
    assert record.entry.action == "alert.opened"

    class Broken(SqliteBackofficeStore):
        def append_in(self, tx: Any, entry: Any) -> Any:
            raise RuntimeError("trail full")

    broken = AlertService(store, Broken(path, SEALER), FixedClock(T))
    with pytest.raises(RuntimeError):
        broken.signal(sig("acme/g2", game="g2"))
    assert store.latest("risk.rtp_drift", "acme/g2") is None
    assert len(list(trail.iter_audit())) == 1
    store.close()
    trail.close()


def test_many_signals_at_once_through_the_service_make_one_alert_and_one_record(
    tmp_path: Path,
) -> None:
    from tally.adapters.sqlite.backoffice import SqliteBackofficeStore
    from tally.adapters.sqlite.risk import SqliteAlertStore

    path = tmp_path / "tally.sqlite"
    trail = SqliteBackofficeStore(path, SEALER)
    service = AlertService(SqliteAlertStore(path), trail, FixedClock(T))
    start = threading.Barrier(12)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            start.wait()
            for i in range(10):
                service.signal(sig(at=T + timedelta(milliseconds=n * 100 + i)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    (only,) = service.store.alerts(AlertFilter())
    assert only.signals == 120
    assert [r.entry.action for r in trail.iter_audit()] == ["alert.opened"]


def test_saved_rules_are_versioned_and_the_latest_applies() -> None:
    service, trail, _ = make()
    by = Auditing(trail, "user:admin")
    v1 = service.save_rules({"hysteresis": {"hold_s": 0}}, by)
    v2 = service.save_rules({"hysteresis": {"hold_s": 900}}, by)
    assert (v1.version, v2.version) == (1, 2)
    assert service.rules().hysteresis.hold == timedelta(seconds=900)
    old = service.rules_version(1)
    assert old is not None and old.rules.hysteresis.hold == timedelta(0)
    assert rules_from_document({}, 3).inhibitions  # the outage inhibitions by default


def test_a_clear_needs_its_number_of_clean_evaluations_even_with_no_hold() -> None:
    service, _, _ = make({"hysteresis": {"hold_s": 0, "clean_evaluations": 3}})
    service.signal(sig())
    for n in range(2):
        service.clear("risk.rtp_drift", "acme/g1", T + timedelta(seconds=n))
        a = service.store.latest("risk.rtp_drift", "acme/g1")
        assert a is not None and a.status is AlertStatus.OPEN and a.clean == n + 1
    service.clear("risk.rtp_drift", "acme/g1", T + timedelta(seconds=2))
    a = service.store.latest("risk.rtp_drift", "acme/g1")
    assert a is not None and a.status is AlertStatus.RESOLVED


def test_coalesced_repeats_are_counted_in_memory_and_stored_on_flush_or_clear() -> None:
    trail = MemoryBackofficeStore(SEALER)
    service = AlertService(MemoryAlertStore(), trail, FixedClock(T), coalesce_s=60)
    writes: list[int] = []
    original = service.store.change

    def counting(*args: Any, **kw: Any) -> Any:
        writes.append(1)
        return original(*args, **kw)

    service.store.change = counting  # type: ignore[method-assign]
    for n in range(50):
        service.signal(sig(at=T + timedelta(seconds=n), money_at_risk=n + 1))
    assert len(writes) == 1  # the open; 49 repeats wait in memory
    a = service.store.latest("risk.rtp_drift", "acme/g1")
    assert a is not None and a.signals == 1
    assert service.flush() == 1
    a = service.store.latest("risk.rtp_drift", "acme/g1")
    assert a is not None and a.signals == 50 and a.money_at_risk == 50  # the latest figures
    # An escalation is never held back, nor a repeat after a clear.
    service.signal(sig(severity=Severity.WARNING))
    service.signal(sig())
    service.clear("risk.rtp_drift", "acme/g1", T + timedelta(seconds=100))
    service.signal(sig(at=T + timedelta(seconds=101)))
    a = service.store.latest("risk.rtp_drift", "acme/g1")
    assert a is not None and a.clearing_since is None and a.reopened == 1 and a.signals == 53
    assert service.flush() == 0


def test_a_repeat_pending_before_a_clear_is_counted_before_the_clear() -> None:
    service = AlertService(
        MemoryAlertStore(), MemoryBackofficeStore(SEALER), FixedClock(T), coalesce_s=60
    )
    service.signal(sig())
    service.signal(sig(at=T + timedelta(seconds=1)))
    service.clear("risk.rtp_drift", "acme/g1", T + timedelta(seconds=2))
    a = service.store.latest("risk.rtp_drift", "acme/g1")
    assert a is not None and a.signals == 2 and a.clearing_since == T + timedelta(seconds=2)


def test_rules_of_the_wrong_shape_are_refused_not_crashed_on() -> None:
    shapes: list[Any] = [
        {"playbooks": "abc"}, {"playbooks": ["x"]}, {"inhibitions": {}}, {"hysteresis": []},
        {"inhibitions": [{"source": {"kind": "a"}, "target": {"kind": "b"}, "equal": [1]}]},
        {"playbooks": [{"name": "p", "action": "hold_settlement", "match": "kind=k"}]},
        {"playbooks": [{"name": "p", "action": "hold_settlement", "match": {"kind": "k"},
                        "approval": "yes"}]},
        {"playbooks": [{"name": "p", "action": "hold_settlement", "match": {"kind": "k"},
                        "rate_max": True}]},
        ["not", "an", "object"],
    ]  # fmt: skip
    for doc in shapes:
        with pytest.raises(RulesRefused):
            rules_from_document(doc, 1)


def test_an_inhibition_on_other_dimensions_finds_its_source() -> None:
    """A rule comparing only the operator must see sources of any provider and region."""
    service, _, _ = make(
        {
            "inhibitions": [
                {"source": {"kind": "ops.operator_down"}, "target": {"kind": "risk.volume*"},
                 "equal": ["operator"]}
            ]
        }
    )  # fmt: skip
    service.signal(sig("op1", kind="ops.operator_down", provider="", region="", operator="op1"))
    service.signal(sig("acme/op1", kind="risk.volume_drop", operator="op1"))
    service.signal(sig("acme/op2", kind="risk.volume_drop", operator="op2"))
    kept = {a.key: a for a in service.store.alerts(AlertFilter())}
    muted = service.muted_many(list(kept.values()), T)
    assert dict(zip(kept, muted, strict=True)) == {
        "op1": "", "acme/op1": f"inhibited:{kept['op1'].id}", "acme/op2": ""
    }  # fmt: skip
