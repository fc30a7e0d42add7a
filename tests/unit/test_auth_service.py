"""The auth service over the in-memory store: every change is audited."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tally.adapters.memory.backoffice import MemoryBackofficeStore
from tally.audit.chain import Sealer, verify
from tally.auth.model import OwnerRef
from tally.auth.policy import Role
from tally.auth.service import AuthError, AuthService
from tally.kernel.clock import FixedClock
from tally.ledger.model import OwnerKind
from tally.security.passwords import PasswordHasher
from tally.security.secretbox import SecretBox

PASSWORD = "correct horse battery"


@pytest.fixture
def service(clock: FixedClock) -> AuthService:
    store = MemoryBackofficeStore(Sealer(b"a" * 32))
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return AuthService(store, clock, hasher, SecretBox(b"s" * 32))


def actions(service: AuthService) -> list[str]:
    return [r.entry.action for r in service.store.iter_audit()]  # type: ignore[attr-defined]


def test_the_last_active_admin_cannot_be_demoted_or_disabled(service: AuthService):
    admin = service.create_user("system", "root", PASSWORD, frozenset({Role.ADMIN}))
    with pytest.raises(AuthError) as err:
        service.update_user("system", admin.id, roles=frozenset({Role.AUDITOR}))
    assert err.value.code == "last_admin"
    with pytest.raises(AuthError):
        service.update_user("system", admin.id, disabled=True)
    other = service.create_user("system", "root2", PASSWORD, frozenset({Role.ADMIN}))
    service.update_user("system", admin.id, disabled=True)
    assert service.get_user(admin.id).disabled  # type: ignore[union-attr]
    with pytest.raises(AuthError):
        service.update_user("system", other.id, roles=frozenset({Role.FINANCE}))


def test_a_partner_needs_a_scope_and_no_staff_role(service: AuthService):
    with pytest.raises(AuthError, match="owners"):
        service.create_user("system", "p", PASSWORD, frozenset({Role.PARTNER}))
    with pytest.raises(AuthError):
        service.create_user(
            "system",
            "p",
            PASSWORD,
            frozenset({Role.PARTNER, Role.AUDITOR}),
            scope=frozenset({OwnerRef(OwnerKind.PARTNER, "x")}),
        )


def test_usernames_are_unique_and_plain(service: AuthService):
    service.create_user("system", "ann", PASSWORD, frozenset({Role.AUDITOR}))
    for bad in ("ann", "", "a b", "ünï"):
        with pytest.raises(AuthError):
            service.create_user("system", bad, PASSWORD, frozenset({Role.AUDITOR}))


def test_every_change_is_audited_and_the_chain_verifies(service: AuthService, clock: FixedClock):
    user = service.create_user("system", "ops", PASSWORD, frozenset({Role.OPERATIONS}))
    with pytest.raises(AuthError):
        service.login("ops", "wrong password")
    with pytest.raises(AuthError):
        service.login("ghost", "whatever")
    result = service.login("ops", PASSWORD, source="10.1.2.3")
    principal = service.authenticate(result.token)
    assert principal is not None and principal.actor == f"user:{user.id}"
    service.update_user("system", user.id, roles=frozenset({Role.AUDITOR}))
    key, token = service.create_api_key("system", "bot", frozenset({Role.AUDITOR}))
    service.revoke_api_key("system", key.id)
    clock.advance(timedelta(seconds=1))
    assert actions(service) == [
        "user.created",
        "login.failed",
        "login.failed",
        "login.succeeded",
        "user.updated",
        "api_key.created",
        "api_key.revoked",
    ]
    store = service.store
    assert verify(list(store.iter_audit()), store.sealer, store.audit_head()) == []  # type: ignore[attr-defined]
    assert service.authenticate(token) is None
    # A role change ends the user's sessions.
    assert service.authenticate(result.token) is None


def test_an_api_key_never_gets_admin_and_expires(service: AuthService, clock: FixedClock):
    with pytest.raises(AuthError):
        service.create_api_key("system", "root bot", frozenset({Role.ADMIN}))
    _, token = service.create_api_key(
        "system", "bot", frozenset({Role.AUDITOR}), expires_at=clock.now() + timedelta(hours=1)
    )
    assert service.authenticate(token) is not None
    clock.advance(timedelta(hours=1))
    assert service.authenticate(token) is None


def test_forged_or_malformed_tokens_authenticate_nobody(service: AuthService):
    key, token = service.create_api_key("system", "bot", frozenset({Role.AUDITOR}))
    for bad in ("", "ts_nope", "tk_nope", f"tk_{key.id}.wrong", token + "x", "Bearer x"):
        assert service.authenticate(bad) is None


def test_guesses_from_many_addresses_make_the_user_wait_a_minute_at_most(
    service: AuthService, clock: FixedClock
):
    service.create_user("system", "ops", PASSWORD, frozenset({Role.OPERATIONS}))
    waits = []
    for i in range(200):
        try:
            service.login("ops", "wrong password", source=f"10.0.{i // 250}.{i % 250}")
        except AuthError as exc:
            if exc.code == "too_many_attempts":
                waits.append(exc.retry_after_s)
    assert waits and max(w for w in waits if w is not None) <= 60
    clock.advance(timedelta(seconds=60))
    assert service.login("ops", PASSWORD, source="192.0.2.1").session.user_id
    # No lock was left behind on the user, and nobody's sessions were touched by it.
    user = service.store.get_user_by_name("ops")
    assert user is not None and user.locked_until is None and user.failed_logins == 0


def test_a_step_up_code_passes_once_and_only_for_a_user_with_mfa(
    service: AuthService, clock: FixedClock
):
    from tally.auth.model import Principal, PrincipalKind
    from tally.security import totp

    user = service.create_user("system", "ben", PASSWORD, frozenset({Role.FINANCE}))
    me = Principal(PrincipalKind.USER, user.id, "ben", frozenset({Role.FINANCE}))
    assert not service.verify_second_factor(user.id, "123456")  # no MFA yet: never
    secret = service.begin_enrolment(me).secret
    service.confirm_enrolment(me, totp.code_at(secret, clock.now()))
    clock.advance(timedelta(seconds=31))
    code = totp.code_at(secret, clock.now())
    assert not service.verify_second_factor(user.id, "000000" if code != "000000" else "111111")
    assert service.verify_second_factor(user.id, code)
    assert not service.verify_second_factor(user.id, code)  # replayed: refused
    assert not service.verify_second_factor("nobody", code)
