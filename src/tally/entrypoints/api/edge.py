"""The API's edge: who is calling, and how much body a route takes, before any of it is read.

FastAPI reads and parses a route's JSON body before it resolves the dependencies that
authenticate the caller, and a plain ``await request.body()`` takes in whatever is
sent. So, ahead of routing:

- a protected route's caller is authenticated first (an unknown or missing token is
  answered 401 and the body is never read); the principal found is handed on to the
  route's dependencies, which then do not look it up again;
- each route's body limit (kernel/limits.py, ApiLimits) is enforced: a Content-Length
  over it is answered 413 unread, and a body sent without one is counted as it
  arrives and refused with 413 as soon as it passes the limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tally.auth.model import Principal
from tally.kernel.limits import ApiLimits

# Routes anyone may call; every other route needs a session token or an API key.
PUBLIC = frozenset(
    {"/health", "/ready", "/v1/auth/login", "/openapi.json", "/docs", "/docs/oauth2-redirect"}
)
# Where the principal found here is kept for the route's dependencies (scope["state"]).
PRINCIPAL_STATE = "tally_principal"


def route_limits(limits: ApiLimits) -> dict[str, int]:
    """Routes whose body may be larger than a back-office JSON body, by route template."""
    config = limits.config_body_max_bytes
    return {
        "/v1/feeds/{operator}/events": limits.feed_body_max_bytes,
        "/v1/imports": limits.import_body_max_bytes,
        "/v1/reconciliation/runs": limits.reconciliation_body_max_bytes,
        "/v1/contracts": config,
        "/v1/partner-trees/agents": config,
        "/v1/partner-trees/placements": config,
        "/v1/fx/rates": config,
    }


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            text: str = bytes(value).decode("latin-1")
            scheme, _, credentials = text.partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
            return None
    return None


@dataclass(frozen=True, slots=True)
class _Route:
    """One route template as the OpenAPI description names it (``path`` for the metrics)."""

    path: str
    pattern: re.Pattern[str]
    methods: frozenset[str]


def _routes(api: FastAPI) -> list[_Route]:
    found = []
    for template, operations in api.openapi()["paths"].items():
        pattern, _, _ = compile_path(template)
        found.append(_Route(template, pattern, frozenset(m.upper() for m in operations)))
    return found


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, api: FastAPI, limits: ApiLimits | None = None) -> None:
        self.app = app
        self.api = api
        self.limits = limits or ApiLimits()
        self.by_route = route_limits(self.limits)
        self._known: list[_Route] | None = None

    @property
    def known(self) -> list[_Route]:
        # Built at the first request, once every router is included.
        if self._known is None:
            known = _routes(self.api)
            unknown = set(self.by_route) - {r.path for r in known}
            assert not unknown, f"body limits name routes that do not exist: {sorted(unknown)}"
            self._known = known
        return self._known

    def _route(self, scope: Scope) -> _Route | None:
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        for route in self.known:
            if method in route.methods and route.pattern.match(path):
                return route
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self._route(scope)
        template = route.path if route is not None else None
        if route is not None and template not in PUBLIC:
            refused = await self._authenticate(scope)
            if refused is not None:
                scope["route"] = route  # so the metrics count it under its route
                await refused(scope, receive, send)
                return
        limit = self.by_route.get(template or "", self.limits.body_max_bytes)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            if route is not None:
                scope["route"] = route
            too_large = _error(413, "payload_too_large", f"a body here is at most {limit} bytes")
            await too_large(scope, receive, send)
            return
        await self.app(scope, _counted(receive, limit), send)

    async def _authenticate(self, scope: Scope) -> JSONResponse | None:
        token = _bearer(scope)
        if token is None:
            return _error(401, "unauthenticated", "log in or send an API key")
        auth = self.api.state.ctx.bo.auth
        found: Principal | None = await run_in_threadpool(auth.authenticate, token)
        if found is None:
            return _error(401, "invalid_token", "the token is unknown, expired or revoked")
        scope.setdefault("state", {})[PRINCIPAL_STATE] = found
        return None


def _counted(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                # Raised into whoever reads the body; answered 413 by the error handlers.
                raise HTTPException(413, f"a body here is at most {limit} bytes")
        return message

    return counted
