"""The console's pages under /console: each reads through the same services and router
functions as the API, with the same permissions and the same partner scope."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from tally.audit.service import Auditing
from tally.auth.model import OwnerRef
from tally.auth.policy import Permission, Role
from tally.auth.service import AuthError
from tally.entrypoints.api import schemas as s
from tally.entrypoints.api.deps import Ctx, source
from tally.entrypoints.api.errors import ApiError
from tally.entrypoints.api.routers import ledger as ledger_routes
from tally.entrypoints.api.routers import settlement as settlement_routes
from tally.entrypoints.console import overview as ov
from tally.entrypoints.console.gateway_metrics import GatewayMetrics
from tally.entrypoints.console.security import (
    LOGIN_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    CsrfRefused,
    check_csrf,
    cookie_secure,
    new_login_token,
    read_form,
    same,
)
from tally.entrypoints.console.web import (
    CtxDep,
    PageError,
    Viewer,
    ViewerDep,
    enrolling_viewer,
    field_errors,
    render,
    see_other,
    viewer,
)
from tally.kernel.page import InvalidCursor
from tally.ledger.model import OwnerKind
from tally.quarantine.inputs import Status
from tally.quarantine.ledger import Fix, QuarantineError
from tally.settlement.engine import PeriodCloseError
from tally.settlement.service import NoEvents, SettlementWorker

P = Permission
router = APIRouter(prefix=PREFIX, include_in_schema=False)
PAGE_SIZE = 50
LIVE_TICK_S = 0.5  # how often the live feed looks for changed figures
LIVE_REAUTH_S = 10.0  # how often a live feed checks that its session still stands
# A feed ends after this long and the browser reconnects (EventSource does, after the
# retry interval): a server stopping waits for no stream longer than this.
LIVE_MAX_S = 25.0


class ConsoleState:
    """What the console keeps between requests: the live feed's cache, the gateway."""

    def __init__(self, gateway: GatewayMetrics | None) -> None:
        self.cache = ov.LiveCache(max_age_s=LIVE_TICK_S)
        self.gateway = gateway


def _state(request: Request) -> ConsoleState:
    found: ConsoleState = request.app.state.console
    return found


async def _posted(
    request: Request, c: Ctx, *, enrolling: bool = False
) -> tuple[Viewer, dict[str, str]]:
    """The form of a state-changing request, once its session and CSRF token are checked."""
    form = await read_form(request)
    who = await run_in_threadpool(enrolling_viewer if enrolling else viewer, request, c)
    check_csrf(form, who.token)
    return who, form


# -- login, enrolment, logout -------------------------------------------------------------

LOGIN_FIELDS = {
    "invalid_credentials": "password",
    "mfa_required": "totp_code",
    "invalid_mfa_code": "totp_code",
    "too_many_attempts": "_form",
}


def _login_page(
    request: Request, errors: dict[str, str], username: str = "", status: int = 200
) -> HTMLResponse:
    token = new_login_token()
    response = render(
        request, "login.html", None, status, errors=errors, username=username, login_csrf=token
    )
    response.set_cookie(
        LOGIN_COOKIE, token, httponly=True, samesite="strict", path=PREFIX,
        secure=cookie_secure(request),
    )  # fmt: skip
    return response


@router.get("/login")
def login_form(request: Request) -> HTMLResponse:
    return _login_page(request, {})


@router.post("/login")
async def login(request: Request, c: CtxDep) -> Response:
    form = await read_form(request)
    if not same(form.get("csrf", ""), request.cookies.get(LOGIN_COOKIE, "")):
        raise CsrfRefused
    username = form.get("username", "")[:200]
    code = form.get("totp_code", "").strip() or None
    try:
        result = await run_in_threadpool(
            c.bo.auth.login, username, form.get("password", ""), code, source=source(request)
        )
    except AuthError as exc:
        errors = field_errors(exc.code, exc.message, LOGIN_FIELDS)
        status = 429 if exc.code == "too_many_attempts" else 401
        return _login_page(request, errors, username, status)
    response = see_other(f"{PREFIX}/")
    response.set_cookie(
        SESSION_COOKIE, result.token, httponly=True, samesite="strict", path=PREFIX,
        secure=cookie_secure(request),
    )  # fmt: skip
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


