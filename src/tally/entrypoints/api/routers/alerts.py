"""Alerts: list and show them with their evidence, acknowledge them, silence them, save
the alert rules, and approve, reject or undo the playbooks' actions.

``alerts.read``: the risk role, operations and auditors see every alert; a partner only
the alerts about its own operators and subtree (silences, rules and playbook actions are
staff only). ``alerts.act`` acknowledges and silences, ``alerts.rules.write`` saves
rules, ``playbooks.act`` approves and undoes. The use cases write the audit records in
the change's own transaction; this router only translates.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, Field

from tally.audit.service import Auditing
from tally.auth.model import OwnerRef, Principal
from tally.entrypoints.api.deps import Ctx, require
from tally.entrypoints.api.deps import source as client_address
from tally.entrypoints.api.errors import ERROR_RESPONSES, ApiError
from tally.entrypoints.api.routers.common import CONFLICT, CtxDep, Cursor, Limit, P
from tally.kernel.alerts import Severity
from tally.kernel.currency import UnknownCurrency
from tally.kernel.money import format_amount
from tally.ledger.model import OwnerKind
from tally.risk.alerts import AlertRefused, silence_to_dict
from tally.risk.alerts_model import Alert, AlertStatus, Matcher, RulesRefused
from tally.risk.playbooks import PlaybookRefused, action_to_dict
from tally.risk.ports import AlertFilter, PlaybookAction

router = APIRouter(prefix="/v1/alerts", tags=["alerts"], responses=ERROR_RESPONSES)

AlertId = Annotated[int, Path(ge=1, le=2**62)]
SilenceId = Annotated[int, Path(ge=1, le=2**62)]
ActionId = Annotated[int, Path(ge=1, le=2**62)]
Label = Annotated[str | None, Query(max_length=128, pattern=r"^[A-Za-z0-9._:/*-]+$")]
Text = Annotated[
    str, Field(min_length=1, max_length=1_000, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")
]


class AlertOut(BaseModel):
    id: int
    kind: str
    key: str
    severity: Severity
    status: AlertStatus
    cause: str = Field(description="the suspected cause, in one sentence")
    priority: str = Field(description="money at risk times confidence, in minor units")
    money_at_risk: str = Field(description="in major units of currency (a decimal string)")
    currency: str
    confidence_permille: int
    region: str
    provider: str
    operator: str
    game: str
    evidence: dict[str, str] = Field(description="the figures, band and window behind it")
    refs: list[str] = Field(description="the rows behind it: transfer:…, event:…, break:…")
    opened_at: datetime
    last_seen_at: datetime
    signals: int = Field(description="signals deduplicated into this alert")
    reopened: int
    clearing_since: datetime | None
    acknowledged_by: str
    resolved_at: datetime | None
    muted: str = Field(description='why it is not delivered now ("silence:3", "inhibited:7")')

    @classmethod
    def of(cls, a: Alert, muted: str) -> AlertOut:
        try:
            money = (
                format_amount(a.money_at_risk, a.currency) if a.currency else str(a.money_at_risk)
            )
        except UnknownCurrency:
            money = str(a.money_at_risk)
        return cls(
            id=a.id, kind=a.kind, key=a.key, severity=a.severity, status=a.status, cause=a.cause,
            priority=str(a.priority), money_at_risk=money, currency=a.currency,
            confidence_permille=a.confidence_permille, region=a.region, provider=a.provider,
            operator=a.operator, game=a.game, evidence=dict(a.evidence), refs=list(a.refs),
            opened_at=a.opened_at, last_seen_at=a.last_seen_at, signals=a.signals,
            reopened=a.reopened, clearing_since=a.clearing_since,
            acknowledged_by=a.acknowledged_by, resolved_at=a.resolved_at, muted=muted,
        )  # fmt: skip


class AlertPageOut(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None


class AlertDetailOut(BaseModel):
    alert: AlertOut
    actions: list[dict[str, Any]] = Field(description="playbook actions this alert caused")
    deliveries: list[dict[str, Any]] = Field(description="its outbox rows (staff only)")


class SilenceIn(BaseModel):
    matchers: Annotated[
        list[Annotated[str, Field(max_length=300, pattern=r"^[a-z]+=[^\x00-\x1f\x7f]+$")]],
        Field(min_length=1, max_length=16, description='"dimension=value"; value* is a prefix'),
    ]
    reason: Text
    ends_at: AwareDatetime
    starts_at: AwareDatetime | None = None


class RulesOut(BaseModel):
    version: int = Field(description="0: the built-in defaults (no rules saved yet)")
    document: dict[str, Any]


def _auditing(c: Ctx, p: Principal, request: Request) -> Auditing:
    return Auditing(c.bo.store, p.actor, client_address(request))


def _visible(c: Ctx, p: Principal) -> frozenset[OwnerRef] | None:
    return c.bo.scope.visible_owners(p)


def _may_see(visible: frozenset[OwnerRef] | None, a: Alert) -> bool:
    """A partner sees an alert about one of its operators, or one whose key names a
    partner of its subtree (``partner:<id>``)."""
    if visible is None:
        return True
    if a.operator and OwnerRef(OwnerKind.OPERATOR, a.operator) in visible:
        return True
    partner = a.key.removeprefix("partner:")
    return a.key.startswith("partner:") and OwnerRef(OwnerKind.PARTNER, partner) in visible


def _staff(p: Principal) -> None:
    if not p.unscoped:
        raise ApiError(403, "forbidden", "only staff see silences, rules and playbook actions")


@router.get("", response_model=AlertPageOut)
def list_alerts(
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.ALERTS_READ))],
    status: AlertStatus | None = None,
    active: Annotated[bool, Query(description="open or acknowledged")] = False,
    kind: Label = None,
    severity: Severity | None = None,
    region: Label = None,
    provider: Label = None,
    operator: Label = None,
    game: Label = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> AlertPageOut:
    """Alerts by id, oldest first, with why each is muted (if it is)."""
    where = AlertFilter(
        status=status, active=active, kind=kind or "", severity=severity.value if severity else "",
        region=region or "", provider=provider or "", operator=operator or "", game=game or "",
    )  # fmt: skip
    service = c.bo.risk.alerts
    found = service.list(where, after=int(cursor or 0), limit=limit)
    visible = _visible(c, p)
    now = c.app.clock.now()
    shown = [a for a in found if _may_see(visible, a)]
    items = [AlertOut.of(a, m) for a, m in zip(shown, service.muted_many(shown, now), strict=True)]
    more = str(found[-1].id) if len(found) == limit else None
    return AlertPageOut(items=items, next_cursor=more)


@router.get("/silences", response_model=list[dict[str, Any]])
def list_silences(
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.ALERTS_READ))],
    active: bool = True,
) -> list[dict[str, Any]]:
    _staff(p)
    at = c.app.clock.now() if active else None
    return [silence_to_dict(s) for s in c.bo.risk.store.silences(active_at=at)]


@router.post("/silences", response_model=dict[str, Any], status_code=201)
def create_silence(
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.ALERTS_ACT))],
    body: SilenceIn,
) -> dict[str, Any]:
    """Mute the alerts the matchers select until ``ends_at`` (at most 30 days). A silence
    that would match every alert is refused (422)."""
    try:
        matchers = [Matcher.parse(m) for m in body.matchers]
        s = c.bo.risk.alerts.silence(
            matchers, body.reason, body.ends_at, _auditing(c, p, request), starts_at=body.starts_at
        )
    except (AlertRefused, RulesRefused) as exc:
        raise ApiError(422, "invalid_silence", str(exc)) from None
    return silence_to_dict(s)


@router.post("/silences/{silence_id}/expiry", response_model=dict[str, Any])
def expire_silence(
    silence_id: SilenceId,
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.ALERTS_ACT))],
) -> dict[str, Any]:
    try:
        return silence_to_dict(
            c.bo.risk.alerts.expire_silence(silence_id, _auditing(c, p, request))
        )
    except AlertRefused as exc:
        raise ApiError(404, "silence_not_found", exc.message) from None


@router.get("/rules", response_model=RulesOut)
def get_rules(
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.ALERTS_READ))],
    version: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> RulesOut:
    _staff(p)
    found = c.bo.risk.alerts.rules_version(version)
    if found is None:
        if version is not None:
            raise ApiError(404, "rules_not_found", f"no alert rules version {version}")
        return RulesOut(version=0, document={})
    return RulesOut(version=found.version, document=found.document)


@router.put("/rules", response_model=RulesOut)
def save_rules(
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.ALERT_RULES_WRITE))],
    document: Annotated[dict[str, Any], Body()],
) -> RulesOut:
    """Save a new version of the alert rules; bad rules are refused here (422), not when
    they fire."""
    try:
        saved = c.bo.risk.alerts.save_rules(document, _auditing(c, p, request))
    except RulesRefused as exc:
        raise ApiError(422, "invalid_rules", str(exc)) from None
    return RulesOut(version=saved.version, document=saved.document)


@router.get("/actions", response_model=list[dict[str, Any]])
def list_actions(
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.ALERTS_READ))],
    playbook: Label = None,
) -> list[dict[str, Any]]:
    """The playbooks' actions, oldest first."""
    _staff(p)
    return [action_to_dict(a) for a in c.bo.risk.store.actions(playbook=playbook)]


