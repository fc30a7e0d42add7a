"""The FastAPI application factory: routes over the App and Backoffice from bootstrap."""

from __future__ import annotations

import time
from datetime import UTC
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tally.app.bootstrap import App, Backoffice
from tally.audit.service import Auditing
from tally.auth.model import OwnerRef, Principal
from tally.auth.policy import Permission
from tally.auth.scope import may_see_account, may_see_owner
from tally.auth.service import AuthError
from tally.entrypoints.api import ingest
from tally.entrypoints.api import schemas as s
from tally.entrypoints.api.deps import (
    Ctx,
    auth_failure,
    ctx,
    parse_scope,
    require,
    require_full_user,
    require_user,
    source,
)
from tally.entrypoints.api.edge import EdgeMiddleware
from tally.entrypoints.api.errors import (
    ERROR_RESPONSES,
    ApiError,
    ErrorBody,
    install_error_handlers,
)
from tally.exports.bundle import to_zip
from tally.kernel.currency import is_known
from tally.kernel.money import format_amount
from tally.ledger.model import Account, OwnerKind
from tally.quarantine.ledger import Fix, QuarantineError
from tally.settlement import codec
from tally.settlement.config import ConfigConflict, PutOutcome
from tally.settlement.figures import Dimension, commissions_accrued, live_totals
from tally.settlement.ports import StoredStatement

P = Permission
CtxDep = Annotated[Ctx, Depends(ctx)]
Cursor = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{1,18}$", description="next_cursor of the previous page"),
]
Limit = Annotated[int, Query(ge=1, le=500)]
Id = Annotated[str, Path(min_length=1, max_length=128, pattern=s.PRINTABLE)]
THROTTLED: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorBody,
        "description": "Too many attempts from this address or on this username; "
        "try again after Retry-After seconds",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    }
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "Conflicts with the current state"}
}


