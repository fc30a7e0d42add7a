"""Player session tokens for protocols that carry one (a launch token, a ``sid``).

Stateless and signed: ``v1.<payload>.<mac>`` where the payload names the provider, the
player, the currency and the expiry, and the MAC is HMAC-SHA256 under Tally's key. Any
gateway process can check a token without a shared session table; a token for one
provider does not open another's calls.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

SESSION_TTL = timedelta(hours=12)  # how long a launched game session may call back
TOKEN_MAX_LENGTH = 512


class InvalidSession(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Session:
    provider: str
    player: str
    currency: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionTokens:
    def __init__(self, key: bytes) -> None:
        assert len(key) >= 32, "a session key has at least 256 bits"
        self._key = hashlib.sha256(b"tally-session-v1" + key).digest()

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, provider: str, player: str, currency: str, now: datetime) -> str:
        expires = int((now + SESSION_TTL).timestamp())
        payload = _b64(json.dumps([provider, player, currency, expires]).encode())
        return f"v1.{payload}.{self._mac(payload)}"

    def check(self, token: str, provider: str, now: datetime) -> Session:
        parts = token.split(".") if len(token) <= TOKEN_MAX_LENGTH else []
        if len(parts) != 3 or parts[0] != "v1":
            raise InvalidSession("not a session token")
        _, payload, mac = parts
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidSession("session token signature does not match")
        try:
            owner, player, currency, expires = json.loads(_unb64(payload))
        except (ValueError, TypeError) as exc:
            raise InvalidSession(f"session token unreadable: {exc}") from None
        if owner != provider:
            raise InvalidSession("session token belongs to another provider")
        expires_at = datetime.fromtimestamp(int(expires), tz=now.tzinfo)
        if expires_at <= now:
            raise InvalidSession("session token expired")
        return Session(owner, str(player), str(currency), expires_at)
