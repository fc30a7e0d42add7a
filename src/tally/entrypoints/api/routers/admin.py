"""Administration: users, API keys, the audit trail, exports, provider secrets."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from tally.auth.model import Principal
from tally.auth.service import AuthError
from tally.entrypoints.api import schemas as s
from tally.entrypoints.api.deps import auth_failure, parse_scope, require, source
from tally.entrypoints.api.errors import ERROR_RESPONSES, ApiError
from tally.entrypoints.api.routers.common import CONFLICT, CtxDep, Cursor, Id, Limit, P
from tally.exports.bundle import to_zip

router = APIRouter(prefix="/v1", tags=["administration"], responses=ERROR_RESPONSES)
UsersReader = Annotated[Principal, Depends(require(P.USERS_READ))]
UsersWriter = Annotated[Principal, Depends(require(P.USERS_WRITE))]
KeysReader = Annotated[Principal, Depends(require(P.API_KEYS_READ))]
KeysWriter = Annotated[Principal, Depends(require(P.API_KEYS_WRITE))]
AuditReader = Annotated[Principal, Depends(require(P.AUDIT_READ))]


@router.get("/users", response_model=s.PageOut[s.UserOut])
def list_users(
    c: CtxDep, _: UsersReader, cursor: Cursor = None, limit: Limit = 100
) -> s.PageOut[s.UserOut]:
    page = c.bo.auth.list_users(cursor=cursor, limit=limit)
    return s.PageOut(items=[s.UserOut.of(u) for u in page.items], next_cursor=page.next_cursor)


@router.post("/users", response_model=s.UserOut, status_code=201, responses=CONFLICT)
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


@router.get("/users/{user_id}", response_model=s.UserOut)
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


@router.patch("/users/{user_id}", response_model=s.UserOut, responses=CONFLICT)
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


@router.post("/users/{user_id}/mfa-reset", response_model=s.UserOut)
def reset_mfa(user_id: Id, request: Request, c: CtxDep, p: UsersWriter) -> s.UserOut:
    """Forget the user's TOTP secret and end their sessions; they enrol again at next login."""
    return _user_action(lambda: c.bo.auth.reset_mfa(p.actor, user_id, source=source(request)))


@router.post("/users/{user_id}/unlock", response_model=s.UserOut)
def unlock_user(user_id: Id, request: Request, c: CtxDep, p: UsersWriter) -> s.UserOut:
    return _user_action(lambda: c.bo.auth.unlock_user(p.actor, user_id, source=source(request)))


@router.get("/api-keys", response_model=s.PageOut[s.ApiKeyOut])
def list_api_keys(
    c: CtxDep, _: KeysReader, cursor: Cursor = None, limit: Limit = 100
) -> s.PageOut[s.ApiKeyOut]:
    page = c.bo.auth.list_api_keys(cursor=cursor, limit=limit)
    return s.PageOut(items=[s.ApiKeyOut.of(k) for k in page.items], next_cursor=page.next_cursor)


@router.post("/api-keys", response_model=s.ApiKeyCreatedOut, status_code=201)
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


@router.delete("/api-keys/{key_id}", response_model=s.ApiKeyOut)
def revoke_api_key(key_id: Id, request: Request, c: CtxDep, p: KeysWriter) -> s.ApiKeyOut:
    """Revoke a key: it stops working at once; the record stays."""
    try:
        return s.ApiKeyOut.of(c.bo.auth.revoke_api_key(p.actor, key_id, source=source(request)))
    except AuthError as exc:
        raise auth_failure(exc) from None


@router.get("/audit-records", response_model=s.PageOut[s.AuditRecordOut])
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


@router.get("/audit-records/verification", response_model=s.AuditVerifyOut)
def verify_audit(c: CtxDep, _: AuditReader) -> s.AuditVerifyOut:
    """Walk the whole chain and report any edited, deleted, inserted or reordered record."""
    checked, problems = c.bo.audit.verify()
    return s.AuditVerifyOut(
        checked=checked, intact=not problems, problems=[s.ProblemOut.of(p) for p in problems]
    )


@router.post(
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


SecretName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


@router.get("/provider-secrets", response_model=list[s.ProviderSecretOut])
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


@router.put("/provider-secrets/{provider}/{name}", status_code=204, response_class=Response)
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


@router.delete("/provider-secrets/{provider}/{name}", status_code=204, response_class=Response)
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