class MetricsMiddleware:
    """Counts and times every request by its route template (not its raw path)."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            c: Ctx = self.api.state.ctx
            c.bo.metrics.observe_request(
                template, scope["method"], status, time.perf_counter() - started
            )


# -- health, readiness, metrics ------------------------------------------------------------
ops = APIRouter(tags=["operations"])


@ops.get("/health", response_model=s.StatusOut)
def health() -> s.StatusOut:
    """The process is up (no dependencies checked)."""
    return s.StatusOut(status="ok")


@ops.get(
    "/ready",
    response_model=s.StatusOut,
    responses={503: {"model": ErrorBody, "description": "A store is not reachable"}},
)
def ready(c: CtxDep) -> Any:
    """The ledger and back-office stores answer."""
    try:
        c.app.ledger.account("__readiness_probe__")
        c.bo.store.ping()
    except Exception:  # noqa: BLE001 - any failure means not ready
        return JSONResponse(
            {"error": {"code": "not_ready", "message": "a store is not reachable"}}, 503
        )
    return s.StatusOut(status="ready")


@ops.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **ERROR_RESPONSES},
)
def metrics(c: CtxDep, _: Annotated[Principal, Depends(require(P.METRICS_READ))]) -> Response:
    """Prometheus metrics: requests and latency by route, ledger commit latency."""
    return Response(c.bo.metrics.render(), media_type="text/plain; version=0.0.4")


# -- authentication -----------------------------------------------------------------------
auth = APIRouter(prefix="/v1/auth", tags=["authentication"], responses=ERROR_RESPONSES)


@auth.post("/login", response_model=s.TokenOut, responses=THROTTLED)
def login(body: s.LoginIn, request: Request, c: CtxDep) -> s.TokenOut:
    """Password (and TOTP code for MFA accounts) for a session token."""
    try:
        result = c.bo.auth.login(
            body.username, body.password, body.totp_code, source=source(request)
        )
    except AuthError as exc:
        raise auth_failure(exc) from None
    return s.TokenOut(
        token=result.token, expires_at=result.session.expires_at, stage=result.session.stage.value
    )


@auth.post("/logout", status_code=204, response_class=Response, responses=ERROR_RESPONSES)
def logout(request: Request, c: CtxDep, p: Annotated[Principal, Depends(require_user)]) -> Response:
    try:
        c.bo.auth.logout(p, source=source(request))
    except AuthError as exc:
        raise auth_failure(exc) from None
    return Response(status_code=204)


@auth.get("/me", response_model=s.MeOut)
def me(p: Annotated[Principal, Depends(require_user)]) -> s.MeOut:
    return s.MeOut.of(p)


@auth.post("/password", status_code=204, response_class=Response, responses=THROTTLED)
def change_password(
    body: s.PasswordIn,
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require_full_user)],
) -> Response:
    try:
        c.bo.auth.change_password(
            p, body.current_password, body.new_password, source=source(request)
        )
    except AuthError as exc:
        raise auth_failure(exc) from None
    return Response(status_code=204)


@auth.post("/mfa/enrolment", response_model=s.EnrolmentOut, responses=CONFLICT)
def begin_enrolment(
    request: Request, c: CtxDep, p: Annotated[Principal, Depends(require_user)]
) -> s.EnrolmentOut:
    """A new TOTP secret for the caller; MFA turns on once a code confirms it."""
    try:
        found = c.bo.auth.begin_enrolment(p, source=source(request))
    except AuthError as exc:
        raise auth_failure(exc) from None
    return s.EnrolmentOut(secret=found.secret, otpauth_uri=found.uri)


@auth.post("/mfa/confirmation", response_model=s.TokenOut, responses=CONFLICT)
def confirm_enrolment(
    body: s.CodeIn, request: Request, c: CtxDep, p: Annotated[Principal, Depends(require_user)]
) -> s.TokenOut:
    """Confirm the TOTP secret with a code; returns a full session in place of this one."""
    try:
        token = c.bo.auth.confirm_enrolment(p, body.code, source=source(request))
    except AuthError as exc:
        raise auth_failure(exc) from None
    found = c.bo.auth.authenticate(token)
    assert found is not None
    session = c.bo.store.get_session(found.session_hash)
    assert session is not None
    return s.TokenOut(token=token, expires_at=session.expires_at, stage=session.stage.value)


# -- ledger -------------------------------------------------------------------------------
ledger = APIRouter(prefix="/v1", tags=["ledger"], responses=ERROR_RESPONSES)
LedgerReader = Annotated[Principal, Depends(require(P.LEDGER_READ))]


def _visible_account(c: Ctx, p: Principal, account_id: str) -> Account:
    """The account, if it exists and the caller may see it; else 404 either way (no leaks)."""
    account = c.app.ledger.account(account_id)
    if account is None or not may_see_account(c.bo.scope.visible_owners(p), account):
        raise ApiError(404, "account_not_found", f"no account {account_id!r}")
    return account


@ledger.get("/accounts/{account_id}", response_model=s.AccountOut)
def get_account(account_id: Id, c: CtxDep, p: LedgerReader) -> s.AccountOut:
    return s.AccountOut.of(_visible_account(c, p, account_id))


@ledger.get("/accounts/{account_id}/balance", response_model=s.BalanceOut)
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


@ledger.get("/accounts/{account_id}/transfers", response_model=s.PageOut[s.TransferOut])
def account_transfers(
    account_id: Id, c: CtxDep, p: LedgerReader, cursor: Cursor = None, limit: Limit = 100
) -> s.PageOut[s.TransferOut]:
    """The account's transfers, oldest first, a page at a time."""
    _visible_account(c, p, account_id)
    page = c.app.ledger.account_transfers(account_id, cursor=cursor, limit=limit)
    return s.PageOut(items=[s.TransferOut.of(t) for t in page.items], next_cursor=page.next_cursor)


@ledger.get("/owners/{owner_kind}/{owner_id}/balances", response_model=list[s.OwnerBalanceOut])
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


@ledger.get("/transfers/{transfer_id}", response_model=s.TransferOut)
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


@ledger.get("/quarantine/ledger-rejections", response_model=s.PageOut[s.RejectionOut])
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


