"""What the alerts service and the playbooks need from the world.

One store keeps the alerts, silences, rule versions, the delivery outbox, the playbooks'
actions and the switches those actions set (a held provider, a suspended game, ...). A
change and its audit record (and its outbox rows) are written in one transaction: the
store runs ``within(tx, ...)`` inside it, as reconciliation's store does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from tally.audit.ports import Transaction
from tally.risk.alerts_model import Alert, AlertStatus, Change, Matcher, Silence


@dataclass(frozen=True, slots=True)
class AlertFilter:
    status: AlertStatus | None = None
    active: bool = False  # open or acknowledged (ignores ``status``)
    kind: str = ""
    severity: str = ""
    region: str = ""
    provider: str = ""
    operator: str = ""
    game: str = ""


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"  # gave up after the limit of attempts: kept, listed, never dropped


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbox row: a body for one sink, committed with the change that made it."""

    id: int
    sink: str  # "webhook:<name>" or "alertmanager:<name>"
    alert_id: int
    body: bytes
    created_at: datetime
    next_at: datetime
    attempts: int = 0
    status: DeliveryStatus = DeliveryStatus.PENDING
    last_error: str = ""
    delivered_at: datetime | None = None


class SwitchKind(StrEnum):
    """What a playbook can switch on, each read by the context it concerns."""

    SETTLEMENT_HOLD = "settlement_hold"  # target: provider
    GAME_SUSPENDED = "game_suspended"  # target: provider/game
    PROVIDER_SUSPENDED = "provider_suspended"  # target: provider
    COMMISSIONS_FROZEN = "commissions_frozen"  # target: partner id
    WITHDRAWAL_APPROVAL = "withdrawal_approval"  # target: player id


@dataclass(frozen=True, slots=True)
class Switch:
    kind: SwitchKind
    target: str
    on: bool
    by_action: int  # the playbook action that set it last (0: never set)
    at: datetime | None = None


def switch_state(s: Switch) -> dict[str, Any]:
    """A switch as it stands, so that an undo can put back exactly this (also "never
    set": ``exists`` false)."""
    return {
        "exists": s.by_action != 0 or s.at is not None,
        "on": s.on,
        "by_action": s.by_action,
        "at": s.at.isoformat() if s.at else None,
    }


class ActionStatus(StrEnum):
    DRY_RUN = "dry_run"  # recorded what it would do; changed nothing
    AWAITING_APPROVAL = "awaiting_approval"
    DONE = "done"
    UNDONE = "undone"
    RATE_LIMITED = "rate_limited"  # the playbook had acted its limit in the window
    REFUSED = "refused"  # the alert lacks what the action needs (never widened)
    REJECTED = "rejected"  # a person refused the approval


@dataclass(frozen=True, slots=True)
class PlaybookAction:
    id: int
    playbook: str
    action: str
    alert_id: int
    switch: SwitchKind
    target: str
    status: ActionStatus
    at: datetime
    detail: str = ""
    prior: Mapping[str, Any] = field(default_factory=dict)  # the switch as it was before
    approved_by: str = ""
    undone_by: str = ""


Within = Callable[[Transaction, Change], object]


