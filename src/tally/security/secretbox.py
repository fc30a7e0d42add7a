"""Secrets at rest (provider credentials, TOTP secrets), encrypted with AES-256-GCM."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"
_NONCE = 12


class SecretBoxError(ValueError):
    """A sealed secret could not be opened (wrong key, or the bytes were changed)."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the secret-box key must be 32 bytes (AES-256)")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:  # never print the key
        return "SecretBox(<key hidden>)"

    def seal(self, plaintext: bytes, context: bytes = b"") -> bytes:
        """Version byte, random nonce, ciphertext+tag; ``context`` binds it to its owner."""
        nonce = os.urandom(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, context)

    def open(self, sealed: bytes, context: bytes = b"") -> bytes:
        if len(sealed) < 1 + _NONCE + 16 or sealed[:1] != _VERSION:
            raise SecretBoxError("not a sealed secret")
        nonce, body = sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :]
        try:
            return self._aead.decrypt(nonce, body, context)
        except InvalidTag:
            raise SecretBoxError("the sealed secret failed authentication") from None