@ledger.get("/quarantine/settlement-problems", response_model=list[s.SettlementProblemOut])
def settlement_problems(
    c: CtxDep, _: Annotated[Principal, Depends(require(P.QUARANTINE_READ))]
) -> list[s.SettlementProblemOut]:
    """Events settlement could not place (no contract in force, unknown agent, ...)."""
    return [
        s.SettlementProblemOut(event_key=key, reason=reason, at=at)
        for key, reason, at in c.app.settlement_store.problems()
    ]


@ledger.post(
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


# -- users, API keys, audit -----------------------------------------------------------------
admin = APIRouter(prefix="/v1", tags=["administration"], responses=ERROR_RESPONSES)
UsersReader = Annotated[Principal, Depends(require(P.USERS_READ))]
UsersWriter = Annotated[Principal, Depends(require(P.USERS_WRITE))]
KeysReader = Annotated[Principal, Depends(require(P.API_KEYS_READ))]
KeysWriter = Annotated[Principal, Depends(require(P.API_KEYS_WRITE))]
AuditReader = Annotated[Principal, Depends(require(P.AUDIT_READ))]


@admin.get("/users", response_model=s.PageOut[s.UserOut])
def list_users(
    c: CtxDep, _: UsersReader, cursor: Cursor = None, limit: Limit = 100
) -> s.PageOut[s.UserOut]:
    page = c.bo.auth.list_users(cursor=cursor, limit=limit)
    return s.PageOut(items=[s.UserOut.of(u) for u in page.items], next_cursor=page.next_cursor)


@admin.post("/users", response_model=s.UserOut, status_code=201, responses=CONFLICT)
def create_user(body: s.UserCreateIn, request: Request, c: CtxDep, p: UsersWriter) -> s.UserOut:
    try:
        user = c.bo.auth.create_user(
            p.actor,
            body.username,
            body.password,
            frozenset(body.roles),
            scope=parse_scope(body.scope),
            source=source(request),
        )
    except AuthError as exc:
        raise auth_failure(exc) from None
    return s.UserOut.of(user)


@admin.get("/users/{user_id}", response_model=s.UserOut)
def get_user(user_id: Id, c: CtxDep, _: UsersReader) -> s.UserOut:
    found = c.bo.auth.get_user(user_id)
    if found is None:
        raise ApiError(404, "user_not_found", f"no user {user_id!r}")
    return s.UserOut.of(found)


def _user_action(call: Any) -> s.UserOut:
    try:
        return s.UserOut.of(call())
    except AuthError as exc:
        raise auth_failure(exc) from None


@admin.patch("/users/{user_id}", response_model=s.UserOut, responses=CONFLICT)
def update_user(
    user_id: Id, body: s.UserPatchIn, request: Request, c: CtxDep, p: UsersWriter
) -> s.UserOut:
    """Change roles, partner scope or the disabled flag (audited with before and after)."""
    scope = parse_scope(body.scope) if body.scope is not None else None
    return _user_action(
        lambda: c.bo.auth.update_user(
            p.actor,
            user_id,
            roles=frozenset(body.roles) if body.roles is not None else None,
            scope=scope,
            disabled=body.disabled,
            source=source(request),
        )
    )


@admin.post("/users/{user_id}/mfa-reset", response_model=s.UserOut)
def reset_mfa(user_id: Id, request: Request, c: CtxDep, p: UsersWriter) -> s.UserOut:
    """Forget the user's TOTP secret and end their sessions; they enrol again at next login."""
    return _user_action(lambda: c.bo.auth.reset_mfa(p.actor, user_id, source=source(request)))


@admin.post("/users/{user_id}/unlock", response_model=s.UserOut)
def unlock_user(user_id: Id, request: Request, c: CtxDep, p: UsersWriter) -> s.UserOut:
    return _user_action(lambda: c.bo.auth.unlock_user(p.actor, user_id, source=source(request)))


@admin.get("/api-keys", response_model=s.PageOut[s.ApiKeyOut])
def list_api_keys(
    c: CtxDep, _: KeysReader, cursor: Cursor = None, limit: Limit = 100
) -> s.PageOut[s.ApiKeyOut]:
    page = c.bo.auth.list_api_keys(cursor=cursor, limit=limit)
    return s.PageOut(items=[s.ApiKeyOut.of(k) for k in page.items], next_cursor=page.next_cursor)


@admin.post("/api-keys", response_model=s.ApiKeyCreatedOut, status_code=201)
def create_api_key(
    body: s.ApiKeyCreateIn, request: Request, c: CtxDep, p: KeysWriter
) -> s.ApiKeyCreatedOut:
    try:
        key, token = c.bo.auth.create_api_key(
            p.actor,
            body.name,
            frozenset(body.roles),
            scope=parse_scope(body.scope),
            expires_at=body.expires_at,
            source=source(request),
        )
    except AuthError as exc:
        raise auth_failure(exc) from None
    return s.ApiKeyCreatedOut(key=s.ApiKeyOut.of(key), token=token)


@admin.delete("/api-keys/{key_id}", response_model=s.ApiKeyOut)
def revoke_api_key(key_id: Id, request: Request, c: CtxDep, p: KeysWriter) -> s.ApiKeyOut:
    """Revoke a key: it stops working at once; the record stays."""
    try:
        return s.ApiKeyOut.of(c.bo.auth.revoke_api_key(p.actor, key_id, source=source(request)))
    except AuthError as exc:
        raise auth_failure(exc) from None


@admin.get("/audit-records", response_model=s.PageOut[s.AuditRecordOut])
def audit_records(
    c: CtxDep,
    _: AuditReader,
    cursor: Cursor = None,
    limit: Limit = 100,
    actor: Annotated[str | None, Query(max_length=200, pattern=s.PRINTABLE)] = None,
    action: Annotated[str | None, Query(max_length=100, pattern=s.PRINTABLE)] = None,
) -> s.PageOut[s.AuditRecordOut]:
    page = c.bo.audit.page(cursor=cursor, limit=limit, actor=actor, action=action)
    return s.PageOut(
        items=[s.AuditRecordOut.of(r) for r in page.items], next_cursor=page.next_cursor
    )


@admin.get("/audit-records/verification", response_model=s.AuditVerifyOut)
def verify_audit(c: CtxDep, _: AuditReader) -> s.AuditVerifyOut:
    """Walk the whole chain and report any edited, deleted, inserted or reordered record."""
    checked, problems = c.bo.audit.verify()
    return s.AuditVerifyOut(
        checked=checked, intact=not problems, problems=[s.ProblemOut.of(p) for p in problems]
    )


@admin.post(
    "/exports",
    response_class=Response,
    responses={
        200: {
            "description": "The signed bundle as a zip archive (check it with tally export verify)",
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
def create_export(
    body: s.ExportIn,
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.EXPORTS_CREATE))],
) -> Response:
    """A regulator export of a period: transfers, accounts, audit records; signed manifest."""
    owner = parse_scope([body.owner]) if body.owner else frozenset()
    try:
        files = c.bo.exports.export(
            body.start,
            body.end,
            owner=next(iter(owner), None),
            actor=p.actor,
            source=source(request),
        )
    except ValueError as exc:
        raise ApiError(422, "invalid_period", str(exc)) from None
    name = f"tally-export-{body.start.astimezone(UTC):%Y%m%dT%H%M%SZ}.zip"
    return Response(
        to_zip(files),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- settlement: live figures, commissions, statements -------------------------------------
settlement = APIRouter(prefix="/v1", tags=["settlement"], responses=ERROR_RESPONSES)
DimValue = Annotated[str | None, Query(max_length=128, pattern=s.PRINTABLE)]


def _amount(minor: int, currency: str) -> str:
    return format_amount(minor, currency) if is_known(currency) else str(minor)


@settlement.get("/settlement/figures", response_model=list[s.FiguresRowOut])
def settlement_figures(
    c: CtxDep,
    _: Annotated[Principal, Depends(require(P.SETTLEMENT_FIGURES_READ))],
    by: Annotated[list[Dimension] | None, Query(max_length=7)] = None,
    provider: DimValue = None,
    operator: DimValue = None,
    period: DimValue = None,
) -> list[s.FiguresRowOut]:
    """Live totals of the open periods (turnover, wins, GGR, NGR), grouped as asked."""
    where = {
        d: v
        for d, v in (
            (Dimension.PROVIDER, provider),
            (Dimension.OPERATOR, operator),
            (Dimension.PERIOD, period),
        )
        if v is not None
    }
    rows = live_totals(c.app.settlement_store.load_figures(), by or [], where)
    out = []
    for row in rows:
        key = dict(row.key)
        cur = key.get("currency", "")
        t = row.totals
        out.append(
            s.FiguresRowOut(
                key=key,
                currency=cur,
                turnover=_amount(t.turnover, cur),
                wins=_amount(t.wins, cur),
                ggr=_amount(t.ggr, cur),
                bonuses=_amount(t.bonuses, cur),
                jackpot_contributions=_amount(t.jackpot_contributions, cur),
                ngr=_amount(row.ngr, cur),
            )
        )
    return out


@settlement.get("/settlement/commissions", response_model=list[s.AccrualOut])
def settlement_commissions(
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.COMMISSIONS_READ))],
    agent: DimValue = None,
    operator: DimValue = None,
) -> list[s.AccrualOut]:
    """Partner commission accrued in the open periods; a partner sees its subtree only."""
    visible = c.bo.scope.visible_owners(p)
    rows = commissions_accrued(
        c.app.settlement_store.load_figures(), agent=agent, operator=operator
    )
    out = []
    for row in rows:
        key = dict(row.key)
        if not may_see_owner(visible, OwnerRef(OwnerKind.PARTNER, key["agent"])):
            continue
        out.append(
            s.AccrualOut(
                key=key, currency=key["currency"], accrued=_amount(row.accrued, key["currency"])
            )
        )
    return out