def _settle(c: Ctx, p: Principal, request: Request, action_id: int, what: str) -> dict[str, Any]:
    playbooks = c.bo.risk.playbooks
    by = _auditing(c, p, request)
    steps = {"approval": playbooks.approve, "rejection": playbooks.reject, "undo": playbooks.undo}
    try:
        done: PlaybookAction = steps[what](action_id, by)
    except PlaybookRefused as exc:
        status = 404 if exc.code == "not_found" else 409
        raise ApiError(status, f"action_{exc.code}", exc.message) from None
    return action_to_dict(done)


@router.post("/actions/{action_id}/approval", response_model=dict[str, Any], responses=CONFLICT)
def approve_action(
    action_id: ActionId,
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.PLAYBOOKS_ACT))],
) -> dict[str, Any]:
    """Approve an action awaiting approval: it acts now."""
    return _settle(c, p, request, action_id, "approval")


@router.post("/actions/{action_id}/rejection", response_model=dict[str, Any], responses=CONFLICT)
def reject_action(
    action_id: ActionId,
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.PLAYBOOKS_ACT))],
) -> dict[str, Any]:
    return _settle(c, p, request, action_id, "rejection")


@router.post("/actions/{action_id}/undo", response_model=dict[str, Any], responses=CONFLICT)
def undo_action(
    action_id: ActionId,
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.PLAYBOOKS_ACT))],
) -> dict[str, Any]:
    """One-click undo: the switch goes back exactly as it was before the action."""
    return _settle(c, p, request, action_id, "undo")


