"""Keyed pseudonyms for player identifiers leaving the ledger (exports, analytics).

HMAC-SHA256 with a secret key: stable (the same player gets the same pseudonym,
so records still join up) but not reversible or guessable without the key.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "ps_"
LENGTH = 32  # hex characters kept: 128 bits


class Pseudonymiser:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the pseudonymisation key must be at least 32 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "Pseudonymiser(<key hidden>)"

    def __call__(self, identifier: str) -> str:
        digest = hmac.new(self._key, identifier.encode(), hashlib.sha256).hexdigest()
        return PREFIX + digest[:LENGTH]
