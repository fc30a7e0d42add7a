"""The back office's keys: from settings, or generated once into the keys directory.

Generated files are created with mode 0600 and never overwritten; key material is
never logged or printed (the holders' reprs hide it).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from tally.app.settings import Settings
from tally.security.signing import new_private_key_pem

log = structlog.get_logger("tally.keys")


@dataclass(frozen=True, slots=True)
class Keys:
    audit: bytes = field(repr=False)
    pseudonym: bytes = field(repr=False)
    secret: bytes = field(repr=False)
    signing_pem: bytes = field(repr=False)


def _read_or_create(path: Path, make: bytes) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_bytes()
    with os.fdopen(fd, "wb") as out:
        out.write(make)
    log.info("key_generated", file=path.name)
    return make


def load_keys(settings: Settings) -> Keys:
    d = settings.keys_dir

    def sym(given: bytes | None, name: str) -> bytes:
        return given if given is not None else _read_or_create(d / name, secrets.token_bytes(32))

    signing_path = settings.export_signing_key_path or d / "export_signing_ed25519.pem"
    if settings.export_signing_key_path is not None:
        signing = signing_path.read_bytes()
    else:
        signing = _read_or_create(signing_path, new_private_key_pem())
    return Keys(
        audit=sym(settings.audit_key, "audit.key"),
        pseudonym=sym(settings.pseudonym_key, "pseudonym.key"),
        secret=sym(settings.secret_key, "secret.key"),
        signing_pem=signing,
    )
