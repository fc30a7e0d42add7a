"""Secret box, pseudonyms, signatures, TOTP, password hashing, and key settings."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from tally.app.settings import Settings
from tally.kernel.errors import ConfigurationError
from tally.security import totp
from tally.security.passwords import PasswordHasher, password_problem
from tally.security.pseudonym import Pseudonymiser
from tally.security.secretbox import SecretBox, SecretBoxError
from tally.security.signing import Signer, new_private_key_pem, verify_signature

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_sealed_secret_opens_only_with_its_key_and_context():
    box = SecretBox(b"k" * 32)
    sealed = box.seal(b"provider api secret", b"provider:acme")
    assert b"provider api secret" not in sealed
    assert box.open(sealed, b"provider:acme") == b"provider api secret"
    with pytest.raises(SecretBoxError):
        box.open(sealed, b"provider:other")
    with pytest.raises(SecretBoxError):
        SecretBox(b"x" * 32).open(sealed, b"provider:acme")
    flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SecretBoxError):
        box.open(flipped, b"provider:acme")


def test_sealing_twice_gives_different_bytes():
    box = SecretBox(b"k" * 32)
    assert box.seal(b"s") != box.seal(b"s")


def test_key_holders_never_show_their_keys():
    assert "kkkk" not in repr(SecretBox(b"k" * 32))
    assert "kkkk" not in repr(Pseudonymiser(b"k" * 32))
    settings = Settings(audit_key=b"k" * 32, secret_key=b"k" * 32)
    assert "kkkk" not in repr(settings) and "audit_key" not in repr(settings)


def test_pseudonyms_are_stable_keyed_and_unlinkable_without_the_key():
    a, b = Pseudonymiser(b"a" * 32), Pseudonymiser(b"b" * 32)
    assert a("player-1") == a("player-1")
    assert a("player-1") != a("player-2")
    assert a("player-1") != b("player-1")
    assert "player-1" not in a("player-1")


def test_a_signature_verifies_only_for_the_signed_bytes_and_key():
    signer = Signer(new_private_key_pem())
    signature = signer.sign(b"manifest")
    assert verify_signature(signer.public_pem(), b"manifest", signature)
    assert not verify_signature(signer.public_pem(), b"manifest!", signature)
    other = Signer(new_private_key_pem())
    assert not verify_signature(other.public_pem(), b"manifest", signature)


def test_a_totp_code_is_valid_one_step_either_side_and_only_once():
    secret = totp.new_secret()
    code = totp.code_at(secret, T0)
    step = totp.matching_step(secret, code, T0 + timedelta(seconds=29), 0)
    assert step is not None
    assert totp.matching_step(secret, code, T0, step) is None  # replay
    assert totp.matching_step(secret, code, T0 + timedelta(minutes=5), 0) is None
    assert totp.matching_step(secret, "12345x", T0, 0) is None


def test_passwords_hash_with_argon2id_and_verify():
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    hashed = hasher.hash("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert hasher.verify(hashed, "correct horse battery")
    assert not hasher.verify(hashed, "wrong")
    assert not hasher.verify("not a hash", "x")


def test_short_passwords_are_refused():
    assert password_problem("short") is not None
    assert password_problem("long enough password") is None


def test_keys_from_the_environment_must_be_32_bytes_of_base64():
    good = base64.b64encode(b"z" * 32).decode()
    assert Settings.from_env({"TALLY_AUDIT_KEY": good}).audit_key == b"z" * 32
    with pytest.raises(ConfigurationError):
        Settings.from_env({"TALLY_AUDIT_KEY": "not base64!"})
    with pytest.raises(ConfigurationError):
        Settings.from_env({"TALLY_SECRET_KEY": base64.b64encode(b"short").decode()})
