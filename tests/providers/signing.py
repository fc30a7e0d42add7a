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


SIGNERS: dict[str, Callable[[Mapping[str, Any], Mapping[str, str]], Signed]] = {
    "softswiss": softswiss,
    "evolution": evolution,
}