@router.post("/logout")
async def logout(request: Request, c: CtxDep) -> Response:
    who, _ = await _posted(request, c, enrolling=True)
    await run_in_threadpool(c.bo.auth.logout, who.principal, source=source(request))
    response = see_other(f"{PREFIX}/login")
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


@router.get("/enrol")
def enrol_start(
    request: Request, who: Annotated[Viewer, Depends(enrolling_viewer)]
) -> HTMLResponse:
    """A page to start enrolment from: a secret is made only by a POST (it changes state)."""
    return render(request, "enrol.html", who, secret="", uri="", errors={})


@router.post("/enrol/begin")
async def enrol_begin(request: Request, c: CtxDep) -> HTMLResponse:
    who, _ = await _posted(request, c, enrolling=True)
    try:
        found = await run_in_threadpool(
            lambda: c.bo.auth.begin_enrolment(who.principal, source=source(request))
        )
    except AuthError as exc:
        raise PageError(409, exc.code, exc.message) from None
    return render(request, "enrol.html", who, secret=found.secret, uri=found.uri, errors={})


@router.post("/enrol")
async def enrol(request: Request, c: CtxDep) -> Response:
    who, form = await _posted(request, c, enrolling=True)
    try:
        token = await run_in_threadpool(
            c.bo.auth.confirm_enrolment, who.principal, form.get("code", ""),
            source=source(request),
        )  # fmt: skip
    except AuthError as exc:
        errors = field_errors(exc.code, exc.message, {"invalid_mfa_code": "code"})
        return render(
            request, "enrol.html", who, 422, secret=form.get("secret", ""),
            uri="", errors=errors,
        )  # fmt: skip
    response = see_other(f"{PREFIX}/")
    response.set_cookie(
        SESSION_COOKIE, token, httponly=True, samesite="strict", path=PREFIX,
        secure=cookie_secure(request),
    )  # fmt: skip
    return response


# -- overview and its live feed -----------------------------------------------------------


def _view_key(who: Viewer) -> tuple[object, ...]:
    p = who.principal
    return (tuple(sorted(p.roles)), tuple(sorted(p.scope)))


@router.get("/")
def overview(request: Request, c: CtxDep, who: ViewerDep) -> HTMLResponse:
    found = ov.build(c, who.principal, _state(request).gateway)
    return render(request, "overview.html", who, o=found)


@router.get("/live")
async def live(request: Request, c: CtxDep, who: ViewerDep) -> StreamingResponse:
    """Server-sent events: the overview's values whose text changed, as one JSON object."""
    state = _state(request)
    key = _view_key(who)
    loop = asyncio.get_running_loop()

    def snapshot() -> dict[str, str]:
        return state.cache.get(key, lambda: ov.build(c, who.principal, state.gateway).live())

    async def events() -> AsyncIterator[bytes]:
        sent: dict[str, str] = {}
        checked = loop.time()
        yield b"retry: 500\n\n"
        ends = loop.time() + LIVE_MAX_S
        while loop.time() < ends and not await request.is_disconnected():
            if loop.time() - checked > LIVE_REAUTH_S:
                checked = loop.time()
                if await run_in_threadpool(c.bo.auth.authenticate, who.token) is None:
                    yield b"event: ended\ndata: {}\n\n"
                    return
            values = state.cache.peek(key)
            if values is None:  # stale: built (once for every feed of this view) off the loop
                values = await run_in_threadpool(snapshot)
            changed = {k: v for k, v in values.items() if sent.get(k) != v}
            if changed:
                sent.update(changed)
                yield b"data: " + json.dumps(changed).encode() + b"\n\n"
            await asyncio.sleep(LIVE_TICK_S)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# -- ledger explorer ----------------------------------------------------------------------


