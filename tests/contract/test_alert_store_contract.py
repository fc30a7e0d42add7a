"""The alerts store contract, on every store (memory, SQLite, PostgreSQL): alerts kept by
(kind, key) with their change and its callback in one transaction, silences, versioned
rules, the outbox, playbook actions and the switches they set and undo exactly."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tally.kernel.alerts import AlertSignal, Severity
from tally.risk.alerts_model import (
    DEFAULT_RULES,
    AlertStatus,
    Change,
    Matcher,
    on_clear,
    on_signal,
)
from tally.risk.ports import (
    ActionStatus,
    AlertFilter,
    AlertStore,
    DeliveryStatus,
    PlaybookAction,
    SwitchKind,
)
from tests.conftest import PG_DSN

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AlertStore]:
    if request.param == "memory":
        from tally.adapters.memory.risk import MemoryAlertStore

        yield MemoryAlertStore()
        return
    if request.param == "sqlite":
        from tally.adapters.sqlite.risk import SqliteAlertStore

        s = SqliteAlertStore(tmp_path / "tally.sqlite")
        yield s
        s.close()
        return
    from tally.adapters.postgres.risk import PostgresAlertStore

    pg = PostgresAlertStore(PG_DSN, schema=request.getfixturevalue("pg_schema"))
    yield pg
    pg.close()


def sig(key: str = "acme/g1", at: datetime = T, **kw: Any) -> AlertSignal:
    base: dict[str, Any] = {
        "kind": "risk.rtp_drift", "key": key, "severity": Severity.CRITICAL,
        "cause": "RTP of g1 is 112% against 96% certified", "at": at, "provider": "acme",
        "region": "eu", "game": "g1", "money_at_risk": 125_000, "currency": "EUR",
        "confidence_permille": 900, "evidence": {"observed": "1.12"}, "refs": ("event:9",),
    }  # fmt: skip
    base.update(kw)
    return AlertSignal(**base)


def signal(store: AlertStore, s: AlertSignal, calls: list[Change] | None = None) -> Change:
    seen = calls if calls is not None else []
    return store.change(
        s.kind,
        s.key,
        lambda cur: on_signal(cur, s, DEFAULT_RULES, 0),
        lambda tx, c: seen.append(c),
    )


def test_a_signal_opens_an_alert_and_the_same_key_refreshes_it(store: AlertStore) -> None:
    calls: list[Change] = []
    first = signal(store, sig(), calls)
    assert first.action == "alert.opened" and first.after is not None and first.after.id > 0
    again = signal(store, sig(at=T + timedelta(seconds=5), money_at_risk=200_000), calls)
    assert again.after is not None and again.after.id == first.after.id
    kept = store.alert(first.after.id)
    assert kept is not None
    assert (kept.signals, kept.money_at_risk, kept.priority) == (2, 200_000, 180_000)
    assert kept.evidence == {"observed": "1.12"} and kept.refs == ("event:9",)
    assert kept.last_seen_at == T + timedelta(seconds=5)
    assert [c.action for c in calls] == ["alert.opened", ""]
    assert store.latest("risk.rtp_drift", "acme/g1") == kept


def test_a_failing_callback_keeps_nothing(store: AlertStore) -> None:
    if type(store).__name__.startswith("Memory"):
        pytest.skip("memory has no transactions: its callback runs after the change")

    def boom(tx: Any, c: Change) -> None:
        raise RuntimeError("audit trail unavailable")

    s = sig()
    with pytest.raises(RuntimeError):
        store.change(s.kind, s.key, lambda cur: on_signal(cur, s, DEFAULT_RULES, 0), boom)
    assert store.latest(s.kind, s.key) is None


def test_filters_select_by_status_and_dimension(store: AlertStore) -> None:
    a = signal(store, sig("acme/g1")).after
    b = signal(store, sig("acme/g2", game="g2", provider="beta")).after
    assert a is not None and b is not None
    store.change_alert(
        a.id, lambda cur: on_clear(cur, T, DEFAULT_RULES.__class__()), lambda tx, c: None
    )
    assert [x.id for x in store.alerts(AlertFilter(provider="beta"))] == [b.id]
    assert [x.id for x in store.alerts(AlertFilter(active=True))] == [a.id, b.id]
    assert [x.id for x in store.clearing()] == [a.id]
    assert store.alerts(AlertFilter(status=AlertStatus.RESOLVED)) == []
    assert [x.id for x in store.alerts(AlertFilter(), after=a.id)] == [b.id]


def test_many_signals_for_one_key_at_once_make_one_alert(store: AlertStore) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def worker(n: int) -> None:
        try:
            start.wait()
            for i in range(5):
                signal(store, sig(at=T + timedelta(milliseconds=n * 10 + i)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    found = store.alerts(AlertFilter())
    assert len(found) == 1 and found[0].signals == 80


def test_silences_are_kept_and_expired(store: AlertStore) -> None:
    seen: list[Any] = []
    m = (Matcher("provider", "acme"), Matcher("kind", "risk.rtp*"))
    s = store.add_silence(
        "user:u1", "maintenance", m, T, T + timedelta(hours=2), T, lambda tx, x: seen.append(x)
    )
    assert store.silences(active_at=T + timedelta(hours=1)) == [s]
    assert s.matchers == m and s.author == "user:u1"
    ended = store.expire_silence(s.id, T + timedelta(minutes=30), lambda tx, x: seen.append(x))
    assert ended is not None and ended.expired_at == T + timedelta(minutes=30)
    assert store.silences(active_at=T + timedelta(hours=1)) == []
    assert store.expire_silence(s.id, T + timedelta(hours=1), lambda tx, x: seen.append(x)) is None
    assert store.expire_silence(999, T, lambda tx, x: seen.append(x)) is None
    assert len(seen) == 2


def test_rules_are_versioned(store: AlertStore) -> None:
    assert store.rules_document() is None
    v1 = store.save_rules({"hysteresis": {"hold_s": 60}}, T, lambda tx, v: None)
    v2 = store.save_rules({"hysteresis": {"hold_s": 120}}, T, lambda tx, v: None)
    assert (v1, v2) == (1, 2)
    assert store.rules_document() == (2, {"hysteresis": {"hold_s": 120}})
    assert store.rules_document(1) == (1, {"hysteresis": {"hold_s": 60}})
    assert store.rules_document(7) is None


def test_the_outbox_hands_out_what_is_due_and_keeps_the_dead(store: AlertStore) -> None:
    a = signal(store, sig()).after
    assert a is not None
    store.enqueue("webhook:ops", a.id, b'{"x":1}', T)
    store.change(
        "k",
        "k1",
        lambda cur: Change(cur, cur, ""),
        lambda tx, c: store.enqueue_in(tx, "alertmanager:am", a.id, b"[]", T),
    )
    due = store.due(T)
    assert [(d.sink, d.body) for d in due] == [
        ("webhook:ops", b'{"x":1}'),
        ("alertmanager:am", b"[]"),
    ]
    store.delivered(due[0].id, T + timedelta(seconds=1))
    store.failed(due[1].id, 1, T + timedelta(seconds=5), "answered HTTP 503", False)
    assert store.due(T + timedelta(seconds=4)) == []
    (retry,) = store.due(T + timedelta(seconds=5))
    assert (retry.attempts, retry.last_error) == (1, "answered HTTP 503")
    store.failed(retry.id, 12, T + timedelta(hours=1), "gone", True)
    assert store.due(T + timedelta(days=1)) == []
    kept = {d.id: d for d in store.deliveries(alert_id=a.id)}
    assert kept[due[0].id].status is DeliveryStatus.DELIVERED
    assert kept[due[0].id].delivered_at == T + timedelta(seconds=1)
    assert kept[due[1].id].status is DeliveryStatus.DEAD


def action(status: ActionStatus = ActionStatus.DONE) -> PlaybookAction:
    return PlaybookAction(
        0, "suspend-drifting", "suspend_game", 1, SwitchKind.GAME_SUSPENDED, "acme/g1", status, T
    )


def test_an_action_sets_its_switch_and_undo_restores_the_exact_prior_state(
    store: AlertStore,
) -> None:
    before = store.switch(SwitchKind.GAME_SUSPENDED, "acme/g1")
    assert not before.on
    done = store.act(action(), True, lambda tx, a: None)
    assert done.id > 0 and done.prior == {"exists": False, "on": False, "by_action": 0, "at": None}
    assert store.switch(SwitchKind.GAME_SUSPENDED, "acme/g1").on
    assert [s.target for s in store.switches()] == ["acme/g1"]
    undone = store.settle_action(
        done.id, ActionStatus.DONE, ActionStatus.UNDONE, "user:u1", dict(done.prior),
        lambda tx, a: None,
    )  # fmt: skip
    assert undone is not None and undone.undone_by == "user:u1"
    assert store.switch(SwitchKind.GAME_SUSPENDED, "acme/g1") == before
    assert store.switches(on_only=False) == []
    # A second undo finds it no longer done.
    assert (
        store.settle_action(
            done.id, ActionStatus.DONE, ActionStatus.UNDONE, "u", {}, lambda tx, a: None
        )
        is None
    )


def test_undo_over_an_earlier_action_puts_that_one_back(store: AlertStore) -> None:
    first = store.act(action(), True, lambda tx, a: None)
    earlier = store.switch(SwitchKind.GAME_SUSPENDED, "acme/g1")
    second = store.act(action(), True, lambda tx, a: None)
    assert second.prior["by_action"] == first.id and second.prior["on"] is True
    store.settle_action(
        second.id, ActionStatus.DONE, ActionStatus.UNDONE, "u", dict(second.prior),
        lambda tx, a: None,
    )  # fmt: skip
    assert store.switch(SwitchKind.GAME_SUSPENDED, "acme/g1") == earlier


def test_dry_runs_and_approvals_leave_the_switch_until_approved(store: AlertStore) -> None:
    dry = store.act(action(ActionStatus.DRY_RUN), None, lambda tx, a: None)
    waiting = store.act(action(ActionStatus.AWAITING_APPROVAL), None, lambda tx, a: None)
    assert not store.switch(SwitchKind.GAME_SUSPENDED, "acme/g1").on
    approved = store.settle_action(
        waiting.id, ActionStatus.AWAITING_APPROVAL, ActionStatus.DONE, "user:u2", True,
        lambda tx, a: None,
    )  # fmt: skip
    assert approved is not None and approved.approved_by == "user:u2"
    assert store.switch(SwitchKind.GAME_SUSPENDED, "acme/g1").on
    assert [a.id for a in store.actions(playbook="suspend-drifting")] == [dry.id, waiting.id]
    assert store.actions(since=T + timedelta(seconds=1)) == []
    got = store.action(waiting.id)
    assert got is not None and got.status is ActionStatus.DONE


@pytest.fixture(params=["sqlite", "postgres"])
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[AlertStore]]:
    """Two stores on one database, as two processes would hold them."""
    stores: list[Any]
    if request.param == "sqlite":
        from tally.adapters.sqlite.risk import SqliteAlertStore

        stores = [SqliteAlertStore(tmp_path / "tally.sqlite") for _ in range(2)]
    else:
        from tally.adapters.postgres.risk import PostgresAlertStore

        schema = request.getfixturevalue("pg_schema")
        stores = [PostgresAlertStore(PG_DSN, schema=schema) for _ in range(2)]
    yield stores
    for s in stores:
        s.close()


def test_two_stores_on_one_database_signalling_one_key_make_one_alert(
    two_stores: list[AlertStore],
) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        try:
            start.wait()
            for i in range(10):
                signal(two_stores[n % 2], sig(at=T + timedelta(milliseconds=n * 10 + i)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    found = two_stores[0].alerts(AlertFilter())
    assert len(found) == 1 and found[0].signals == 80


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The alerts service on each store, its audit trail in the same database."""
    from tally.audit.chain import Sealer
    from tally.kernel.clock import FixedClock
    from tally.risk.alerts import AlertService
    from tally.risk.delivery import Sink, SinkKind, Sinks

    sealer = Sealer(b"k" * 32)
    closers: list[Any] = []
    if request.param == "memory":
        from tally.adapters.memory.backoffice import MemoryBackofficeStore
        from tally.adapters.memory.risk import MemoryAlertStore

        alerts: Any = MemoryAlertStore()
        trail: Any = MemoryBackofficeStore(sealer)
    elif request.param == "sqlite":
        from tally.adapters.sqlite.backoffice import SqliteBackofficeStore
        from tally.adapters.sqlite.risk import SqliteAlertStore

        alerts = SqliteAlertStore(tmp_path / "t.sqlite")
        trail = SqliteBackofficeStore(tmp_path / "t.sqlite", sealer)
        closers = [alerts, trail]
    else:
        from tally.adapters.postgres.backoffice import PostgresBackofficeStore
        from tally.adapters.postgres.risk import PostgresAlertStore

        schema = request.getfixturevalue("pg_schema")
        alerts = PostgresAlertStore(PG_DSN, schema=schema)
        trail = PostgresBackofficeStore(PG_DSN, sealer, schema=schema)
        closers = [alerts, trail]
    hook = Sinks([Sink("ops", SinkKind.WEBHOOK, "http://h.example/", "s")])
    yield AlertService(alerts, trail, FixedClock(T), sinks=hook)
    for c in closers:
        c.close()


