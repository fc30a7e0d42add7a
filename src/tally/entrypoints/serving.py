"""How Tally's HTTP servers are configured by uvicorn, in one place.

uvicorn, left to its defaults, rewrites the client address from ``X-Forwarded-For``
whenever the connection comes from 127.0.0.1 (or from ``$FORWARDED_ALLOW_IPS``). Any
local process, or a proxy that passes the header through unchanged, could then name any
address it liked: past a provider's ``allow_ips`` and into the audit trail's source.
Here the header is honoured only from the proxies that ``TALLY_TRUSTED_PROXIES`` names
(``Settings.trusted_proxies``; default none), for the gateway, its fronts and the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import uvicorn


def proxy_options(trusted: Sequence[str]) -> dict[str, Any]:
    """uvicorn's options for trusting ``X-Forwarded-For`` from ``trusted`` addresses only."""
    if not trusted:
        return {"proxy_headers": False, "forwarded_allow_ips": ""}
    return {"proxy_headers": True, "forwarded_allow_ips": list(trusted)}


def uvicorn_config(app: Any, trusted: Sequence[str], **options: Any) -> uvicorn.Config:
    """A uvicorn config for ``app`` that trusts forwarded addresses from ``trusted`` only."""
    return uvicorn.Config(app, **options, **proxy_options(trusted))
