"""X-Forwarded-For names the client only when it comes from a proxy Tally was told to
trust (TALLY_TRUSTED_PROXIES, default none): otherwise any local process could pass a
provider's allow-list and write any address into the audit trail's source."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import uvicorn

from tally.app.settings import Settings
from tally.entrypoints.serving import uvicorn_config
from tally.kernel.errors import ConfigurationError

Scope = dict[str, Any]


async def _echo_client(scope: Scope, receive: Any, send: Any) -> None:
    """An ASGI app that answers with the client address it was given."""
    if scope["type"] != "http":
        return
    host = (scope.get("client") or ("", 0))[0]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": host.encode()})


def _seen(config: uvicorn.Config, peer: str, forwarded: str) -> str:
    """The client address the app sees for a connection from ``peer`` that says it
    forwards for ``forwarded``, through the middleware uvicorn wraps the app in."""
    if not config.loaded:
        config.load()

    async def go() -> str:
        transport = httpx.ASGITransport(app=config.loaded_app, client=(peer, 40_000))
        async with httpx.AsyncClient(transport=transport, base_url="http://tally") as client:
            reply = await client.get("/", headers={"X-Forwarded-For": forwarded})
            return reply.text

    return asyncio.run(go())


def test_uvicorn_left_to_its_defaults_believes_any_local_caller() -> None:
    # Why Tally configures it: the default trusts 127.0.0.1, with no setting asked.
    assert _seen(uvicorn.Config(_echo_client), "127.0.0.1", "203.0.113.9") == "203.0.113.9"


def test_by_default_a_forwarded_address_is_ignored_even_from_the_local_host() -> None:
    config = uvicorn_config(_echo_client, Settings().trusted_proxies)
    assert _seen(config, "127.0.0.1", "203.0.113.9") == "127.0.0.1"


def test_a_forwarded_address_is_believed_from_a_configured_proxy_only() -> None:
    trusted = Settings.from_env({"TALLY_TRUSTED_PROXIES": "10.1.2.3, 10.9.0.0/16"})
    assert trusted.trusted_proxies == ("10.1.2.3", "10.9.0.0/16")
    config = uvicorn_config(_echo_client, trusted.trusted_proxies)
    assert _seen(config, "10.1.2.3", "203.0.113.9") == "203.0.113.9"
    assert _seen(config, "10.9.4.4", "203.0.113.9") == "203.0.113.9"
    config = uvicorn_config(_echo_client, trusted.trusted_proxies)
    assert _seen(config, "127.0.0.1", "203.0.113.9") == "127.0.0.1"


def test_a_trusted_proxy_that_is_not_an_address_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="TALLY_TRUSTED_PROXIES"):
        Settings.from_env({"TALLY_TRUSTED_PROXIES": "10.0.0.1,proxy.example"})