class AlertStore(Protocol):
    def close(self) -> None: ...

    # -- alerts ------------------------------------------------------------------------
    def change(
        self, kind: str, key: str, decide: Callable[[Alert | None], Change], within: Within
    ) -> Change:
        """Under the (kind, key)'s lock, in one transaction: read its latest alert, let
        ``decide`` say what becomes of it, keep that (a new alert, ``after.id == 0``, gets
        the next id), and run ``within(tx, change)`` (the audit record, the outbox rows).
        Two calls for one (kind, key) never run at once, in any number of processes."""
        ...

    def change_alert(
        self, alert_id: int, decide: Callable[[Alert], Change], within: Within
    ) -> Change | None:
        """``change`` for the alert with this id (None: no such alert)."""
        ...

    def alert(self, alert_id: int) -> Alert | None: ...

    def latest(self, kind: str, key: str) -> Alert | None: ...

    def alerts(self, where: AlertFilter, *, after: int = 0, limit: int = 100) -> list[Alert]:
        """Alerts by id after ``after``, ``limit`` at a time."""
        ...

    def clearing(self, limit: int = 1000) -> list[Alert]:
        """Active alerts in a clearing spell (for the sweep)."""
        ...

    # -- silences ----------------------------------------------------------------------
    def add_silence(
        self,
        author: str,
        reason: str,
        matchers: Sequence[Matcher],
        starts_at: datetime,
        ends_at: datetime,
        at: datetime,
        within: Callable[[Transaction, Silence], object],
    ) -> Silence: ...

    def expire_silence(
        self, silence_id: int, at: datetime, within: Callable[[Transaction, Silence], object]
    ) -> Silence | None:
        """End it now (None if unknown or already ended)."""
        ...

    def silences(self, *, active_at: datetime | None = None) -> list[Silence]: ...

    # -- rules (versioned) -------------------------------------------------------------
    def save_rules(
        self,
        document: Mapping[str, Any],
        at: datetime,
        within: Callable[[Transaction, int], object],
    ) -> int:
        """Keep ``document`` as the next version; returns it."""
        ...

    def rules_document(self, version: int | None = None) -> tuple[int, dict[str, Any]] | None:
        """The given version (default the latest), or None."""
        ...

    # -- outbox ------------------------------------------------------------------------
    def enqueue_in(
        self, tx: Transaction, sink: str, alert_id: int, body: bytes, at: datetime
    ) -> None: ...

    def enqueue(self, sink: str, alert_id: int, body: bytes, at: datetime) -> None:
        """``enqueue_in`` in a transaction of its own (a refresh that changes no alert)."""
        ...

    def due(self, at: datetime, limit: int = 100) -> list[Delivery]:
        """Pending deliveries whose time has come, oldest first."""
        ...

    def delivered(self, delivery_id: int, at: datetime) -> None: ...

    def failed(
        self, delivery_id: int, attempts: int, next_at: datetime, error: str, dead: bool
    ) -> None: ...

    def deliveries(self, *, alert_id: int | None = None, limit: int = 100) -> list[Delivery]: ...

    # -- playbooks: actions and switches -----------------------------------------------
    def act(
        self,
        action: PlaybookAction,
        switch_to: bool | None,
        within: Callable[[Transaction, PlaybookAction], object],
    ) -> PlaybookAction:
        """Keep ``action`` (``id`` 0: the next id), with its switch's state before it in
        ``prior``, and, unless ``switch_to`` is None, set the switch; one transaction."""
        ...

    def settle_action(
        self,
        action_id: int,
        expect: ActionStatus,
        status: ActionStatus,
        by: str,
        switch_to: bool | Mapping[str, Any] | None,
        within: Callable[[Transaction, PlaybookAction], object],
    ) -> PlaybookAction | None:
        """Move an action still in ``expect`` to ``status`` (approved: set the switch to
        ``switch_to``; undone: ``switch_to`` is the prior state, restored exactly). None
        (nothing changes) if the action is no longer in ``expect``."""
        ...

    def action(self, action_id: int) -> PlaybookAction | None: ...

    def actions(
        self,
        *,
        playbook: str | None = None,
        alert_id: int | None = None,
        since: datetime | None = None,
    ) -> list[PlaybookAction]: ...

    def switch(self, kind: SwitchKind, target: str) -> Switch: ...

    def switches(self, *, on_only: bool = True) -> list[Switch]: ...


class CommissionFreezes(Protocol):
    """What payouts asks before paying a partner's commission (``RiskSwitches`` is one;
    payouts declares the same Protocol on its side, as contexts do not import each other,
    and bootstrap hands it ``Backoffice.risk.switches``)."""

    def frozen(self, partner: str) -> bool: ...


class WithdrawalApprovals(Protocol):
    """What payouts asks before a player's withdrawal: a second approval needed?"""

    def second_approval_required(self, player: str) -> bool: ...


class Transport(Protocol):
    """How a delivery reaches its receiver (HTTP in production, a list in tests)."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
        """The receiver's HTTP status; raises OSError (or a subclass) when unreachable."""
        ...

    def close(self) -> None:
        """Let go of connections (the process is stopping)."""
        ...