def _instant(text: str) -> datetime | None:
    if not text:
        return None
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        return None
    return found if found.tzinfo is not None else None


Text = Annotated[str, Query(max_length=200)]


@router.get("/ledger")
def ledger(
    request: Request,
    c: CtxDep,
    who: ViewerDep,
    account: Text = "",
    owner: Text = "",
    at: Text = "",
    cursor: Annotated[str, Query(max_length=18)] = "",
) -> HTMLResponse:
    who.require(P.LEDGER_READ)
    p = who.principal
    errors: dict[str, str] = {}
    values: dict[str, Any] = {"account": account.strip(), "owner": owner.strip(), "at": at}
    found: dict[str, Any] = {}
    if values["account"]:
        try:
            acc = ledger_routes._visible_account(c, p, values["account"])
        except ApiError as exc:
            errors["account"] = f"{exc.message} ({exc.code})"
        else:
            found["account"] = s.AccountOut.of(acc)
            now_balance = c.app.ledger.balance(acc.id)
            found["balance"] = s.BalanceOut.of(acc, now_balance, None) if now_balance else None
            if at:
                instant = _instant(at)
                if instant is None:
                    errors["at"] = (
                        "an ISO 8601 instant with its offset, e.g. 2026-03-01T00:00:00+00:00"
                    )
                else:
                    then = c.app.ledger.balance(acc.id, instant)
                    found["balance_at"] = s.BalanceOut.of(acc, then, instant) if then else None
            try:
                page = c.app.ledger.account_transfers(
                    acc.id, cursor=cursor or None, limit=PAGE_SIZE
                )
            except (InvalidCursor, ValueError) as exc:
                errors["cursor"] = str(exc)
            else:
                found["transfers"] = [s.TransferOut.of(t) for t in page.items]
                found["next_cursor"] = page.next_cursor
    elif values["owner"]:
        try:
            ref = OwnerRef.parse(values["owner"])
            found["owned"] = ledger_routes.owner_balances(ref.kind, ref.id, c, p)
        except ValueError:
            errors["owner"] = "an owner is '<kind>:<id>', e.g. partner:pa or operator:op1"
        except ApiError as exc:
            errors["owner"] = f"{exc.message} ({exc.code})"
    status = 404 if any("not_found" in e for e in errors.values()) else 200
    return render(request, "ledger.html", who, status, values=values, found=found, errors=errors)


@router.get("/ledger/transfers/{transfer_id}")
def transfer(request: Request, c: CtxDep, who: ViewerDep, transfer_id: str) -> HTMLResponse:
    who.require(P.LEDGER_READ)
    try:
        shown = ledger_routes.get_transfer(transfer_id[:128], c, who.principal)
    except ApiError as exc:
        raise PageError(404, exc.code, exc.message) from None
    # The chain: the pending transfer this one posts or voids, back to its start.
    chain: list[s.TransferOut] = []
    link = shown.pending_id
    while link and len(chain) < 16:
        try:
            linked = ledger_routes.get_transfer(link, c, who.principal)
        except ApiError:
            break
        chain.append(linked)
        link = linked.pending_id
    return render(request, "transfer.html", who, t=shown, chain=chain)


# -- settlement ---------------------------------------------------------------------------


