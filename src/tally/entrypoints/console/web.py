"""Rendering and identity for the console's pages: templates, the viewer, errors as pages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from tally.auth.model import Principal, PrincipalKind, SessionStage
from tally.auth.policy import Permission
from tally.auth.service import SESSION_PREFIX
from tally.entrypoints.api.deps import Ctx, ctx
from tally.entrypoints.console.security import (
    PREFIX,
    SESSION_COOKIE,
    CsrfRefused,
    FormInvalid,
    csrf_for,
)

P = Permission
CtxDep = Annotated[Ctx, Depends(ctx)]

ENV = Environment(
    loader=PackageLoader("tally.entrypoints.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def static_dir() -> str:
    return str(resources.files("tally.entrypoints.console") / "static")


# (path, label, any of these permissions shows it)
NAV: tuple[tuple[str, str, tuple[Permission, ...]], ...] = (
    ("/console/", "Overview", ()),
    ("/console/ledger", "Ledger", (P.LEDGER_READ,)),
    ("/console/settlement", "Settlement", (P.CONFIG_READ, P.STATEMENTS_READ, P.COMMISSIONS_READ)),
    ("/console/quarantine", "Quarantine", (P.QUARANTINE_READ,)),
    ("/console/reconciliation", "Reconciliation", (P.RECONCILIATION_READ,)),
    ("/console/alerts", "Alerts", (P.ALERTS_READ,)),
    ("/console/payouts", "Payouts", (P.PAYOUTS_READ,)),
    ("/console/audit", "Audit trail", (P.AUDIT_READ,)),
    ("/console/admin", "Users and keys", (P.USERS_READ, P.API_KEYS_READ)),
)


class LoginNeeded(Exception):
    """No session, or one that expired or was revoked: to the login page."""


class EnrolmentNeeded(Exception):
    """A session that may only enrol a TOTP second factor."""


class PageError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Viewer:
    principal: Principal
    token: str

    @property
    def csrf(self) -> str:
        return csrf_for(self.token)

    def may(self, *permissions: Permission) -> bool:
        return any(self.principal.may(p) for p in permissions)

    def require(self, *permissions: Permission) -> None:
        if not self.may(*permissions):
            names = " or ".join(p.value for p in permissions)
            raise PageError(403, "forbidden", f"this needs the {names} permission")

    @property
    def nav(self) -> list[tuple[str, str]]:
        return [(href, label) for href, label, need in NAV if not need or self.may(*need)]


def _session(request: Request, c: Ctx) -> tuple[str, Principal]:
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token.startswith(SESSION_PREFIX):
        raise LoginNeeded
    found = c.bo.auth.authenticate(token)
    if found is None or found.kind is not PrincipalKind.USER:
        raise LoginNeeded
    return token, found


def viewer(request: Request, c: CtxDep) -> Viewer:
    """The logged-in staff user or partner with a full session; else to login/enrolment."""
    token, found = _session(request, c)
    if found.stage is not SessionStage.FULL:
        raise EnrolmentNeeded
    return Viewer(found, token)


def enrolling_viewer(request: Request, c: CtxDep) -> Viewer:
    token, found = _session(request, c)
    return Viewer(found, token)


ViewerDep = Annotated[Viewer, Depends(viewer)]


def render(
    request: Request,
    template: str,
    who: Viewer | None,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    page = ENV.get_template(template).render(
        request=request,
        viewer=who,
        path=request.url.path,
        prefix=PREFIX,
        **values,
    )
    return HTMLResponse(page, status_code=status)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def field_errors(code: str, message: str, fields: Mapping[str, str]) -> dict[str, str]:
    """The API's error (code and message) placed next to the field it is about."""
    return {fields.get(code, "_form"): f"{message} ({code})"}


def install_error_pages(api: FastAPI) -> None:
    @api.exception_handler(LoginNeeded)
    async def login_needed(request: Request, _: LoginNeeded) -> Response:
        if request.url.path.endswith("/live"):
            return Response(status_code=401)
        response = see_other(f"{PREFIX}/login")
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    @api.exception_handler(EnrolmentNeeded)
    async def enrolment_needed(_: Request, __: EnrolmentNeeded) -> Response:
        return see_other(f"{PREFIX}/enrol")

    @api.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, _: CsrfRefused) -> Response:
        return render(
            request,
            "error.html",
            None,
            403,
            code="csrf_refused",
            message="the form's CSRF token is missing or wrong; reload the page and try again",
        )

    @api.exception_handler(FormInvalid)
    async def form_invalid(request: Request, exc: FormInvalid) -> Response:
        return render(request, "error.html", None, 400, code="invalid_form", message=str(exc))

    @api.exception_handler(PageError)
    async def page_error(request: Request, exc: PageError) -> Response:
        return render(request, "error.html", None, exc.status, code=exc.code, message=exc.message)
