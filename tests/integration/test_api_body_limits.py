"""Request bodies are limited at the edge, per route, and never read before the caller is
known: an oversized or unauthenticated request is refused without its body being taken in.

Driven at the ASGI level with a body source that records how much of it was consumed.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from tally.kernel.limits import ApiLimits
from tests.integration.apiworld import World

LIMITS = ApiLimits()
CHUNK = 64 * 1024


@dataclass
class Body:
    """A request body handed over chunk by chunk, counting what the app took."""

    chunks: int
    chunk: bytes = b"x" * CHUNK
    consumed: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)

    async def receive(self) -> dict[str, Any]:
        if self.chunks == 0:
            return {"type": "http.disconnect"}
        self.chunks -= 1
        self.consumed += len(self.chunk)
        return {"type": "http.request", "body": self.chunk, "more_body": self.chunks > 0}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(next(m["status"] for m in self.sent if m["type"] == "http.response.start"))

    @property
    def error(self) -> str:
        body = b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")
        return str(json.loads(body)["error"]["code"])


def call(
    world: World,
    path: str,
    body: Body,
    *,
    token: str | None = None,
    length: int | None = None,
    query: str = "",
) -> Body:
    headers = [(b"content-type", b"application/json")]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    else:
        headers.append((b"transfer-encoding", b"chunked"))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": headers,
        "client": ("203.0.113.9", 5000),
        "server": ("testserver", 80),
        "root_path": "",
    }
    asyncio.run(world.client.app(scope, body.receive, body.send))  # type: ignore[arg-type]
    return body


HUGE = 400 * 1024 * 1024


def test_a_body_declared_larger_than_the_limit_is_refused_without_being_read(world: World):
    body = call(world, "/v1/users", Body(HUGE // CHUNK), token=world.tokens["admin"], length=HUGE)
    assert (body.status, body.error) == (413, "payload_too_large")
    assert body.consumed == 0


def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit(world: World):
    body = call(world, "/v1/users", Body(HUGE // CHUNK), token=world.tokens["admin"])
    assert (body.status, body.error) == (413, "payload_too_large")
    assert body.consumed <= LIMITS.body_max_bytes + CHUNK


def test_an_unauthenticated_request_is_refused_before_its_body_is_read(world: World):
    for token in (None, "ts_not-a-session"):
        body = call(world, "/v1/users", Body(HUGE // CHUNK), token=token)
        assert body.status == 401
        assert body.consumed == 0
    # Even with a small, declared body.
    body = call(world, "/v1/exports", Body(1), length=CHUNK)
    assert (body.status, body.consumed) == (401, 0)


def test_the_login_route_is_open_but_limited_too(world: World):
    body = call(world, "/v1/auth/login", Body(HUGE // CHUNK))
    assert body.status == 413
    assert body.consumed <= LIMITS.body_max_bytes + CHUNK


def test_feeds_and_imports_have_their_own_limits(world: World):
    feed = world.tokens["key_feed"]
    over_feed = LIMITS.feed_body_max_bytes + 1
    body = call(world, "/v1/feeds/op1/events", Body(1), token=feed, length=over_feed)
    assert (body.status, body.consumed) == (413, 0)
    streamed = call(world, "/v1/feeds/op1/events", Body(HUGE // CHUNK), token=feed)
    assert streamed.status == 413
    assert streamed.consumed <= LIMITS.feed_body_max_bytes + CHUNK
    # A report may be larger than a feed push, up to its own limit.
    imports = "provider=acme&name=r.csv"
    body = call(world, "/v1/imports", Body(1, b""), token=feed, length=over_feed, query=imports)
    assert body.status != 413
    over_import = LIMITS.import_body_max_bytes + 1
    body = call(world, "/v1/imports", Body(1), token=feed, length=over_import, query=imports)
    assert (body.status, body.consumed) == (413, 0)
