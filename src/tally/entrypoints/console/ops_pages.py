"""The console's Alerts and Payouts pages: each calls the API router's own functions, so
the permissions, the partner scope, the audit records and the error messages are the
API's (alerts.read / alerts.act; payouts.read / payouts.approve)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from tally.auth.policy import Permission
from tally.entrypoints.api.deps import Ctx
from tally.entrypoints.api.errors import ApiError
from tally.entrypoints.api.routers import alerts as alert_routes
from tally.entrypoints.api.routers import payouts as payout_routes
from tally.entrypoints.console.security import PREFIX, check_csrf, read_form
from tally.entrypoints.console.web import CtxDep, PageError, Viewer, ViewerDep, render, viewer

P = Permission
router = APIRouter(prefix=PREFIX, include_in_schema=False)
LIST_LIMIT = 500  # alerts read for one page (the router's own limit at most)
Label = Annotated[str, Query(max_length=128, pattern=r"^[A-Za-z0-9._:/*-]*$")]
AlertId = Annotated[int, Path(ge=1, le=2**62)]


async def _posted(request: Request, c: Ctx) -> tuple[Viewer, dict[str, str]]:
    form = await read_form(request)
    who = await run_in_threadpool(viewer, request, c)
    check_csrf(form, who.token)
    return who, form


def _message(exc: ApiError) -> str:
    return f"{exc.message} ({exc.code})"


# -- alerts -------------------------------------------------------------------------------


def _alerts_page(
    request: Request,
    c: Ctx,
    who: Viewer,
    status: int = 200,
    *,
    active: bool = True,
    provider: str = "",
    kind: str = "",
    **extra: Any,
) -> HTMLResponse:
    who.require(P.ALERTS_READ)
    page = alert_routes.list_alerts(
        c, who.principal, active=active, provider=provider or None, kind=kind or None,
        limit=LIST_LIMIT,
    )  # fmt: skip
    # The API lists by id; a person works the most money at risk first.
    items = sorted(page.items, key=lambda a: (-int(a.priority), -a.severity.order, a.id))
    staff = who.principal.unscoped
    silences = alert_routes.list_silences(c, who.principal, active=False) if staff else []
    # "silence:3" with the silence's reason (staff: partners see no silences).
    reasons = {f"silence:{x['id']}": x["reason"] for x in silences}
    values: dict[str, Any] = {
        "alerts": items,
        "reasons": reasons,
        "more": page.next_cursor is not None,
        "filters": {"active": active, "provider": provider, "kind": kind},
        "silences": alert_routes.list_silences(c, who.principal, active=True) if staff else [],
        "may_act": who.may(P.ALERTS_ACT),
        "may_silence": who.may(P.ALERTS_ACT) and staff,
        "errors": {},
        "form": {},
        "done": "",
    }
    values.update(extra)
    return render(request, "alerts.html", who, status, **values)


@router.get("/alerts")
def alerts(
    request: Request,
    c: CtxDep,
    who: ViewerDep,
    active: bool = True,
    provider: Label = "",
    kind: Label = "",
) -> HTMLResponse:
    return _alerts_page(request, c, who, active=active, provider=provider, kind=kind)


def _alert_page(
    request: Request, c: Ctx, who: Viewer, alert_id: int, status: int = 200, **extra: Any
) -> HTMLResponse:
    who.require(P.ALERTS_READ)
    try:
        detail = alert_routes.get_alert(alert_id, c, who.principal)
    except ApiError as exc:
        raise PageError(exc.status, exc.code, exc.message) from None
    values: dict[str, Any] = {
        "d": detail, "may_act": who.may(P.ALERTS_ACT), "errors": {}, "done": "",
    }  # fmt: skip
    values.update(extra)
    return render(request, "alert.html", who, status, **values)


@router.get("/alerts/{alert_id}")
def alert(request: Request, c: CtxDep, who: ViewerDep, alert_id: AlertId) -> HTMLResponse:
    return _alert_page(request, c, who, alert_id)


@router.post("/alerts/{alert_id}/acknowledge")
async def acknowledge(request: Request, c: CtxDep, alert_id: AlertId) -> HTMLResponse:
    """Acknowledge (alerts.act): the API's use case, audited in the change's transaction.
    An alert the viewer may not see is not found, as on its page."""
    who, _ = await _posted(request, c)
    who.require(P.ALERTS_ACT)

    def act() -> None:
        alert_routes.get_alert(alert_id, c, who.principal)  # scope: 404 if not visible
        alert_routes.acknowledge(alert_id, request, c, who.principal)

    try:
        await run_in_threadpool(act)
    except ApiError as exc:
        if exc.status == 404:
            raise PageError(404, exc.code, exc.message) from None
        return _alert_page(request, c, who, alert_id, exc.status, errors={"_form": _message(exc)})
    return _alert_page(request, c, who, alert_id, done="acknowledged")


SILENCE_FIELDS = ("matchers", "reason", "ends_at")


def _silence_field(exc_message: str) -> str:
    """Which field a refused silence is about (the API's message names it)."""
    text = exc_message.lower()
    if "reason" in text:
        return "reason"
    if "end" in text or "last" in text:
        return "ends_at"
    return "matchers"


@router.post("/alerts/silences")
async def silence(request: Request, c: CtxDep) -> HTMLResponse:
    """Silence (alerts.act, staff): matchers one a line, a reason, an expiry."""
    who, form = await _posted(request, c)
    who.require(P.ALERTS_ACT)
    if not who.principal.unscoped:
        raise PageError(403, "forbidden", "only staff see silences, rules and playbook actions")
    matchers = [m.strip() for m in form.get("matchers", "").splitlines() if m.strip()]
    body = {"matchers": matchers, "reason": form.get("reason", "").strip(),
            "ends_at": form.get("ends_at", "").strip()}  # fmt: skip
    errors: dict[str, str] = {}
    try:
        parsed = alert_routes.SilenceIn.model_validate(body)
    except ValidationError as exc:
        for e in exc.errors():
            name = str(e["loc"][0]) if e["loc"] else "_form"
            field = name if name in SILENCE_FIELDS else "_form"
            errors.setdefault(field, f"{e['msg']} (invalid_request)")
        return _alerts_page(request, c, who, 422, errors=errors, form=form)
    try:
        made = await run_in_threadpool(
            alert_routes.create_silence, request, c, who.principal, parsed
        )
    except ApiError as exc:
        errors[_silence_field(exc.message)] = _message(exc)
        return _alerts_page(request, c, who, exc.status, errors=errors, form=form)
    return _alerts_page(request, c, who, done=f"silence {made['id']} in force")


# -- payouts ------------------------------------------------------------------------------


def _payouts_page(
    request: Request, c: Ctx, who: Viewer, status: int = 200, **extra: Any
) -> HTMLResponse:
    who.require(P.PAYOUTS_READ)
    p = who.principal
    staff = payout_routes._visible(c, p) is None
    values: dict[str, Any] = {
        "runs": payout_routes.list_runs(c, p) if staff else [],
        "positions": payout_routes.positions(c, p),
        "staff": staff,
    }
    values.update(extra)
    return render(request, "payouts.html", who, status, **values)


@router.get("/payouts")
def payouts(request: Request, c: CtxDep, who: ViewerDep) -> HTMLResponse:
    return _payouts_page(request, c, who)


RunId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


def _run_page(
    request: Request, c: Ctx, who: Viewer, run_id: str, status: int = 200, **extra: Any
) -> HTMLResponse:
    who.require(P.PAYOUTS_READ)
    try:
        run = payout_routes.get_run(run_id, c, who.principal)
        paid = payout_routes.run_payouts(run_id, c, who.principal)
    except ApiError as exc:
        raise PageError(exc.status, exc.code, exc.message) from None
    maker = run.maker == who.principal.actor
    values: dict[str, Any] = {
        "run": run,
        "payouts": paid,
        "may_approve": who.may(P.PAYOUTS_APPROVE) and run.status == "awaiting_approval",
        "is_maker": maker,
        "errors": {},
        "done": "",
    }
    values.update(extra)
    return render(request, "payout_run.html", who, status, **values)


@router.get("/payouts/runs/{run_id}")
def payout_run(request: Request, c: CtxDep, who: ViewerDep, run_id: RunId) -> HTMLResponse:
    return _run_page(request, c, who, run_id)


@router.post("/payouts/runs/{run_id}/approve")
async def approve_run(request: Request, c: CtxDep, run_id: RunId) -> HTMLResponse:
    """The checker's approval with a fresh TOTP code (payouts.approve, not the maker)."""
    who, form = await _posted(request, c)
    who.require(P.PAYOUTS_APPROVE)
    try:
        body = payout_routes.ApproveIn(totp=form.get("totp", "").strip())
    except ValidationError:
        errors = {"totp": "give the 6-digit code from your authenticator (invalid_request)"}
        return _run_page(request, c, who, run_id, 422, errors=errors)
    try:
        await run_in_threadpool(payout_routes.approve_run, run_id, body, request, c, who.principal)
    except ApiError as exc:
        if exc.status == 404:
            raise PageError(404, exc.code, exc.message) from None
        field = "totp" if exc.code == "second_factor_refused" else "_form"
        return _run_page(request, c, who, run_id, exc.status, errors={field: _message(exc)})
    return _run_page(request, c, who, run_id, done="approved: the worker pays it now")
