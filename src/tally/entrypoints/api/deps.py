"""Request context, the caller's identity, and permission checks (deny by default)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tally.app.bootstrap import App, Backoffice
from tally.auth.model import ANONYMOUS, OwnerRef, Principal, PrincipalKind, SessionStage
from tally.auth.policy import Permission
from tally.auth.service import AuthError
from tally.entrypoints.api.edge import PRINCIPAL_STATE
from tally.entrypoints.api.errors import ApiError


@dataclass(frozen=True, slots=True)
class Ctx:
    app: App
    bo: Backoffice


def ctx(request: Request) -> Ctx:
    found: Ctx = request.app.state.ctx
    return found


def source(request: Request) -> str:
    return request.client.host if request.client else ""


bearer = HTTPBearer(
    auto_error=False, description="a session token (ts_...) from /v1/auth/login, or an API key"
)


def principal(
    request: Request,
    c: Annotated[Ctx, Depends(ctx)],
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    # Found already at the edge (before the body was read): not looked up twice.
    found_early: Principal | None = getattr(request.state, PRINCIPAL_STATE, None)
    if found_early is not None:
        return found_early
    if creds is None:
        return ANONYMOUS
    found = c.bo.auth.authenticate(creds.credentials)
    if found is None:
        raise ApiError(401, "invalid_token", "the token is unknown, expired or revoked")
    return found


def require(permission: Permission) -> Callable[[Principal], Principal]:
    def check(p: Annotated[Principal, Depends(principal)]) -> Principal:
        if p.kind is PrincipalKind.ANONYMOUS:
            raise ApiError(401, "unauthenticated", "log in or send an API key")
        if p.stage is not SessionStage.FULL:
            raise ApiError(403, "mfa_enrolment_required", "enrol a TOTP second factor first")
        if not p.may(permission):
            raise ApiError(403, "forbidden", f"this needs the {permission.value} permission")
        return p

    return check


def require_user(p: Annotated[Principal, Depends(principal)]) -> Principal:
    """Any staff user with a session, even one still enrolling MFA."""
    if p.kind is PrincipalKind.ANONYMOUS:
        raise ApiError(401, "unauthenticated", "log in first")
    if p.kind is not PrincipalKind.USER:
        raise ApiError(403, "forbidden", "only a staff user's session can do this")
    return p


def require_full_user(p: Annotated[Principal, Depends(require_user)]) -> Principal:
    if p.stage is not SessionStage.FULL:
        raise ApiError(403, "mfa_enrolment_required", "enrol a TOTP second factor first")
    return p


_STATUS = {
    "invalid_credentials": 401,
    "mfa_required": 401,
    "invalid_mfa_code": 401,
    "too_many_attempts": 429,
    "not_found": 404,
    "username_taken": 409,
    "mfa_already_enrolled": 409,
    "mfa_not_pending": 409,
    "last_admin": 409,
    "not_a_session": 400,
}


def auth_failure(exc: AuthError) -> ApiError:
    headers = {} if exc.retry_after_s is None else {"Retry-After": str(exc.retry_after_s)}
    return ApiError(_STATUS.get(exc.code, 422), exc.code, exc.message, headers)


def parse_scope(items: list[str]) -> frozenset[OwnerRef]:
    try:
        return frozenset(OwnerRef.parse(i) for i in items)
    except ValueError as exc:
        raise ApiError(
            422, "invalid_scope", f"scope entries are '<owner kind>:<id>': {exc}"
        ) from None
