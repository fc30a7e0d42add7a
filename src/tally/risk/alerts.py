"""The alerts service: the real :class:`AlertSink`, and what people do with alerts.

Every context signals through :meth:`AlertService.signal` and :meth:`AlertService.clear`;
the pure rules in ``alerts_model`` decide what becomes of the alert, and the store keeps
the change, its audit record and its outbox rows (webhooks, Alertmanager) in one
transaction, under the (kind, key)'s lock, so many signals for one key at once make one
alert and a crash loses or doubles no delivery. A muted alert (silenced or inhibited) is
kept and audited but not delivered, and no playbook acts on it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from tally.audit.ports import AuditStore, Transaction
from tally.audit.service import Auditing
from tally.kernel.alerts import AlertSignal
from tally.kernel.clock import Clock
from tally.risk.alerts_model import (
    DEFAULT_RULES,
    Alert,
    AlertRules,
    Change,
    Matcher,
    RulesRefused,
    Silence,
    alert_to_dict,
    check_silence,
    muted_by,
    on_acknowledge,
    on_clear,
    on_signal,
    on_sweep,
    rules_from_document,
)
from tally.risk.delivery import Sinks
from tally.risk.ports import AlertFilter, AlertStore

log = structlog.get_logger("tally.risk.alerts")

SYSTEM_ACTOR = "system:alerts"
# Changes that are news to a receiver: delivered (unless muted) and shown to playbooks.
_DELIVERED = frozenset({"alert.opened", "alert.reopened", "alert.escalated", "alert.resolved"})
_ACTIONABLE = frozenset({"alert.opened", "alert.reopened", "alert.escalated"})


class AlertRefused(Exception):
    """A person's request the alerts service will not do (unknown alert, bad silence)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Hot:
    """An alert this process wrote lately: repeats of it wait here (see ``coalesce_s``)."""

    alert_id: int
    severity: str
    written: float  # time.monotonic() of the last write
    pending: int = 0  # signals taken since, not yet counted in the store
    latest: AlertSignal | None = None


@dataclass(frozen=True, slots=True)
class RulesVersion:
    version: int
    document: dict[str, Any]
    rules: AlertRules


