"""Payouts: counterparties' payment details, runs (maker-checker), payouts, positions.

Finance makes runs (``payouts.write``) and approves them (``payouts.approve``, with a
fresh TOTP code, never the run's maker); auditors read everything; a partner reads only
the payouts and positions of its own subtree. The use cases write the audit records in
the change's own transaction; this router only translates. Rail answers (webhooks,
``pain.002``) come in through the rails' own doors, not here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from tally.audit.service import Auditing
from tally.auth.model import OwnerRef, Principal
from tally.entrypoints.api import schemas as s
from tally.entrypoints.api.deps import Ctx, require
from tally.entrypoints.api.deps import source as client_address
from tally.entrypoints.api.errors import ERROR_RESPONSES, ApiError
from tally.entrypoints.api.routers.common import CONFLICT, CtxDep, P
from tally.kernel.money import format_amount
from tally.ledger.model import OwnerKind
from tally.payouts.model import (
    Counterparty,
    CounterpartyKind,
    Payout,
    PayoutRefused,
    Refusal,
    Run,
    RunScope,
)
from tally.payouts.service import Position

router = APIRouter(prefix="/v1/payouts", tags=["payouts"], responses=ERROR_RESPONSES)

RunId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
Text = Annotated[str, Field(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")]

_STATUS = {
    Refusal.UNKNOWN_COUNTERPARTY: 422,
    Refusal.BLOCKED_COUNTERPARTY: 422,
    Refusal.NO_RAIL_FOR_CURRENCY: 422,
    Refusal.NOTHING_TO_PAY: 422,
    Refusal.RUN_NOT_FOUND: 404,
    Refusal.RUN_NOT_AWAITING_APPROVAL: 409,
    Refusal.MAKER_CANNOT_APPROVE: 403,
    Refusal.SECOND_FACTOR_REFUSED: 403,
    Refusal.UNKNOWN_RAIL: 422,
    Refusal.UNKNOWN_PAYOUT: 422,
    Refusal.ANSWER_FROM_ANOTHER_RAIL: 422,
    Refusal.TOO_MANY: 413,
    Refusal.PAYABLES_ALREADY_CLAIMED: 409,
    Refusal.BAD_INPUT: 422,
    Refusal.ANSWER_FOR_ANOTHER_RUN: 422,
}


def refused(exc: PayoutRefused) -> ApiError:
    return ApiError(_STATUS[exc.code], exc.code.slug, exc.message)


class CounterpartyIn(BaseModel):
    kind: Literal["provider", "partner"]
    party: Name
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=s.PRINTABLE)]
    rail: Name
    account: Annotated[str, Field(min_length=1, max_length=200, pattern=s.PRINTABLE)] = Field(
        description="an IBAN, a payment provider's payee id, or a Tally ledger account"
    )
    bic: Text = ""
    blocked: bool = False


class CounterpartyOut(CounterpartyIn):
    id: str

    @classmethod
    def of(cls, c: Counterparty) -> CounterpartyOut:
        return cls(
            id=c.id, kind=c.kind.value, party=c.party, name=c.name, rail=c.rail,
            account=c.account, bic=c.bic, blocked=c.blocked,
        )  # fmt: skip


class RunIn(BaseModel):
    scope: Literal["all", "provider", "partner"] = "all"
    party: Annotated[str, Field(max_length=200, pattern=r"^[A-Za-z0-9._-]*$")] = Field(
        default="", description="the provider, or the partner agent whose subtree is paid"
    )
    currency: Annotated[str, Field(max_length=3, pattern=r"^([A-Z]{3})?$")] = ""


class LineOut(BaseModel):
    counterparty: str
    currency: str
    owed: str
    owing: str
    net: str
    payout_id: str = Field(description="empty: carried forward (below the minimum)")
    carried_forward: str


class RunOut(BaseModel):
    id: str
    scope: str
    maker: str
    created_at: datetime
    status: Literal["awaiting_approval", "approved"]
    totals: dict[str, str]
    approver: str
    approved_at: datetime | None
    lines: list[LineOut]

    @classmethod
    def of(cls, r: Run, visible: frozenset[str] | None) -> RunOut:
        lines = [ln for ln in r.lines if visible is None or ln.counterparty in visible]
        return cls(
            id=r.id, scope=r.scope, maker=r.maker, created_at=r.created_at,
            status=r.status.value,
            totals={c: format_amount(v, c) for c, v in sorted(r.totals.items())}
            if visible is None else {},
            approver=r.approver, approved_at=r.approved_at,
            lines=[
                LineOut(
                    counterparty=ln.counterparty, currency=ln.currency,
                    owed=format_amount(ln.owed, ln.currency),
                    owing=format_amount(ln.owing, ln.currency),
                    net=format_amount(ln.net, ln.currency), payout_id=ln.payout_id,
                    carried_forward=format_amount(ln.carried, ln.currency),
                )
                for ln in lines
            ],
        )  # fmt: skip


class PayoutOut(BaseModel):
    id: str
    run_id: str
    counterparty: str
    currency: str
    amount: str
    rail: str
    state: Literal["requested", "reserved", "submitted", "confirmed", "failed", "expired"]
    reserved_until: datetime | None
    rail_reference: str
    reason: str
    updated_at: datetime

    @classmethod
    def of(cls, p: Payout) -> PayoutOut:
        return cls(
            id=p.id, run_id=p.run_id, counterparty=p.counterparty, currency=p.currency,
            amount=format_amount(p.amount, p.currency), rail=p.rail,
            state=p.state.value,
            reserved_until=p.reserved_until, rail_reference=p.rail_reference,
            reason=p.reason, updated_at=p.updated_at,
        )  # fmt: skip


class PositionOut(BaseModel):
    counterparty: str
    currency: str
    owed: str = Field(description="net of what closed periods left owed and owing")
    paid: str
    in_flight: str = Field(description="in payouts not yet confirmed or failed")
    carried_forward: str = Field(description="in no payout yet (below the minimum, or new)")

    @classmethod
    def of(cls, p: Position) -> PositionOut:
        c = p.currency
        return cls(
            counterparty=p.counterparty, currency=c, owed=format_amount(p.owed, c),
            paid=format_amount(p.paid, c), in_flight=format_amount(p.in_flight, c),
            carried_forward=format_amount(p.carried_forward, c),
        )  # fmt: skip


class ApproveIn(BaseModel):
    totp: Annotated[str, Field(pattern=r"^[0-9]{6}$", description="a fresh TOTP code")]


def _auditing(c: Ctx, p: Principal, request: Request) -> Auditing:
    return Auditing(c.bo.store, p.actor, client_address(request))


def _visible(c: Ctx, p: Principal) -> frozenset[str] | None:
    """The counterparties a principal may see (None: all): a partner, its subtree's."""
    owners: frozenset[OwnerRef] | None = c.bo.scope.visible_owners(p)
    if owners is None:
        return None
    return frozenset(f"partner:{o.id}" for o in owners if o.kind is OwnerKind.PARTNER)