def _tree(c: Ctx, who: Viewer) -> list[dict[str, Any]]:
    """Each operator's partner tree as it stands now, cut to what the viewer may see."""
    visible = c.bo.scope.visible_owners(who.principal)
    now = c.app.clock.now()
    agents = c.app.settlement_config.snapshot().agents
    out = []
    for operator in sorted({a.operator for a in agents}):
        tree = c.app.settlement_config.partner_tree(operator)
        ids = sorted(
            a for a in tree.agent_ids()
            if visible is None or OwnerRef(OwnerKind.PARTNER, a) in visible
        )  # fmt: skip
        children: dict[str | None, list[str]] = {}
        for agent in ids:
            try:
                parent = tree.parent_of(agent, now)
            except ValueError:
                parent = None
            if parent not in ids:
                parent = None
            children.setdefault(parent, []).append(agent)
        if ids:
            out.append({"operator": operator, "children": children})
    return out


def _periods(c: Ctx, who: Viewer) -> list[dict[str, str]]:
    visible = c.bo.scope.visible_owners(who.principal)
    figures = c.app.settlement_store.load_figures()
    closed = {
        (st.contract_id, st.operator, st.period): st for st in c.app.settlement_store.statements()
    }
    keys = {(b.contract_id, b.provider, b.operator, b.period) for b in figures.totals}
    rows = []
    for contract_id, provider, operator, period in sorted(keys):
        if visible is not None and OwnerRef(OwnerKind.OPERATOR, operator) not in visible:
            continue
        state = "closed" if (contract_id, operator, period) in closed else "open"
        rows.append(
            {"contract": contract_id, "provider": provider, "operator": operator,
             "period": period, "state": state}
        )  # fmt: skip
    return rows


def _settlement_page(
    request: Request, c: Ctx, who: Viewer, status: int = 200, **extra: Any
) -> HTMLResponse:
    who.require(P.CONFIG_READ, P.STATEMENTS_READ, P.COMMISSIONS_READ)
    p = who.principal
    contracts = (
        sorted(c.app.settlement_config.contracts(), key=lambda t: (t.contract_id, t.version))
        if who.may(P.CONFIG_READ)
        else []
    )
    statements = settlement_routes._visible_statements(c, p) if who.may(P.STATEMENTS_READ) else []
    values: dict[str, Any] = {
        "contracts": contracts,
        "trees": _tree(c, who),
        "periods": _periods(c, who)
        if who.may(P.SETTLEMENT_FIGURES_READ, P.STATEMENTS_READ)
        else [],
        "statements": sorted(statements, key=lambda st: (st.period, st.contract_id, st.operator)),
        "may_close": who.may(P.SETTLEMENT_CLOSE),
        "errors": {},
        "closed": None,
        "form": {},
    }
    values.update(extra)
    return render(request, "settlement.html", who, status, **values)


@router.get("/settlement")
def settlement(request: Request, c: CtxDep, who: ViewerDep) -> HTMLResponse:
    return _settlement_page(request, c, who)


@router.post("/settlement/close")
async def close_period(request: Request, c: CtxDep) -> HTMLResponse:
    """Close a period (finance): freeze it, post its close, write its statement, audited."""
    who, form = await _posted(request, c)
    who.require(P.SETTLEMENT_CLOSE)
    contract_id = form.get("contract", "").strip()
    operator = form.get("operator", "").strip()
    period = form.get("period", "").strip()
    errors: dict[str, str] = {}
    for name, value in (("contract", contract_id), ("operator", operator), ("period", period)):
        if not value or len(value) > 128:
            errors[name] = f"give the {name} (1 to 128 characters)"
    if form.get("confirm") != "yes":
        errors["confirm"] = "tick to confirm: closing freezes the period and cannot be undone"
    note = form.get("override_note", "").strip()[:1000]
    if errors:
        return _settlement_page(request, c, who, 422, errors=errors, form=form)

    def close() -> Any:
        worker = SettlementWorker(
            NoEvents(), c.app.settlement_store, c.app.settlement_config, c.app.clock,
            by=Auditing(c.bo.store, who.principal.actor, source(request)),
            breaks=c.bo.reconciliation,
        )  # fmt: skip
        return worker.close_period(contract_id, operator, period, override_breaks=note)

    try:
        statement = await run_in_threadpool(close)
    except PeriodCloseError as exc:
        errors["period"] = f"not closed: {exc} (period_not_closed)"
        return _settlement_page(request, c, who, 409, errors=errors, form=form)
    closed = {
        "contract": contract_id, "operator": operator, "period": period,
        "sha256": statement.sha256,
        "fee": ov.money(statement.fee.fee, statement.terms.settlement_currency),
        "currency": statement.terms.settlement_currency,
    }  # fmt: skip
    return _settlement_page(request, c, who, closed=closed)