def _visible_statements(c: Ctx, p: Principal) -> list[StoredStatement]:
    visible = c.bo.scope.visible_owners(p)
    return [
        st
        for st in c.app.settlement_store.statements()
        if may_see_owner(visible, OwnerRef(OwnerKind.OPERATOR, st.operator))
    ]


@settlement.get("/settlement/orphans", response_model=list[s.OrphanOut])
def settlement_orphans(
    c: CtxDep, _: Annotated[Principal, Depends(require(P.SETTLEMENT_ORPHANS_READ))]
) -> list[s.OrphanOut]:
    """Rollbacks still waiting for their original. One still here after its period
    closed voided nothing in it: its original never came, or came under another key."""
    return [
        s.OrphanOut(ref=ref, rollback_key=rollback)
        for ref, rollback in c.app.settlement_store.orphans()
    ]


@settlement.get("/statements", response_model=list[s.StatementOut])
def list_statements(
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.STATEMENTS_READ))],
    operator: DimValue = None,
    period: DimValue = None,
) -> list[s.StatementOut]:
    """Closed-period statements; a partner sees its own operator's only."""
    return [
        s.StatementOut(
            contract_id=st.contract_id,
            operator=st.operator,
            period=st.period,
            sha256=st.sha256,
            closed_at=st.closed_at,
        )
        for st in _visible_statements(c, p)
        if (operator is None or st.operator == operator) and (period is None or st.period == period)
    ]