def _staff(c: Ctx, p: Principal) -> None:
    if _visible(c, p) is not None:
        raise ApiError(403, "forbidden", "only staff see every counterparty and run")


@router.put("/counterparties", response_model=CounterpartyOut)
def put_counterparty(
    body: CounterpartyIn,
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.PAYOUTS_WRITE))],
) -> CounterpartyOut:
    """Register (or change, or block) a counterparty's payment details (audited)."""
    kind = CounterpartyKind(body.kind)
    cp = Counterparty(
        Counterparty.key(kind, body.party), kind, body.party, body.name, body.rail,
        body.account, body.bic, body.blocked,
    )  # fmt: skip
    try:
        return CounterpartyOut.of(c.bo.payouts.register_counterparty(cp, _auditing(c, p, request)))
    except PayoutRefused as exc:
        raise refused(exc) from None


@router.get("/counterparties", response_model=list[CounterpartyOut])
def list_counterparties(
    c: CtxDep, p: Annotated[Principal, Depends(require(P.PAYOUTS_READ))]
) -> list[CounterpartyOut]:
    _staff(c, p)
    return [CounterpartyOut.of(x) for x in c.bo.payouts.counterparties()]


@router.post("/runs", response_model=RunOut, status_code=201, responses=CONFLICT)
def build_run(
    body: RunIn,
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.PAYOUTS_WRITE))],
) -> RunOut:
    """Build a run from closed periods' unpaid payables: netted per counterparty and
    currency, nets below the minimum carried forward. Over the policy's amount it waits
    for a second finance user's approval; else the worker pays it at once."""
    try:
        scope = RunScope(body.scope, body.party, body.currency)
        run = c.bo.payouts.build_run(scope, _auditing(c, p, request))
    except PayoutRefused as exc:
        raise refused(exc) from None
    return RunOut.of(run, None)


@router.get("/runs", response_model=list[RunOut])
def list_runs(c: CtxDep, p: Annotated[Principal, Depends(require(P.PAYOUTS_READ))]) -> list[RunOut]:
    """The latest runs, newest first (staff only)."""
    _staff(c, p)
    return [RunOut.of(r, None) for r in c.bo.payouts.runs(100)]


@router.get("/runs/{run_id}", response_model=RunOut)
def get_run(
    run_id: RunId, c: CtxDep, p: Annotated[Principal, Depends(require(P.PAYOUTS_READ))]
) -> RunOut:
    """A run; a partner sees only its own subtree's lines (and no totals)."""
    run = c.bo.payouts.run(run_id)
    if run is None:
        raise ApiError(404, "run_not_found", f"no run {run_id}")
    return RunOut.of(run, _visible(c, p))


@router.post("/runs/{run_id}/approve", response_model=RunOut, responses=CONFLICT)
def approve_run(
    run_id: RunId,
    body: ApproveIn,
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.PAYOUTS_APPROVE))],
) -> RunOut:
    """The checker's approval, with a fresh TOTP code; the run's maker is refused (403)."""
    try:
        run = c.bo.payouts.approve(run_id, body.totp, _auditing(c, p, request))
    except PayoutRefused as exc:
        raise refused(exc) from None
    return RunOut.of(run, None)


@router.get("/runs/{run_id}/payouts", response_model=list[PayoutOut])
def run_payouts(
    run_id: RunId, c: CtxDep, p: Annotated[Principal, Depends(require(P.PAYOUTS_READ))]
) -> list[PayoutOut]:
    if c.bo.payouts.run(run_id) is None:
        raise ApiError(404, "run_not_found", f"no run {run_id}")
    visible = _visible(c, p)
    return [
        PayoutOut.of(x)
        for x in c.bo.payouts.payouts_of_run(run_id)
        if visible is None or x.counterparty in visible
    ]


@router.get("/positions", response_model=list[PositionOut])
def positions(
    c: CtxDep, p: Annotated[Principal, Depends(require(P.PAYOUTS_READ))]
) -> list[PositionOut]:
    """Per counterparty and currency: owed, paid, in flight, carried forward."""
    visible = _visible(c, p)
    found = c.bo.payouts.positions(None if visible is None else sorted(visible))
    return [PositionOut.of(x) for x in found]