def test_the_service_keeps_alert_audit_and_outbox_together_on_every_store(service: Any) -> None:
    from tally.audit.service import Auditing

    by = Auditing(service.trail, "user:u1")
    service.silence([Matcher("game", "g2")], "recertification", T + timedelta(hours=1), by)
    service.signal(sig())
    service.signal(sig("acme/g2", game="g2"))
    service.signal(sig("acme/eu", kind="risk.provider_outage", game=""))
    service.signal(sig("acme/g3", game="g3"))  # inhibited by the outage
    service.signal(sig())
    service.clear("risk.rtp_drift", "acme/g1", T)
    kept = {a.key: a for a in service.store.alerts(AlertFilter())}
    assert set(kept) == {"acme/g1", "acme/g2", "acme/eu", "acme/g3"}
    assert kept["acme/g1"].signals == 2 and kept["acme/g1"].clearing_since == T
    delivered = {d.alert_id for d in service.store.deliveries()}
    assert delivered == {kept["acme/g1"].id, kept["acme/eu"].id}
    actions = [r.entry.action for r in service.trail.iter_audit()]
    assert actions == ["silence.created"] + ["alert.opened"] * 4 + ["alert.clearing"]
    acked = service.acknowledge(kept["acme/g2"].id, by)
    assert acked.acknowledged_by == "user:u1"
