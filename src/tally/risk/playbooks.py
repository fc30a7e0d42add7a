"""Playbooks: the automatic responses bound to alert kinds, and their one-click undo.

A playbook (configured in the alert rules, see ``alerts_model.PlaybookRule``) acts on
the one thing an alert names, never more: its provider (hold its settlement, suspend it
at the gateway), its provider and game (suspend the game), the partner or player its key
names. An alert without that is refused, not widened. Each action:

- in dry-run mode is recorded with what it would do and changes nothing;
- counts against the playbook's rate limit (at most ``rate_max`` in ``rate_window``);
- waits for a person's approval where the playbook asks for one;
- keeps the switch's exact prior state, so undo puts back precisely that;
- is audited, with the alert that caused it, in the transaction that sets the switch.

The switches are read by the contexts they concern through :class:`RiskSwitches`: the
gateway (``suspended``), the settlement worker (``held``), payouts (``frozen``,
``second_approval_required``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from tally.audit.ports import AuditStore, Transaction
from tally.audit.service import Auditing
from tally.kernel.clock import Clock
from tally.risk.alerts_model import Action, Alert, AlertRules, Mode, PlaybookRule, matches_all
from tally.risk.ports import ActionStatus, AlertStore, PlaybookAction, SwitchKind

log = structlog.get_logger("tally.risk.playbooks")

RULE_ACTOR = "rule:playbook"

SWITCH_OF = {
    Action.HOLD_SETTLEMENT: SwitchKind.SETTLEMENT_HOLD,
    Action.SUSPEND_GAME: SwitchKind.GAME_SUSPENDED,
    Action.SUSPEND_PROVIDER: SwitchKind.PROVIDER_SUSPENDED,
    Action.FREEZE_COMMISSIONS: SwitchKind.COMMISSIONS_FROZEN,
    Action.WITHDRAWAL_APPROVAL: SwitchKind.WITHDRAWAL_APPROVAL,
}
_KEY_PREFIX = {Action.FREEZE_COMMISSIONS: "partner:", Action.WITHDRAWAL_APPROVAL: "player:"}


class PlaybookRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def target_of(action: Action, alert: Alert) -> str:
    """The one thing ``action`` would act on for ``alert``, or "" if the alert does not
    name it (then nothing is done: a playbook is never widened)."""
    if action is Action.SUSPEND_GAME:
        return f"{alert.provider}/{alert.game}" if alert.provider and alert.game else ""
    if action in (Action.HOLD_SETTLEMENT, Action.SUSPEND_PROVIDER):
        return alert.provider
    prefix = _KEY_PREFIX[action]
    found = alert.key.removeprefix(prefix)
    return found if alert.key.startswith(prefix) and found else ""


def selects(rule: PlaybookRule, alert: Alert) -> bool:
    return alert.severity.order >= rule.min_severity.order and matches_all(
        rule.match, alert.labels()
    )


def _record(a: PlaybookAction) -> dict[str, Any]:
    return {
        "id": a.id, "playbook": a.playbook, "action": a.action, "alert": a.alert_id,
        "switch": a.switch.value, "target": a.target, "status": a.status.value,
        "detail": a.detail, "prior": dict(a.prior), "approved_by": a.approved_by,
        "undone_by": a.undone_by,
    }  # fmt: skip


def action_to_dict(a: PlaybookAction) -> dict[str, Any]:
    return _record(a) | {"at": a.at.isoformat()}


class Playbooks:
    def __init__(self, store: AlertStore, trail: AuditStore, clock: Clock) -> None:
        self.store = store
        self.trail = trail
        self.clock = clock
        self._lock = threading.Lock()  # one rate-limit decision at a time in this process

    def fire(self, alert: Alert, rules: AlertRules) -> list[PlaybookAction]:
        """Run every playbook that selects ``alert``; the actions recorded."""
        return [self._fire(rule, alert) for rule in rules.playbooks if selects(rule, alert)]

    def _fire(self, rule: PlaybookRule, alert: Alert) -> PlaybookAction:
        at = self.clock.now()
        switch = SWITCH_OF[rule.action]
        target = target_of(rule.action, alert)
        with self._lock:
            status, detail, switch_to = self._decide(rule, alert, target, at)
            action = PlaybookAction(
                0, rule.name, rule.action.value, alert.id, switch, target, status, at, detail
            )
            by = Auditing(self.trail, RULE_ACTOR, rule.name)

            def within(tx: Transaction, kept: PlaybookAction) -> None:
                by.record_in(
                    tx, f"playbook.{kept.status.value}", f"playbook_action:{kept.id}", at,
                    before=dict(kept.prior), after=_record(kept),
                )  # fmt: skip

            kept = self.store.act(action, switch_to, within)
        log.info("playbook_fired", playbook=rule.name, alert=alert.id, status=status.value)
        return kept

    def _decide(
        self, rule: PlaybookRule, alert: Alert, target: str, at: datetime
    ) -> tuple[ActionStatus, str, bool | None]:
        what = f"{rule.action.value} {target or '(nothing)'} for alert {alert.id}"
        if not target:
            needs = ", ".join(rule.action.needs)
            return ActionStatus.REFUSED, f"the alert does not name its {needs}: {what}", None
        if rule.mode is Mode.DRY_RUN:
            return ActionStatus.DRY_RUN, f"would {what}", None
        since = at - rule.rate_window
        counted = (ActionStatus.DONE, ActionStatus.AWAITING_APPROVAL, ActionStatus.UNDONE)
        recent = [
            a for a in self.store.actions(playbook=rule.name, since=since) if a.status in counted
        ]
        if len(recent) >= rule.rate_max:
            return (
                ActionStatus.RATE_LIMITED,
                f"{len(recent)} actions in the last {rule.rate_window}: not {what}",
                None,
            )
        if rule.approval:
            return ActionStatus.AWAITING_APPROVAL, f"awaits approval to {what}", None
        return ActionStatus.DONE, what, True

    def _settle(
        self,
        action_id: int,
        expect: ActionStatus,
        status: ActionStatus,
        auditing: Auditing,
        switch_to: bool | dict[str, Any] | None,
    ) -> PlaybookAction:
        at = self.clock.now()
        current = self.store.action(action_id)
        if current is None:
            raise PlaybookRefused("not_found", f"no playbook action {action_id}")
        if current.status is not expect:
            raise PlaybookRefused(
                "conflict", f"action {action_id} is {current.status.value}, not {expect.value}"
            )
        before = self.store.switch(current.switch, current.target)

        def within(tx: Transaction, done: PlaybookAction) -> None:
            auditing.record_in(
                tx, f"playbook.{status.value}", f"playbook_action:{done.id}", at,
                before={"on": before.on, "by_action": before.by_action}, after=_record(done),
            )  # fmt: skip

        done = self.store.settle_action(
            action_id, expect, status, auditing.actor, switch_to, within
        )
        if done is None:
            raise PlaybookRefused("conflict", f"action {action_id} changed meanwhile")
        return done

    def approve(self, action_id: int, auditing: Auditing) -> PlaybookAction:
        return self._settle(
            action_id, ActionStatus.AWAITING_APPROVAL, ActionStatus.DONE, auditing, True
        )

    def reject(self, action_id: int, auditing: Auditing) -> PlaybookAction:
        return self._settle(
            action_id, ActionStatus.AWAITING_APPROVAL, ActionStatus.REJECTED, auditing, None
        )

    def undo(self, action_id: int, auditing: Auditing) -> PlaybookAction:
        """Put the switch back exactly as it was before the action."""
        current = self.store.action(action_id)
        if current is None:
            raise PlaybookRefused("not_found", f"no playbook action {action_id}")
        return self._settle(
            action_id, ActionStatus.DONE, ActionStatus.UNDONE, auditing, dict(current.prior)
        )


@dataclass
class _Cached:
    at: float
    on: bool


class RiskSwitches:
    """The switches as the other contexts read them, each answer kept ``ttl_s`` (the
    gateway asks on every bet; a switch applies within that time)."""

    def __init__(self, store: AlertStore, ttl_s: float = 1) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._cache: dict[tuple[SwitchKind, str], _Cached] = {}
        self._lock = threading.Lock()

    def _on(self, kind: SwitchKind, target: str) -> bool:
        now = time.monotonic()
        key = (kind, target)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit.at < self.ttl_s:
                return hit.on
        on = self.store.switch(kind, target).on
        with self._lock:
            self._cache[key] = _Cached(now, on)
        return on

    def suspended(self, provider: str, game: str) -> bool:
        """The gateway's question: is this provider, or this game of it, suspended?"""
        if self._on(SwitchKind.PROVIDER_SUSPENDED, provider):
            return True
        return bool(game) and self._on(SwitchKind.GAME_SUSPENDED, f"{provider}/{game}")

    def held(self, provider: str) -> str:
        """Settlement's question: why this provider's settlement is held, or ""."""
        if not self._on(SwitchKind.SETTLEMENT_HOLD, provider):
            return ""
        s = self.store.switch(SwitchKind.SETTLEMENT_HOLD, provider)
        return f"held for review by playbook action {s.by_action}"

    def frozen(self, partner: str) -> bool:
        """Payouts' question: are this partner's commission payouts frozen?"""
        return self._on(SwitchKind.COMMISSIONS_FROZEN, partner)

    def second_approval_required(self, player: str) -> bool:
        """Payouts' question: does this player's withdrawal need a second approval?"""
        return self._on(SwitchKind.WITHDRAWAL_APPROVAL, player)