@router.get("/settlement/statements/{contract_id}/{operator}/{period}")
def statement(
    request: Request,
    c: CtxDep,
    who: ViewerDep,
    contract_id: str,
    operator: str,
    period: str,
    format: Annotated[str, Query(pattern="^(html|json|csv)$")] = "html",
) -> Response:
    who.require(P.STATEMENTS_READ)
    try:
        body = settlement_routes.download_statement(
            contract_id, operator, period, c, who.principal,
            "csv" if format == "csv" else "json",
        )  # fmt: skip
    except ApiError as exc:
        raise PageError(404, exc.code, exc.message) from None
    if format != "html":
        name = f"statement-{contract_id}-{operator}-{period}.{format}"
        body.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return body
    document = json.loads(bytes(body.body))
    return render(
        request, "statement.html", who,
        key={"contract": contract_id, "operator": operator, "period": period},
        sha256=body.headers.get("X-Statement-SHA256", ""),
        pretty=json.dumps(document, indent=2, sort_keys=True),
    )  # fmt: skip


# -- quarantine ---------------------------------------------------------------------------


def _quarantine_page(
    request: Request, c: Ctx, who: Viewer, status: int = 200, **extra: Any
) -> HTMLResponse:
    who.require(P.QUARANTINE_READ)
    inputs = c.bo.ingest.inputs.entries(status=Status.OPEN, limit=PAGE_SIZE)
    rejections = ledger_routes.ledger_rejections(c, who.principal, None, PAGE_SIZE)
    problems = ledger_routes.settlement_problems(c, who.principal)
    values: dict[str, Any] = {
        "inputs": inputs.items,
        "rejections": rejections.items,
        "problems": problems,
        "may_redrive": who.may(P.QUARANTINE_REDRIVE),
        "errors": {},
        "done": "",
    }
    values.update(extra)
    return render(request, "quarantine.html", who, status, **values)


@router.get("/quarantine")
def quarantine(request: Request, c: CtxDep, who: ViewerDep) -> HTMLResponse:
    return _quarantine_page(request, c, who)


@router.get("/quarantine/inputs/{entry_id}")
def quarantine_entry(request: Request, c: CtxDep, who: ViewerDep, entry_id: int) -> HTMLResponse:
    who.require(P.QUARANTINE_READ)
    entry = c.bo.ingest.inputs.get(entry_id)
    if entry is None:
        raise PageError(404, "entry_not_found", f"no quarantine entry {entry_id}")
    return render(
        request, "entry.html", who, entry=entry, may_redrive=who.may(P.QUARANTINE_REDRIVE),
        errors={}, done="",
    )  # fmt: skip


@router.post("/quarantine/inputs/{entry_id}/{action}")
async def quarantine_act(request: Request, c: CtxDep, entry_id: int, action: str) -> HTMLResponse:
    who, form = await _posted(request, c)
    who.require(P.QUARANTINE_REDRIVE)
    if action not in ("redrive", "dismiss"):
        raise PageError(404, "not_found", "no such action")
    desk = c.bo.ingest.desk
    errors: dict[str, str] = {}
    done = ""
    try:
        if action == "redrive":
            outcome = await run_in_threadpool(
                lambda: desk.redrive(entry_id, actor=who.principal.actor, source=source(request))
            )
            done = ("re-driven: " if outcome.accepted else "refused again: ") + outcome.detail
        else:
            note = form.get("note", "")[:1000]
            await run_in_threadpool(
                lambda: desk.dismiss(
                    entry_id, actor=who.principal.actor, note=note, source=source(request)
                )
            )
            done = "dismissed"
    except QuarantineError as exc:
        if exc.code == "entry_not_found":
            raise PageError(404, exc.code, exc.message) from None
        errors[{"note_required": "note"}.get(exc.code, "_form")] = f"{exc.message} ({exc.code})"
    entry = c.bo.ingest.inputs.get(entry_id)
    return render(
        request, "entry.html", who, 409 if errors else 200, entry=entry,
        may_redrive=True, errors=errors, done=done,
    )  # fmt: skip