@settlement.get(
    "/statements/{contract_id}/{operator}/{period}",
    response_class=Response,
    responses={
        200: {
            "description": "The frozen statement (JSON, or CSV with ?format=csv)",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
def download_statement(
    contract_id: Id,
    operator: Id,
    period: Id,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.STATEMENTS_READ))],
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response:
    """Download a statement exactly as it was frozen at close (its SHA-256 in a header)."""
    for st in _visible_statements(c, p):
        if (st.contract_id, st.operator, st.period) == (contract_id, operator, period):
            body, media = (
                (st.csv, "text/csv") if format == "csv" else (st.document, "application/json")
            )
            return Response(body, media_type=media, headers={"X-Statement-SHA256": st.sha256})
    raise ApiError(404, "statement_not_found", "no such statement")


# -- settlement configuration: contracts, partner trees, FX rates (versioned) ----------------
config = APIRouter(prefix="/v1", tags=["settlement configuration"], responses=ERROR_RESPONSES)
ConfigReader = Annotated[Principal, Depends(require(P.CONFIG_READ))]
ConfigWriter = Annotated[Principal, Depends(require(P.CONFIG_WRITE))]
CREATED: dict[int | str, dict[str, Any]] = {
    201: {"model": s.ConfigPutOut, "description": "A new version was stored"}
}
# Bounds on a configuration document sent over HTTP.
DOC_MAX_DEPTH = 6
DOC_MAX_NODES = 5_000
FX_IMPORT_MAX_RATES = 10_000


def _check_doc(value: Any, depth: int = 0, budget: list[int] | None = None) -> None:
    """No control characters anywhere (PostgreSQL JSON refuses NUL), bounded size."""
    budget = budget if budget is not None else [DOC_MAX_NODES]
    budget[0] -= 1
    if depth > DOC_MAX_DEPTH or budget[0] < 0:
        raise ApiError(422, "document_too_large", "the document is too deep or too large")
    if isinstance(value, str):
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise ApiError(422, "invalid_document", "control characters are not allowed")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_doc(k, depth + 1, budget)
            _check_doc(v, depth + 1, budget)
    elif isinstance(value, list):
        for v in value:
            _check_doc(v, depth + 1, budget)


def _auditing(c: Ctx, p: Principal, request: Request) -> Auditing:
    """The caller as the use case writes it on the audit trail, with its change."""
    return Auditing(c.bo.store, p.actor, source(request))


def _put_config(
    c: Ctx,
    p: Principal,
    request: Request,
    document: dict[str, Any],
    parse: Any,
    put: Any,
) -> Response:
    _check_doc(document)
    try:
        value = parse(document)
        outcome = put(value, c.app.clock.now(), by=_auditing(c, p, request))
    except ConfigConflict as exc:
        raise ApiError(409, "version_conflict", str(exc)) from None
    except ValueError as exc:  # ContractError and friends: the document is wrong
        raise ApiError(422, "invalid_document", str(exc)) from None
    body = s.ConfigPutOut(outcome=outcome.value).model_dump()
    return JSONResponse(body, status_code=201 if outcome is PutOutcome.CREATED else 200)


@config.get("/contracts", response_model=list[dict[str, Any]])
def list_contracts(c: CtxDep, _: ConfigReader, provider: DimValue = None) -> list[dict[str, Any]]:
    """Every version of every contract (optionally one provider's)."""
    return [codec.terms_to_dict(t) for t in c.app.settlement_config.contracts(provider)]


@config.post("/contracts", response_model=s.ConfigPutOut, responses={**CREATED, **CONFLICT})
def add_contract_version(
    document: dict[str, Any], request: Request, c: CtxDep, p: ConfigWriter
) -> Response:
    """Add a contract version (the same document again is a no-op). Audited."""
    cfg = c.app.settlement_config
    return _put_config(
        c,
        p,
        request,
        document,
        codec.terms_from_dict,
        cfg.put_contract,
    )


@config.get("/partner-trees/{operator}", response_model=s.PartnerTreeOut)
def get_partner_tree(operator: Id, c: CtxDep, _: ConfigReader) -> s.PartnerTreeOut:
    tree = c.app.settlement_config.partner_tree(operator)
    return s.PartnerTreeOut(
        agents=[codec.agent_to_dict(a) for a in tree.agents],
        placements=[codec.placement_to_dict(pl) for pl in tree.placements],
    )


@config.post(
    "/partner-trees/agents", response_model=s.ConfigPutOut, responses={**CREATED, **CONFLICT}
)
def add_agent_version(
    document: dict[str, Any], request: Request, c: CtxDep, p: ConfigWriter
) -> Response:
    """Add an agent (or a new version of its rates from an instant on). Audited."""
    cfg = c.app.settlement_config
    return _put_config(
        c,
        p,
        request,
        document,
        codec.agent_from_dict,
        cfg.put_agent,
    )


@config.post(
    "/partner-trees/placements", response_model=s.ConfigPutOut, responses={**CREATED, **CONFLICT}
)
def add_placement(
    document: dict[str, Any], request: Request, c: CtxDep, p: ConfigWriter
) -> Response:
    """Place (or move) an agent under a parent from an instant on. Audited."""
    cfg = c.app.settlement_config
    return _put_config(
        c,
        p,
        request,
        document,
        codec.placement_from_dict,
        cfg.put_placement,
    )


@config.get("/fx/rates", response_model=list[dict[str, Any]])
def list_fx_rates(c: CtxDep, _: ConfigReader) -> list[dict[str, Any]]:
    """Every FX rate as imported (base, quote, effective_at, rate, source)."""
    return [dict(d) for d in c.app.settlement_documents.all("fx_rate")]


@config.post("/fx/rates", response_model=s.FxImportOut)
def import_fx_rates(
    rates: list[dict[str, Any]], request: Request, c: CtxDep, p: ConfigWriter
) -> s.FxImportOut:
    """Import rates; an identical rate again is counted as existing, a different one conflicts."""
    if len(rates) > FX_IMPORT_MAX_RATES:
        raise ApiError(422, "document_too_large", f"at most {FX_IMPORT_MAX_RATES} rates at once")
    for r in rates:
        _check_doc(r)
    try:
        parsed = [codec.rate_from_dict(r) for r in rates]
        result = c.app.settlement_config.put_fx_rates(
            parsed, c.app.clock.now(), by=_auditing(c, p, request), origin="api"
        )
    except ValueError as exc:
        raise ApiError(422, "invalid_document", str(exc)) from None
    return s.FxImportOut(
        created=result.created,
        existing=result.existing,
        conflicts=[codec.rate_to_dict(r) for r in result.conflicts],
    )


SecretName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


@admin.get("/provider-secrets", response_model=list[s.ProviderSecretOut])
def list_provider_secrets(
    c: CtxDep, _: Annotated[Principal, Depends(require(P.PROVIDER_SECRETS_READ))]
) -> list[s.ProviderSecretOut]:
    """Which provider secrets are set, by whom and when. Values are never returned."""
    return [
        s.ProviderSecretOut(
            provider=i.provider, name=i.name, updated_at=i.updated_at, updated_by=i.updated_by
        )
        for i in c.bo.provider_secrets.names()
    ]


@admin.put("/provider-secrets/{provider}/{name}", status_code=204, response_class=Response)
def set_provider_secret(
    provider: SecretName,
    name: SecretName,
    body: s.ProviderSecretIn,
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.PROVIDER_SECRETS_WRITE))],
) -> Response:
    """Set a provider credential; it is sealed with AES-GCM at rest. Audited (without it)."""
    c.bo.provider_secrets.set(provider, name, body.value, actor=p.actor, source=source(request))
    return Response(status_code=204)


@admin.delete("/provider-secrets/{provider}/{name}", status_code=204, response_class=Response)
def delete_provider_secret(
    provider: SecretName,
    name: SecretName,
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.PROVIDER_SECRETS_WRITE))],
) -> Response:
    if not c.bo.provider_secrets.delete(provider, name, actor=p.actor, source=source(request)):
        raise ApiError(404, "secret_not_found", f"no secret {provider}/{name}")
    return Response(status_code=204)


def create_api(app: App, backoffice: Backoffice) -> FastAPI:
    api = FastAPI(
        title="Tally back-office API",
        version="1",
        description=(
            "Accounts, balances, transfers, the ledger's quarantine, users, API keys and the "
            "audit trail. Amounts are decimal strings; times are ISO 8601 UTC; lists page "
            'with cursors; errors are {"error": {"code", "message"}}.'
        ),
    )
    api.state.ctx = Ctx(app, backoffice)
    install_error_handlers(api)
    for router in (ops, auth, ledger, settlement, config, admin, ingest.router):
        api.include_router(router)
    # Inside the metrics, so that refusals at the edge are counted too.
    api.add_middleware(EdgeMiddleware, api=api)
    api.add_middleware(MetricsMiddleware, api=api)
    return api