@router.get("/{alert_id}", response_model=AlertDetailOut)
def get_alert(
    alert_id: AlertId,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.ALERTS_READ))],
) -> AlertDetailOut:
    """One alert with its evidence, the rows behind it, the playbook actions it caused and
    (staff) its deliveries."""
    service = c.bo.risk.alerts
    a = service.get(alert_id)
    visible = _visible(c, p)
    if a is None or not _may_see(visible, a):
        raise ApiError(404, "alert_not_found", f"no alert {alert_id}")
    staff = visible is None
    actions = [action_to_dict(x) for x in c.bo.risk.store.actions(alert_id=a.id)] if staff else []
    deliveries = (
        [
            {
                "id": d.id, "sink": d.sink, "status": d.status.value, "attempts": d.attempts,
                "next_at": d.next_at.isoformat(), "last_error": d.last_error,
                "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
            }
            for d in c.bo.risk.store.deliveries(alert_id=a.id)
        ]
        if staff
        else []
    )  # fmt: skip
    return AlertDetailOut(
        alert=AlertOut.of(a, service.muted(a, c.app.clock.now())),
        actions=actions,
        deliveries=deliveries,
    )


@router.post("/{alert_id}/acknowledgement", response_model=AlertOut, responses=CONFLICT)
def acknowledge(
    alert_id: AlertId,
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.ALERTS_ACT))],
) -> AlertOut:
    service = c.bo.risk.alerts
    try:
        a = service.acknowledge(alert_id, _auditing(c, p, request))
    except AlertRefused as exc:
        status = 404 if exc.code == "not_found" else 409
        raise ApiError(
            status, "alert_not_found" if status == 404 else exc.code, exc.message
        ) from None
    return AlertOut.of(a, service.muted(a, c.app.clock.now()))
