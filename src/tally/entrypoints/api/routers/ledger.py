"""The ledger: accounts, balances, transfers, and the ledger's quarantine."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime

from tally.auth.model import OwnerRef, Principal
from tally.auth.scope import may_see_account, may_see_owner
from tally.entrypoints.api import schemas as s
from tally.entrypoints.api.deps import Ctx, require, source
from tally.entrypoints.api.errors import ERROR_RESPONSES, ApiError
from tally.entrypoints.api.routers.common import CONFLICT, CtxDep, Cursor, Id, Limit, P
from tally.ledger.model import Account, OwnerKind
from tally.quarantine.ledger import Fix, QuarantineError

router = APIRouter(prefix="/v1", tags=["ledger"], responses=ERROR_RESPONSES)
LedgerReader = Annotated[Principal, Depends(require(P.LEDGER_READ))]


def _visible_account(c: Ctx, p: Principal, account_id: str) -> Account:
    """The account, if it exists and the caller may see it; else 404 either way (no leaks)."""
    account = c.app.ledger.account(account_id)
    if account is None or not may_see_account(c.bo.scope.visible_owners(p), account):
        raise ApiError(404, "account_not_found", f"no account {account_id!r}")
    return account


@router.get("/accounts/{account_id}", response_model=s.AccountOut)
def get_account(account_id: Id, c: CtxDep, p: LedgerReader) -> s.AccountOut:
    return s.AccountOut.of(_visible_account(c, p, account_id))


@router.get("/accounts/{account_id}/balance", response_model=s.BalanceOut)
def get_balance(
    account_id: Id,
    c: CtxDep,
    p: LedgerReader,
    at: Annotated[
        AwareDatetime | None, Query(description="ISO 8601 instant with offset; omit for now")
    ] = None,
) -> s.BalanceOut:
    """The balance now, or as it stood at an instant."""
    account = _visible_account(c, p, account_id)
    found = c.app.ledger.balance(account_id, at)
    if found is None:
        raise ApiError(404, "account_not_found", f"no account {account_id!r}")
    return s.BalanceOut.of(account, found, at)


@router.get("/accounts/{account_id}/transfers", response_model=s.PageOut[s.TransferOut])
def account_transfers(
    account_id: Id, c: CtxDep, p: LedgerReader, cursor: Cursor = None, limit: Limit = 100
) -> s.PageOut[s.TransferOut]:
    """The account's transfers, oldest first, a page at a time."""
    _visible_account(c, p, account_id)
    page = c.app.ledger.account_transfers(account_id, cursor=cursor, limit=limit)
    return s.PageOut(items=[s.TransferOut.of(t) for t in page.items], next_cursor=page.next_cursor)


@router.get("/owners/{owner_kind}/{owner_id}/balances", response_model=list[s.OwnerBalanceOut])
def owner_balances(
    owner_kind: OwnerKind,
    owner_id: Id,
    c: CtxDep,
    p: LedgerReader,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3,5}$")] = None,
) -> list[s.OwnerBalanceOut]:
    """Every account an owner holds, with its balance now."""
    if not may_see_owner(c.bo.scope.visible_owners(p), OwnerRef(owner_kind, owner_id)):
        raise ApiError(404, "owner_not_found", f"no owner {owner_kind.value}:{owner_id}")
    return [
        s.OwnerBalanceOut(account=s.AccountOut.of(a), balance=s.BalanceOut.of(a, b, None))
        for a, b in c.app.ledger.balances_by_owner(owner_kind, owner_id, currency)
    ]


@router.get("/transfers/{transfer_id}", response_model=s.TransferOut)
def get_transfer(transfer_id: Id, c: CtxDep, p: LedgerReader) -> s.TransferOut:
    found = c.app.ledger.get_transfer(transfer_id)
    visible = c.bo.scope.visible_owners(p)
    if found is not None and visible is not None:
        sides = [c.app.ledger.account(found.debit_account_id)]
        sides.append(c.app.ledger.account(found.credit_account_id))
        if not any(a is not None and may_see_account(visible, a) for a in sides):
            found = None
    if found is None:
        raise ApiError(404, "transfer_not_found", f"no transfer {transfer_id!r}")
    return s.TransferOut.of(found)


@router.get("/quarantine/ledger-rejections", response_model=s.PageOut[s.RejectionOut])
def ledger_rejections(
    c: CtxDep,
    _: Annotated[Principal, Depends(require(P.QUARANTINE_READ))],
    cursor: Cursor = None,
    limit: Limit = 100,
) -> s.PageOut[s.RejectionOut]:
    """Transfer requests the ledger refused, kept with their reason."""
    page = c.app.ledger.rejections(cursor=cursor, limit=limit)
    items = [s.RejectionOut.of(r, c.bo.quarantine.resolved(r)) for r in page.items]
    return s.PageOut(items=items, next_cursor=page.next_cursor)


@router.get("/quarantine/settlement-problems", response_model=list[s.SettlementProblemOut])
def settlement_problems(
    c: CtxDep, _: Annotated[Principal, Depends(require(P.QUARANTINE_READ))]
) -> list[s.SettlementProblemOut]:
    """Events settlement could not place (no contract in force, unknown agent, ...)."""
    return [
        s.SettlementProblemOut(event_key=key, reason=reason, at=at)
        for key, reason, at in c.app.settlement_store.problems()
    ]


@router.post(
    "/quarantine/ledger-rejections/{transfer_id}/redrive",
    response_model=s.RedriveOut,
    responses=CONFLICT,
)
def redrive_rejection(
    transfer_id: Id,
    body: s.RedriveIn,
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.QUARANTINE_REDRIVE))],
) -> s.RedriveOut:
    """Fix (account ids, code) and resubmit a refused transfer under its original id."""
    fix = Fix(body.debit_account_id, body.credit_account_id, body.code)
    try:
        result = c.bo.quarantine.redrive(transfer_id, fix, actor=p.actor, source=source(request))
    except QuarantineError as exc:
        status = 404 if exc.code == "rejection_not_found" else 409
        raise ApiError(status, exc.code, exc.message) from None
    return s.RedriveOut(
        result=result.code.slug,
        ok=result.code.ok,
        transfer=s.TransferOut.of(result.transfer) if result.transfer else None,
    )
