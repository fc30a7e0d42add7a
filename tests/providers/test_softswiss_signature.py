"""SoftSwiss' X-REQUEST-SIGN is the HMAC-SHA256 of the body; aggregator clients are known
to send it hex-encoded (either case) or Base64-encoded: each is taken, nothing else is."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tally.kernel.clock import FixedClock
from tests.support.providers import GatewayWorld, gateway_world

TOKEN = "softswiss-signature-token"
BODY = json.dumps({"user_id": "p1", "currency": "EUR", "game": "g", "game_id": "r1"}).encode()
DIGEST = hmac.digest(TOKEN.encode(), BODY, "sha256")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[GatewayWorld]:
    clock = FixedClock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    with gateway_world(tmp_path, clock, {("softswiss", "auth_token"): TOKEN}, ["softswiss"]) as w:
        w.open_player("p1", "EUR", 1_000)
        yield w


@pytest.mark.parametrize(
    "sign",
    [
        DIGEST.hex(),
        DIGEST.hex().upper(),
        base64.b64encode(DIGEST).decode(),
        base64.urlsafe_b64encode(DIGEST).decode().rstrip("="),
    ],
    ids=["hex", "HEX", "base64", "base64url unpadded"],
)
def test_the_request_sign_is_taken_in_hex_and_in_base64(world: GatewayWorld, sign: str) -> None:
    reply = world.call("softswiss", "play", BODY, {"X-REQUEST-SIGN": sign})
    assert reply.status == 200, reply.body
    assert json.loads(reply.body)["balance"] == 1_000


@pytest.mark.parametrize(
    "sign",
    [
        hmac.digest(b"another-token", BODY, "sha256").hex(),
        base64.b64encode(hmac.digest(b"another-token", BODY, "sha256")).decode(),
        base64.b64encode(DIGEST[:16]).decode(),
        hashlib.sha256(BODY).hexdigest(),
        "",
        "not a signature at all",
    ],
    ids=["other key hex", "other key base64", "truncated", "plain sha256", "empty", "junk"],
)
def test_any_other_request_sign_is_forbidden_and_kept(world: GatewayWorld, sign: str) -> None:
    reply = world.call("softswiss", "play", BODY, {"X-REQUEST-SIGN": sign})
    assert reply.status == 403 and json.loads(reply.body)["code"] == 403
    assert world.kept() == ["bad_signature"]
