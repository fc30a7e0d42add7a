"""The alerts store in memory (tests, the demo). One lock makes every change atomic."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from tally.audit.ports import Transaction
from tally.risk.alerts_model import Alert, Change, Matcher, Silence
from tally.risk.ports import (
    ActionStatus,
    AlertFilter,
    Delivery,
    DeliveryStatus,
    PlaybookAction,
    Switch,
    SwitchKind,
    Within,
    switch_state,
)


def selected(a: Alert, w: AlertFilter) -> bool:
    if w.active and not a.status.active:
        return False
    if not w.active and w.status is not None and a.status is not w.status:
        return False
    pairs = (
        (w.kind, a.kind), (w.severity, a.severity.value), (w.region, a.region),
        (w.provider, a.provider), (w.operator, a.operator), (w.game, a.game),
    )  # fmt: skip
    return all(not want or want == got for want, got in pairs)


class MemoryAlertStore:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._alerts: dict[int, Alert] = {}
        self._latest: dict[tuple[str, str], int] = {}
        self._silences: dict[int, Silence] = {}
        self._rules: list[str] = []
        self._outbox: dict[int, Delivery] = {}
        self._actions: dict[int, PlaybookAction] = {}
        self._switches: dict[tuple[SwitchKind, str], Switch] = {}

    def close(self) -> None:
        """Nothing to release: the store is memory."""

    def _keep(self, change: Change) -> Change:
        after = change.after
        if after is None or after == change.before:
            return change
        if after.id == 0:
            after = replace(after, id=max(self._alerts, default=0) + 1)
            change = replace(change, after=after)
        self._alerts[after.id] = after
        self._latest[(after.kind, after.key)] = after.id
        return change

    def change(
        self, kind: str, key: str, decide: Callable[[Alert | None], Change], within: Within
    ) -> Change:
        with self._lock:
            found = self._latest.get((kind, key))
            change = self._keep(decide(self._alerts[found] if found else None))
            within(None, change)
            return change

    def change_alert(
        self, alert_id: int, decide: Callable[[Alert], Change], within: Within
    ) -> Change | None:
        with self._lock:
            current = self._alerts.get(alert_id)
            if current is None:
                return None
            change = self._keep(decide(current))
            within(None, change)
            return change

    def alert(self, alert_id: int) -> Alert | None:
        with self._lock:
            return self._alerts.get(alert_id)

    def latest(self, kind: str, key: str) -> Alert | None:
        with self._lock:
            found = self._latest.get((kind, key))
            return self._alerts[found] if found else None

    def alerts(self, where: AlertFilter, *, after: int = 0, limit: int = 100) -> list[Alert]:
        with self._lock:
            ids = sorted(i for i in self._alerts if i > after)
            return [self._alerts[i] for i in ids if selected(self._alerts[i], where)][:limit]

    def clearing(self, limit: int = 1000) -> list[Alert]:
        with self._lock:
            found = [a for a in self._alerts.values() if a.status.active and a.clearing_since]
            return sorted(found, key=lambda a: a.id)[:limit]

    def add_silence(
        self,
        author: str,
        reason: str,
        matchers: Sequence[Matcher],
        starts_at: datetime,
        ends_at: datetime,
        at: datetime,
        within: Callable[[Transaction, Silence], object],
    ) -> Silence:
        with self._lock:
            silence_id = max(self._silences, default=0) + 1
            s = Silence(silence_id, author, reason, tuple(matchers), starts_at, ends_at, at)
            self._silences[silence_id] = s
            within(None, s)
            return s

    def expire_silence(
        self, silence_id: int, at: datetime, within: Callable[[Transaction, Silence], object]
    ) -> Silence | None:
        with self._lock:
            s = self._silences.get(silence_id)
            if s is None or (not s.active(at) and s.starts_at <= at):
                return None
            ended = replace(s, expired_at=at)
            self._silences[silence_id] = ended
            within(None, ended)
            return ended

    def silences(self, *, active_at: datetime | None = None) -> list[Silence]:
        with self._lock:
            found = sorted(self._silences.values(), key=lambda s: s.id)
        return [s for s in found if active_at is None or s.active(active_at)]

    def save_rules(
        self,
        document: Mapping[str, Any],
        at: datetime,
        within: Callable[[Transaction, int], object],
    ) -> int:
        with self._lock:
            self._rules.append(json.dumps(document, sort_keys=True))
            version = len(self._rules)
            within(None, version)
            return version

    def rules_document(self, version: int | None = None) -> tuple[int, dict[str, Any]] | None:
        with self._lock:
            if not self._rules:
                return None
            v = version or len(self._rules)
            if not 1 <= v <= len(self._rules):
                return None
            loaded: dict[str, Any] = json.loads(self._rules[v - 1])
            return v, loaded

    def enqueue_in(
        self, tx: Transaction, sink: str, alert_id: int, body: bytes, at: datetime
    ) -> None:
        with self._lock:
            delivery_id = max(self._outbox, default=0) + 1
            self._outbox[delivery_id] = Delivery(delivery_id, sink, alert_id, body, at, at)

    def enqueue(self, sink: str, alert_id: int, body: bytes, at: datetime) -> None:
        self.enqueue_in(None, sink, alert_id, body, at)

    def due(self, at: datetime, limit: int = 100) -> list[Delivery]:
        with self._lock:
            found = [
                d
                for d in self._outbox.values()
                if d.status is DeliveryStatus.PENDING and d.next_at <= at
            ]
            return sorted(found, key=lambda d: d.id)[:limit]

    def delivered(self, delivery_id: int, at: datetime) -> None:
        with self._lock:
            d = self._outbox[delivery_id]
            self._outbox[delivery_id] = replace(
                d, status=DeliveryStatus.DELIVERED, delivered_at=at, attempts=d.attempts + 1
            )

    def failed(
        self, delivery_id: int, attempts: int, next_at: datetime, error: str, dead: bool
    ) -> None:
        with self._lock:
            d = self._outbox[delivery_id]
            status = DeliveryStatus.DEAD if dead else DeliveryStatus.PENDING
            self._outbox[delivery_id] = replace(
                d, attempts=attempts, next_at=next_at, last_error=error, status=status
            )

    def deliveries(self, *, alert_id: int | None = None, limit: int = 100) -> list[Delivery]:
        with self._lock:
            found = sorted(self._outbox.values(), key=lambda d: d.id)
        return [d for d in found if alert_id is None or d.alert_id == alert_id][:limit]

    def switch(self, kind: SwitchKind, target: str) -> Switch:
        with self._lock:
            return self._switches.get((kind, target), Switch(kind, target, False, 0))

    def switches(self, *, on_only: bool = True) -> list[Switch]:
        with self._lock:
            found = sorted(self._switches.values(), key=lambda s: (s.kind.value, s.target))
        return [s for s in found if s.on or not on_only]

    def _set(self, kind: SwitchKind, target: str, on: bool, action_id: int, at: datetime) -> None:
        self._switches[(kind, target)] = Switch(kind, target, on, action_id, at)

    def act(
        self,
        action: PlaybookAction,
        switch_to: bool | None,
        within: Callable[[Transaction, PlaybookAction], object],
    ) -> PlaybookAction:
        with self._lock:
            prior = switch_state(self.switch(action.switch, action.target))
            kept = replace(action, id=max(self._actions, default=0) + 1, prior=prior)
            self._actions[kept.id] = kept
            if switch_to is not None:
                self._set(kept.switch, kept.target, switch_to, kept.id, kept.at)
            within(None, kept)
            return kept

    def settle_action(
        self,
        action_id: int,
        expect: ActionStatus,
        status: ActionStatus,
        by: str,
        switch_to: bool | Mapping[str, Any] | None,
        within: Callable[[Transaction, PlaybookAction], object],
    ) -> PlaybookAction | None:
        with self._lock:
            a = self._actions.get(action_id)
            if a is None or a.status is not expect:
                return None
            done = _settled(a, status, by)
            self._actions[action_id] = done
            if isinstance(switch_to, bool):
                self._set(a.switch, a.target, switch_to, a.id, done.at)
            elif switch_to is not None:
                self._restore(a.switch, a.target, switch_to)
            within(None, done)
            return done

    def _restore(self, kind: SwitchKind, target: str, prior: Mapping[str, Any]) -> None:
        if not prior.get("exists"):
            self._switches.pop((kind, target), None)
            return
        at = prior.get("at")
        self._switches[(kind, target)] = Switch(
            kind,
            target,
            bool(prior["on"]),
            int(prior["by_action"]),
            datetime.fromisoformat(at) if at else None,
        )

    def action(self, action_id: int) -> PlaybookAction | None:
        with self._lock:
            return self._actions.get(action_id)

    def actions(
        self,
        *,
        playbook: str | None = None,
        alert_id: int | None = None,
        since: datetime | None = None,
    ) -> list[PlaybookAction]:
        with self._lock:
            found = sorted(self._actions.values(), key=lambda a: a.id)
        return [
            copy.copy(a)
            for a in found
            if (playbook is None or a.playbook == playbook)
            and (alert_id is None or a.alert_id == alert_id)
            and (since is None or a.at >= since)
        ]


def _settled(a: PlaybookAction, status: ActionStatus, by: str) -> PlaybookAction:
    if status is ActionStatus.UNDONE:
        return replace(a, status=status, undone_by=by)
    return replace(a, status=status, approved_by=by)