@router.post("/quarantine/ledger/{transfer_id}/redrive")
async def ledger_redrive(request: Request, c: CtxDep, transfer_id: str) -> HTMLResponse:
    who, form = await _posted(request, c)
    who.require(P.QUARANTINE_REDRIVE)
    fix = Fix(
        form.get("debit_account_id", "").strip()[:128] or None,
        form.get("credit_account_id", "").strip()[:128] or None,
        form.get("code", "").strip()[:64] or None,
    )
    try:
        result = await run_in_threadpool(
            lambda: c.bo.quarantine.redrive(
                transfer_id[:128], fix, actor=who.principal.actor, source=source(request)
            )
        )
    except QuarantineError as exc:
        errors = {f"rej:{transfer_id}": f"{exc.message} ({exc.code})"}
        return _quarantine_page(request, c, who, 409, errors=errors)
    done = f"{transfer_id}: {result.code.slug}"
    return _quarantine_page(request, c, who, done=done)


# -- reconciliation, audit ----------------------------------------------------------------


@router.get("/reconciliation")
def reconciliation(
    request: Request,
    c: CtxDep,
    who: ViewerDep,
    cursor: Annotated[str, Query(max_length=18)] = "",
) -> HTMLResponse:
    who.require(P.RECONCILIATION_READ)
    service = c.bo.reconciliation
    try:
        page = service.break_page(cursor=cursor or None, limit=PAGE_SIZE)
    except InvalidCursor as exc:
        raise PageError(422, "invalid_cursor", str(exc)) from None
    from tally.entrypoints.api.routers.reconciliation import BreakOut

    now = service.clock.now()
    breaks = [BreakOut.of(k, now) for k in page.items]
    return render(request, "reconciliation.html", who, breaks=breaks, next_cursor=page.next_cursor)


@router.get("/audit")
def audit(
    request: Request,
    c: CtxDep,
    who: ViewerDep,
    cursor: Annotated[str, Query(max_length=18)] = "",
    verify: bool = False,
) -> HTMLResponse:
    """A page of the trail; with ``verify`` the whole chain is walked and checked (as
    /v1/audit-records/verification does), which takes as long as the trail is long."""
    who.require(P.AUDIT_READ)
    try:
        page = c.bo.audit.page(cursor=cursor or None, limit=PAGE_SIZE)
    except (InvalidCursor, ValueError) as exc:
        raise PageError(422, "invalid_cursor", str(exc)) from None
    checked, problems = c.bo.audit.verify() if verify else (None, [])
    return render(
        request, "audit.html", who,
        records=[s.AuditRecordOut.of(r) for r in page.items], next_cursor=page.next_cursor,
        checked=checked, problems=[s.ProblemOut.of(x) for x in problems],
    )  # fmt: skip


# -- users and API keys -------------------------------------------------------------------

USER_FIELDS = {
    "invalid_username": "username",
    "username_taken": "username",
    "password_rejected": "password",
    "scope_required": "scope",
    "invalid_scope": "scope",
    "invalid_roles": "roles",
}
KEY_FIELDS = {
    "scope_required": "key_scope",
    "invalid_scope": "key_scope",
    "invalid_roles": "key_roles",
}


