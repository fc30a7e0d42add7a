"""The console's walls: its session cookie, CSRF tokens, and the headers every page sends.

The session is the API's own (a ``ts_`` token from ``AuthService.login``), kept in an
HttpOnly, SameSite=Strict cookie. A state-changing form carries a CSRF token that is an
HMAC of that session token, so a page of another site can neither read nor forge it;
the login form, before any session, carries a random token that must equal its cookie
(double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/console"
SESSION_COOKIE = "tally_console"
LOGIN_COOKIE = "tally_console_login"
CSRF_FIELD = "csrf"
# No inline script or style anywhere: the console's own script and stylesheet only.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)
# The most a console form may hold (the edge's general body limit applies as well).
FORM_MAX_FIELDS = 64


class CsrfRefused(Exception):
    """A state-changing request without the right CSRF token: nothing was read or changed."""


class FormInvalid(Exception):
    """A body that is not a URL-encoded form of the expected size."""


def csrf_for(session_token: str) -> str:
    """The CSRF token of a session: only a page that the session was served can hold it."""
    return hmac.new(session_token.encode(), b"tally-console-csrf", hashlib.sha256).hexdigest()


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


def same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


async def read_form(request: Request) -> dict[str, str]:
    """The first value of each field of a URL-encoded form (no file uploads here)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise FormInvalid("a console form is sent URL-encoded")
    body = await request.body()
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=FORM_MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise FormInvalid("the form could not be read") from None
    out: dict[str, str] = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


def check_csrf(form: dict[str, str], session_token: str) -> None:
    if not same(form.get(CSRF_FIELD, ""), csrf_for(session_token)):
        raise CsrfRefused


def cookie_secure(request: Request) -> bool:
    return request.url.scheme == "https"


class ConsoleHeaders:
    """Adds the CSP and its companions to every response under /console."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((k, v) for k, v in HEADERS if k not in present)
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
