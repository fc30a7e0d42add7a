"""How each protocol's test requests are signed (the provider's side of the signature)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any

Signed = tuple[bytes, dict[str, str], dict[str, str]]  # body, headers, query


def softswiss(exchange: Mapping[str, Any], secrets: Mapping[str, str]) -> Signed:
    body = exchange["body"].encode()
    key = secrets["auth_token"] if exchange.get("sign") != "bad" else "not-the-token"
    sign = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-REQUEST-SIGN": sign, "Content-Type": "application/json"}, {}


def evolution(exchange: Mapping[str, Any], secrets: Mapping[str, str]) -> Signed:
    # Evolution puts the casino's api token in the query string of every call.
    token = secrets["auth_token"] if exchange.get("sign") != "bad" else "not-the-token"
    return exchange["body"].encode(), {"Content-Type": "application/json"}, {"authToken": token}


def pragmatic(exchange: Mapping[str, Any], secrets: Mapping[str, str]) -> Signed:
    """The body is the form without ``hash``; the hash goes last, as Pragmatic sends it."""
    from urllib.parse import parse_qsl, urlencode

    from tally.providers.pragmatic.adapter import signature

    params = dict(parse_qsl(exchange["body"], keep_blank_values=True))
    secret = secrets["secret_key"] if exchange.get("sign") != "bad" else "not-the-secret"
    body = exchange["body"] + "&" + urlencode({"hash": signature(params, secret)})
    return body.encode(), {"Content-Type": "application/x-www-form-urlencoded"}, {}


SIGNERS: dict[str, Callable[[Mapping[str, Any], Mapping[str, str]], Signed]] = {
    "softswiss": softswiss,
    "pragmatic": pragmatic,
    "evolution": evolution,
}