class AlertService:
    def __init__(
        self,
        store: AlertStore,
        trail: AuditStore,
        clock: Clock,
        *,
        sinks: Sinks | None = None,
        on_actionable: Callable[[Alert, AlertRules], object] | None = None,
        coalesce_s: float = 0,
    ) -> None:
        """``on_actionable(alert, rules)`` is told of each alert that opened, reopened or
        escalated and is not muted (the playbooks listen here).

        ``coalesce_s``: a repeat of an open alert this process wrote less than this long
        ago, at the same severity, is counted in memory instead of written (a detector
        signals every evaluation; each write is a committed transaction). The next write,
        a clear of the key, or :meth:`flush` stores the count and the latest figures. The
        cost: the stored figures may lag by up to ``coalesce_s``, and a clear made by
        another process is seen by this one's repeats within ``coalesce_s``."""
        self.store = store
        self.trail = trail
        self.clock = clock
        self.sinks = sinks or Sinks(())
        self.on_actionable = on_actionable
        self._rules: tuple[int, AlertRules] | None = None
        self._rules_lock = threading.Lock()
        self.coalesce_s = coalesce_s
        self._hot: dict[tuple[str, str], _Hot] = {}
        self._hot_lock = threading.Lock()

    # -- rules -----------------------------------------------------------------------

    def rules(self) -> AlertRules:
        with self._rules_lock:
            if self._rules is None:
                found = self.store.rules_document()
                rules = DEFAULT_RULES if found is None else rules_from_document(found[1], found[0])
                self._rules = (rules.version, rules)
            return self._rules[1]

    def save_rules(self, document: Mapping[str, Any], auditing: Auditing) -> RulesVersion:
        """Validate and keep a new version (RulesRefused names what is wrong)."""
        rules_from_document(document, 1)  # refuse before anything is written
        at = self.clock.now()

        def within(tx: Transaction, version: int) -> None:
            auditing.record_in(
                tx, "alert_rules.saved", f"alert_rules:{version}", at, after=dict(document)
            )

        version = self.store.save_rules(document, at, within)
        rules = rules_from_document(document, version)
        with self._rules_lock:
            self._rules = (version, rules)
        return RulesVersion(version, dict(document), rules)

    def rules_version(self, version: int | None = None) -> RulesVersion | None:
        found = self.store.rules_document(version)
        if found is None:
            return None
        return RulesVersion(found[0], found[1], rules_from_document(found[1], found[0]))

    # -- the sink --------------------------------------------------------------------

    def signal(self, alert: AlertSignal) -> None:
        if self._coalesced(alert):
            return
        self._write(alert, 0)

    def _coalesced(self, alert: AlertSignal) -> bool:
        if self.coalesce_s <= 0:
            return False
        with self._hot_lock:
            hot = self._hot.get((alert.kind, alert.key))
            if hot is None or hot.severity != alert.severity.value:
                return False
            if time.monotonic() - hot.written >= self.coalesce_s:
                return False
            hot.pending += 1
            hot.latest = alert
            return True

    def _write(self, alert: AlertSignal, pending: int) -> None:
        rules = self.rules()
        with self._hot_lock:
            hot = self._hot.pop((alert.kind, alert.key), None)
        extra = pending + (hot.pending if hot else 0)

        def decide(current: Alert | None) -> Change:
            change = on_signal(current, alert, rules, 0)
            if extra and change.after is not None and change.before is not None:
                after = replace(change.after, signals=change.after.signals + extra)
                return replace(change, after=after)
            return change

        change = self.store.change(
            alert.kind,
            alert.key,
            decide,
            self._recorder(Auditing(self.trail, SYSTEM_ACTOR, "sink"), alert.at, rules),
        )
        after = change.after
        live = after is not None and after.status.active and after.clearing_since is None
        if self.coalesce_s > 0 and live:
            assert after is not None
            with self._hot_lock:
                self._hot[(alert.kind, alert.key)] = _Hot(
                    after.id, after.severity.value, time.monotonic()
                )
        self._after(change, rules)

    def flush(self) -> int:
        """Store the repeats counted in memory (the worker does, each round); how many
        alerts were written."""
        with self._hot_lock:
            waiting = [(k, h) for k, h in self._hot.items() if h.pending and h.latest]
            for k, _ in waiting:
                del self._hot[k]
        for _, h in waiting:
            assert h.latest is not None
            self._write(h.latest, h.pending - 1)
        return len(waiting)

    def clear(self, kind: str, key: str, at: datetime) -> None:
        with self._hot_lock:
            hot = self._hot.pop((kind, key), None)
        if hot is not None and hot.pending and hot.latest is not None:
            self._write(hot.latest, hot.pending - 1)  # the repeats happened before the clear
            with self._hot_lock:
                self._hot.pop((kind, key), None)
        rules = self.rules()
        change = self.store.change(
            kind,
            key,
            lambda current: on_clear(current, at, rules),
            self._recorder(Auditing(self.trail, SYSTEM_ACTOR, "sink"), at, rules),
        )
        self._after(change, rules)

    def sweep(self) -> int:
        """Resolve the alerts whose clearing spell has held long enough; how many."""
        rules, at, resolved = self.rules(), self.clock.now(), 0
        for a in self.store.clearing():
            change = self.store.change_alert(
                a.id,
                lambda current: on_sweep(current, at, rules),
                self._recorder(Auditing(self.trail, SYSTEM_ACTOR, "sweep"), at, rules),
            )
            resolved += bool(change and change.action == "alert.resolved")
        return resolved

    def repush(self) -> int:
        """Deliver every active, unmuted alert again to the sinks that want a refresh
        (Alertmanager resolves an alert it has not heard of within its resolve timeout)."""
        at, rules, pushed = self.clock.now(), self.rules(), 0
        active = self.store.alerts(AlertFilter(active=True), limit=10_000)
        silences = self.store.silences(active_at=at)
        for a in active:
            if muted_by(a, active, silences, rules, at):
                continue
            for sink, body in self.sinks.refresh_bodies(a, at):
                self.store.enqueue(sink, a.id, body, at)
                pushed += 1
        return pushed

    def _recorder(
        self, auditing: Auditing, at: datetime, rules: AlertRules
    ) -> Callable[[Transaction, Change], None]:
        def within(tx: Transaction, change: Change) -> None:
            if not change.changed or change.after is None:
                return
            after = change.after
            before = alert_to_dict(change.before) if change.before else None
            auditing.record_in(
                tx, change.action, f"alert:{after.id}", at, before=before,
                after=alert_to_dict(after),
            )  # fmt: skip
            if change.action in _DELIVERED and not self.muted(after, at, rules):
                for sink, body in self.sinks.bodies(after, change.action, at):
                    self.store.enqueue_in(tx, sink, after.id, body, at)

        return within

    def _after(self, change: Change, rules: AlertRules) -> None:
        after = change.after
        if after is None or change.action not in _ACTIONABLE:
            return
        log.info("alert_changed", alert=after.id, kind=after.kind, action=change.action)
        if self.on_actionable is not None and not self.muted(after, self.clock.now(), rules):
            self.on_actionable(after, rules)

    # -- reading ---------------------------------------------------------------------

    def muted(self, alert: Alert, at: datetime, rules: AlertRules | None = None) -> str:
        """Why ``alert`` is muted now ("silence:3", "inhibited:17"), or ""."""
        return self.muted_many([alert], at, rules)[0]

    def muted_many(
        self, alerts: Sequence[Alert], at: datetime, rules: AlertRules | None = None
    ) -> list[str]:
        """``muted`` for each of ``alerts``, reading silences and inhibitors once."""
        rules = rules or self.rules()
        silences = self.store.silences(active_at=at)
        sources: dict[tuple[str, ...], list[Alert]] = {}
        shared = _shared_dimensions(rules)
        out = []
        for a in alerts:
            if not rules.inhibitions:
                out.append(muted_by(a, [], silences, rules, at))
                continue
            # Only alerts that agree on every dimension all inhibitions compare can mute.
            scope = tuple(a.label(d) for d in shared)
            if scope not in sources:
                labels = dict(zip(shared, scope, strict=True))
                where = AlertFilter(
                    active=True,
                    region=labels.get("region", ""),
                    provider=labels.get("provider", ""),
                    operator=labels.get("operator", ""),
                    game=labels.get("game", ""),
                )
                sources[scope] = self.store.alerts(where, limit=INHIBITORS_MAX)
            out.append(muted_by(a, sources[scope], silences, rules, at))
        return out

    def get(self, alert_id: int) -> Alert | None:
        return self.store.alert(alert_id)

    def list(self, where: AlertFilter, *, after: int = 0, limit: int = 100) -> list[Alert]:
        return self.store.alerts(where, after=after, limit=limit)

    # -- what people do --------------------------------------------------------------

    def acknowledge(self, alert_id: int, auditing: Auditing) -> Alert:
        at = self.clock.now()
        change = self.store.change_alert(
            alert_id,
            lambda current: on_acknowledge(current, auditing.actor, at),
            self._recorder(auditing, at, self.rules()),
        )
        if change is None or change.after is None:
            raise AlertRefused("not_found", f"no alert {alert_id}")
        if not change.changed:
            raise AlertRefused(
                "not_open", f"alert {alert_id} is {change.after.status.value}, not open"
            )
        return change.after

    def silence(
        self,
        matchers: Sequence[Matcher],
        reason: str,
        ends_at: datetime,
        auditing: Auditing,
        *,
        starts_at: datetime | None = None,
    ) -> Silence:
        at = self.clock.now()
        starts = starts_at or at
        try:
            check_silence(auditing.actor, reason, matchers, starts, ends_at)
        except RulesRefused as exc:
            raise AlertRefused("invalid_silence", str(exc)) from None

        def within(tx: Transaction, s: Silence) -> None:
            auditing.record_in(tx, "silence.created", f"silence:{s.id}", at, after=_silence(s))

        return self.store.add_silence(auditing.actor, reason, matchers, starts, ends_at, at, within)

    def expire_silence(self, silence_id: int, auditing: Auditing) -> Silence:
        at = self.clock.now()

        def within(tx: Transaction, s: Silence) -> None:
            auditing.record_in(tx, "silence.expired", f"silence:{s.id}", at, after=_silence(s))

        ended = self.store.expire_silence(silence_id, at, within)
        if ended is None:
            raise AlertRefused("not_found", f"no silence {silence_id} in force")
        return ended


INHIBITORS_MAX = 10_000  # active alerts read to judge inhibition of one scope


def _shared_dimensions(rules: AlertRules) -> tuple[str, ...]:
    """The dimensions every inhibition compares (the store can filter by them)."""
    filterable = ("region", "provider", "operator", "game", "severity")
    common = set(filterable)
    for rule in rules.inhibitions:
        common &= set(rule.equal)
    return tuple(d for d in filterable if d in common and d != "severity")


def _silence(s: Silence) -> dict[str, Any]:
    return {
        "id": s.id,
        "author": s.author,
        "reason": s.reason,
        "matchers": [str(m) for m in s.matchers],
        "starts_at": s.starts_at.isoformat(),
        "ends_at": s.ends_at.isoformat(),
        "expired_at": s.expired_at.isoformat() if s.expired_at else None,
    }


def silence_to_dict(s: Silence) -> dict[str, Any]:
    return _silence(s)


def rules_json(rules: RulesVersion) -> str:
    return json.dumps({"version": rules.version, "document": rules.document}, sort_keys=True)


SWEEP_EVERY = timedelta(seconds=30)  # how often the worker sweeps clearing alerts