def _admin_page(
    request: Request, c: Ctx, who: Viewer, status: int = 200, **extra: Any
) -> HTMLResponse:
    who.require(P.USERS_READ, P.API_KEYS_READ)
    values: dict[str, Any] = {
        "users": [s.UserOut.of(u) for u in c.bo.auth.list_users(limit=500).items]
        if who.may(P.USERS_READ) else [],
        "keys": [s.ApiKeyOut.of(k) for k in c.bo.auth.list_api_keys(limit=500).items]
        if who.may(P.API_KEYS_READ) else [],
        "roles": [r.value for r in Role],
        "may_users": who.may(P.USERS_WRITE),
        "may_keys": who.may(P.API_KEYS_WRITE),
        "errors": {},
        "form": {},
        "created_token": "",
        "done": "",
    }  # fmt: skip
    values.update(extra)
    return render(request, "admin.html", who, status, **values)


@router.get("/admin")
def admin(request: Request, c: CtxDep, who: ViewerDep) -> HTMLResponse:
    return _admin_page(request, c, who)


def _roles_and_scope(
    form: dict[str, str], roles_field: str, scope_field: str
) -> tuple[frozenset[Role], frozenset[OwnerRef]]:
    roles = set()
    for role in Role:
        if form.get(f"{roles_field}.{role.value}") == "on":
            roles.add(role)
    scope = set()
    for item in form.get(scope_field, "").replace(",", " ").split():
        try:
            scope.add(OwnerRef.parse(item))
        except ValueError as exc:
            raise AuthError(
                "invalid_scope", f"scope entries are '<owner kind>:<id>': {exc}"
            ) from None
    return frozenset(roles), frozenset(scope)


@router.post("/admin/users")
async def create_user(request: Request, c: CtxDep) -> HTMLResponse:
    who, form = await _posted(request, c)
    who.require(P.USERS_WRITE)
    try:
        roles, scope = _roles_and_scope(form, "roles", "scope")
        user = await run_in_threadpool(
            lambda: c.bo.auth.create_user(
                who.principal.actor, form.get("username", "").strip(), form.get("password", ""),
                roles, scope=scope, source=source(request),
            )
        )  # fmt: skip
    except AuthError as exc:
        errors = field_errors(exc.code, exc.message, USER_FIELDS)
        return _admin_page(request, c, who, 422, errors=errors, form=form)
    return _admin_page(request, c, who, done=f"user {user.username} created")


@router.post("/admin/keys")
async def create_key(request: Request, c: CtxDep) -> HTMLResponse:
    who, form = await _posted(request, c)
    who.require(P.API_KEYS_WRITE)
    try:
        roles, scope = _roles_and_scope(form, "key_roles", "key_scope")
        name = form.get("name", "").strip()[:100]
        if not name:
            raise AuthError("invalid_name", "give the key a name")
        key, token = await run_in_threadpool(
            lambda: c.bo.auth.create_api_key(
                who.principal.actor, name, roles, scope=scope, source=source(request)
            )
        )
    except AuthError as exc:
        errors = field_errors(exc.code, exc.message, {**KEY_FIELDS, "invalid_name": "name"})
        return _admin_page(request, c, who, 422, errors=errors, form=form)
    return _admin_page(request, c, who, created_token=token, done=f"key {key.name} created")


@router.post("/admin/keys/{key_id}/revoke")
async def revoke_key(request: Request, c: CtxDep, key_id: str) -> HTMLResponse:
    who, _ = await _posted(request, c)
    who.require(P.API_KEYS_WRITE)
    try:
        await run_in_threadpool(
            lambda: c.bo.auth.revoke_api_key(
                who.principal.actor, key_id[:128], source=source(request)
            )
        )
    except AuthError as exc:
        return _admin_page(request, c, who, 404, errors={"_keys": f"{exc.message} ({exc.code})"})
    return _admin_page(request, c, who, done=f"key {key_id} revoked")
