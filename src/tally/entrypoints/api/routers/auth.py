"""Authentication: login, logout, password change and MFA enrolment."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from tally.auth.model import Principal
from tally.auth.service import AuthError
from tally.entrypoints.api import schemas as s
from tally.entrypoints.api.deps import auth_failure, require_full_user, require_user, source
from tally.entrypoints.api.errors import ERROR_RESPONSES, ErrorBody
from tally.entrypoints.api.routers.common import CONFLICT, CtxDep

THROTTLED: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorBody,
        "description": "Too many attempts from this address or on this username; "
        "try again after Retry-After seconds",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    }
}


router = APIRouter(prefix="/v1/auth", tags=["authentication"], responses=ERROR_RESPONSES)


@router.post("/login", response_model=s.TokenOut, responses=THROTTLED)
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


@router.post("/logout", status_code=204, response_class=Response, responses=ERROR_RESPONSES)
def logout(request: Request, c: CtxDep, p: Annotated[Principal, Depends(require_user)]) -> Response:
    try:
        c.bo.auth.logout(p, source=source(request))
    except AuthError as exc:
        raise auth_failure(exc) from None
    return Response(status_code=204)


@router.get("/me", response_model=s.MeOut)
def me(p: Annotated[Principal, Depends(require_user)]) -> s.MeOut:
    return s.MeOut.of(p)


@router.post("/password", status_code=204, response_class=Response, responses=THROTTLED)
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


@router.post("/mfa/enrolment", response_model=s.EnrolmentOut, responses=CONFLICT)
def begin_enrolment(
    request: Request, c: CtxDep, p: Annotated[Principal, Depends(require_user)]
) -> s.EnrolmentOut:
    """A new TOTP secret for the caller; MFA turns on once a code confirms it."""
    try:
        found = c.bo.auth.begin_enrolment(p, source=source(request))
    except AuthError as exc:
        raise auth_failure(exc) from None
    return s.EnrolmentOut(secret=found.secret, otpauth_uri=found.uri)


@router.post("/mfa/confirmation", response_model=s.TokenOut, responses=CONFLICT)
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
