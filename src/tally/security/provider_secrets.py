"""Provider credentials at rest: sealed with AES-GCM before storage, never returned or logged.

The sealing context names the provider and the secret, so a sealed value copied onto
another row does not open. Callers inside the process (provider adapters) read values;
the API only sets, deletes and lists names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tally.audit.chain import AuditEntry
from tally.kernel.clock import Clock
from tally.security.secretbox import SecretBox

NAME_MAX = 64


@dataclass(frozen=True, slots=True)
class SecretInfo:
    provider: str
    name: str
    updated_at: datetime
    updated_by: str


class SealedSecretStore(Protocol):
    def put_secret(self, info: SecretInfo, sealed: bytes, audit: AuditEntry) -> None: ...

    def delete_secret(self, provider: str, name: str, audit: AuditEntry) -> bool: ...

    def get_secret(self, provider: str, name: str) -> bytes | None: ...

    def secret_infos(self) -> list[SecretInfo]: ...


class InvalidSecretName(ValueError):
    pass


def _check(provider: str, name: str) -> None:
    for part in (provider, name):
        if not part or len(part) > NAME_MAX or not all(c.isalnum() or c in "-_." for c in part):
            raise InvalidSecretName(f"{part!r}: use 1 to {NAME_MAX} letters, digits, - _ .")


class ProviderSecrets:
    def __init__(self, store: SealedSecretStore, box: SecretBox, clock: Clock) -> None:
        self.store = store
        self.box = box
        self.clock = clock

    def __repr__(self) -> str:
        return "ProviderSecrets(<sealed>)"

    @staticmethod
    def _context(provider: str, name: str) -> bytes:
        return f"provider-secret:{provider}:{name}".encode()

    def set(self, provider: str, name: str, value: str, *, actor: str, source: str = "") -> None:
        _check(provider, name)
        now = self.clock.now()
        sealed = self.box.seal(value.encode(), self._context(provider, name))
        info = SecretInfo(provider, name, now, actor)
        entry = AuditEntry(
            actor=actor,
            action="provider_secret.set",
            target=f"provider_secret:{provider}/{name}",
            at=now,
            source=source,
            after={"provider": provider, "name": name},  # never the value
        )
        self.store.put_secret(info, sealed, entry)

    def delete(self, provider: str, name: str, *, actor: str, source: str = "") -> bool:
        entry = AuditEntry(
            actor=actor,
            action="provider_secret.deleted",
            target=f"provider_secret:{provider}/{name}",
            at=self.clock.now(),
            source=source,
            before={"provider": provider, "name": name},
        )
        return self.store.delete_secret(provider, name, entry)

    def get(self, provider: str, name: str) -> str | None:
        sealed = self.store.get_secret(provider, name)
        if sealed is None:
            return None
        return self.box.open(sealed, self._context(provider, name)).decode()

    def names(self) -> list[SecretInfo]:
        return self.store.secret_infos()
