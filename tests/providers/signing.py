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


def hub88(exchange: Mapping[str, Any], secrets: Mapping[str, str]) -> Signed:
    """Signed as Hub88 signs: RSA PKCS#1 v1.5 over SHA-256 of the body, base64."""
    import base64

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    body = exchange["body"].encode()
    pem = secrets["hub88_private_key" if exchange.get("sign") != "bad" else "operator_private_key"]
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    signature = base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()
    return body, {"X-Hub88-Signature": signature, "Content-Type": "application/json"}, {}


SIGNERS: dict[str, Callable[[Mapping[str, Any], Mapping[str, str]], Signed]] = {
    "softswiss": softswiss,
    "pragmatic": pragmatic,
    "hub88": hub88,
    "evolution": evolution,
}
