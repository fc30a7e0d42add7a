"""TOTP for admin and finance, lock-out after repeated failures, session expiry, key revocation."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from tally.auth.service import AuthError
from tally.security import totp
from tests.integration.apiworld import PASSWORD, World


def _login(world: World, name: str, password: str = PASSWORD, code: str | None = None):
    body = {"username": name, "password": password}
    if code is not None:
        body["totp_code"] = code
    return world.client.post("/v1/auth/login", json=body)


def test_an_mfa_account_needs_a_code_and_refuses_a_wrong_one(world: World):
    world.clock.advance(timedelta(seconds=31))
    assert _login(world, "admin").json()["error"]["code"] == "mfa_required"
    r = _login(world, "admin", code="123456")
    assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_mfa_code")


def test_a_totp_code_cannot_be_replayed(world: World):
    world.clock.advance(timedelta(seconds=31))
    code = totp.code_at(world.totp_secrets["finance"], world.clock.now())
    assert _login(world, "finance", code=code).status_code == 200
    r = _login(world, "finance", code=code)
    assert r.json()["error"]["code"] == "invalid_mfa_code"


def test_admin_and_finance_must_enrol_before_getting_a_full_session(world: World):
    r = world.client.post(
        "/v1/users",
        json={"username": "newfin", "password": "a long enough pw", "roles": ["finance"]},
        headers=world.headers("admin"),
    )
    assert r.status_code == 201
    first = _login(world, "newfin", password="a long enough pw").json()
    assert first["stage"] == "mfa_enrolment"
    # An operations user needs no second factor.
    assert _login(world, "operations").json()["stage"] == "full"


def test_repeated_failed_logins_make_that_source_wait_even_for_the_right_password(world: World):
    for _ in range(5):
        assert _login(world, "operations", password="wrong password!").status_code == 401
    r = _login(world, "operations")
    assert (r.status_code, r.json()["error"]["code"]) == (429, "too_many_attempts")
    assert int(r.headers["Retry-After"]) > 0
    # Nobody's sessions end because of failed logins.
    assert world.client.get("/v1/auth/me", headers=world.headers("operations")).status_code == 200
    world.clock.advance(timedelta(seconds=int(r.headers["Retry-After"])))
    assert _login(world, "operations").status_code == 200


def test_unknown_and_throttled_usernames_are_answered_alike(world: World):
    answers = {}
    for name in ("operations", "no-such-user"):
        for _ in range(5):
            r = _login(world, name, password="wrong password!")
            assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_credentials")
        r = _login(world, name, password="wrong password!")
        answers[name] = (r.status_code, r.json(), r.headers["Retry-After"])
    assert answers["operations"] == answers["no-such-user"]
    assert answers["operations"][0] == 429


def test_someone_elses_failed_logins_neither_end_sessions_nor_keep_the_user_out(world: World):
    """An attacker at another address guessing the password of a known username."""
    for _ in range(30):
        with pytest.raises(AuthError):
            world.bo.auth.login("operations", "wrong password!", source="198.51.100.7")
    # The attacker's address waits, even with the right password.
    with pytest.raises(AuthError) as err:
        world.bo.auth.login("operations", PASSWORD, source="198.51.100.7")
    assert err.value.code == "too_many_attempts"
    # The user's sessions go on, and the user logs in from their own address at once.
    assert world.client.get("/v1/auth/me", headers=world.headers("operations")).status_code == 200
    assert _login(world, "operations").status_code == 200


def test_one_source_guessing_many_usernames_is_slowed_down(world: World):
    refused = 0
    for i in range(60):
        try:
            world.bo.auth.login(f"guess{i}", "wrong password!", source="198.51.100.8")
        except AuthError as exc:
            refused += exc.code == "too_many_attempts"
    assert refused >= 10
    # Others are not slowed down by it.
    assert _login(world, "operations").status_code == 200


def test_wrong_passwords_sent_at_once_are_evaluated_no_more_than_the_limit(world: World):
    """Counting and checking in one step: parallel guesses cannot slip past the limit."""
    guesses = 30
    barrier = threading.Barrier(guesses)

    def guess(_: int) -> str:
        barrier.wait()
        try:
            world.bo.auth.login("auditor", "wrong password!", source="198.51.100.9")
        except AuthError as exc:
            return exc.code
        return "ok"

    with ThreadPoolExecutor(guesses) as pool:
        codes = list(pool.map(guess, range(guesses)))
    evaluated = [
        r
        for r in world.bo.store.iter_audit()
        if r.entry.action == "login.failed" and r.entry.detail.get("reason") == "password"
    ]
    assert len(evaluated) <= 5, codes
    assert codes.count("invalid_credentials") == len(evaluated)
    with pytest.raises(AuthError) as err:
        world.bo.auth.login("auditor", PASSWORD, source="198.51.100.9")
    assert err.value.code == "too_many_attempts"


def test_one_totp_code_sent_many_times_at_once_opens_one_session(world: World):
    world.clock.advance(timedelta(seconds=31))
    code = totp.code_at(world.totp_secrets["admin"], world.clock.now())
    tries = 8
    barrier = threading.Barrier(tries)

    def login(i: int) -> str:
        barrier.wait()
        try:
            world.bo.auth.login("admin", PASSWORD, code, source=f"198.51.100.{20 + i}")
        except AuthError as exc:
            return exc.code
        return "ok"

    with ThreadPoolExecutor(tries) as pool:
        codes = list(pool.map(login, range(tries)))
    assert codes.count("ok") == 1, codes
    assert codes.count("invalid_mfa_code") == tries - 1


def test_an_admin_can_lift_the_wait_and_it_is_audited(world: World):
    for _ in range(5):
        _login(world, "auditor", password="wrong password!")
    assert _login(world, "auditor").status_code == 429
    r = world.client.post(
        f"/v1/users/{world.user_ids['auditor']}/unlock", headers=world.headers("admin")
    )
    assert r.status_code == 200
    assert _login(world, "auditor").status_code == 200
    actions = [x.entry.action for x in world.bo.store.iter_audit()]
    assert actions.count("login.failed") >= 5
    assert "login.throttled" in actions and "user.unlocked" in actions


def test_wrong_totp_codes_count_towards_the_wait(world: World):
    for _ in range(5):
        world.clock.advance(timedelta(seconds=1))
        _login(world, "admin", code="000000")
    world.clock.advance(timedelta(seconds=1))
    code = totp.code_at(world.totp_secrets["admin"], world.clock.now())
    assert _login(world, "admin", code=code).json()["error"]["code"] == "too_many_attempts"


def test_sessions_expire(world: World):
    headers = world.headers("auditor")
    assert world.client.get("/v1/auth/me", headers=headers).status_code == 200
    world.clock.advance(timedelta(hours=8, seconds=1))
    r = world.client.get("/v1/auth/me", headers=headers)
    assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_token")


def test_logout_ends_the_session(world: World):
    headers = world.headers("operations")
    assert world.client.post("/v1/auth/logout", headers=headers).status_code == 204
    assert world.client.get("/v1/auth/me", headers=headers).status_code == 401


def test_a_password_change_is_audited_ends_other_sessions_and_keeps_this_one(world: World):
    other = world.login("operations")
    r = world.client.post(
        "/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "a brand new password"},
        headers=world.headers("operations"),
    )
    assert r.status_code == 204
    assert (
        world.client.get("/v1/auth/me", headers={"Authorization": f"Bearer {other}"}).status_code
        == 401
    )
    # The session the change was made from goes on.
    assert world.client.get("/v1/auth/me", headers=world.headers("operations")).status_code == 200
    assert _login(world, "operations").status_code == 401
    assert _login(world, "operations", password="a brand new password").status_code == 200
    record = world.bo.audit.page(action="user.password_changed").items[0]
    assert record.entry.actor == f"user:{world.user_ids['operations']}"
    assert "password" not in str(record.entry.after) and record.entry.source == "203.0.113.9"


def test_an_mfa_reset_is_audited_and_forces_a_new_enrolment(world: World):
    r = world.client.post(
        f"/v1/users/{world.user_ids['finance']}/mfa-reset", headers=world.headers("admin")
    )
    assert r.status_code == 200 and r.json()["mfa_enabled"] is False
    assert world.client.get("/v1/auth/me", headers=world.headers("finance")).status_code == 401
    assert _login(world, "finance").json()["stage"] == "mfa_enrolment"
    record = world.bo.audit.page(action="user.mfa_reset").items[0]
    assert record.entry.before and record.entry.before["mfa_enabled"] is True
    assert record.entry.after and record.entry.after["mfa_enabled"] is False


def test_a_revoked_api_key_stops_working_at_once(world: World):
    created = world.client.post(
        "/v1/api-keys", json={"name": "bot", "roles": ["auditor"]}, headers=world.headers("admin")
    ).json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert world.client.get("/v1/users", headers=headers).status_code == 200
    revoked = world.client.delete(
        f"/v1/api-keys/{created['key']['id']}", headers=world.headers("admin")
    )
    assert revoked.json()["revoked_at"] is not None
    assert world.client.get("/v1/users", headers=headers).status_code == 401


def test_api_keys_are_stored_only_as_hashes(world: World):
    created = world.client.post(
        "/v1/api-keys", json={"name": "bot", "roles": ["auditor"]}, headers=world.headers("admin")
    ).json()
    secret = created["token"].split(".", 1)[1]
    with world.bo.store._transaction() as cur:  # type: ignore[attr-defined]
        rows = [
            *cur.execute("SELECT * FROM auth_api_keys"),
            *cur.execute("SELECT * FROM auth_users"),
        ]
    stored = repr(rows)
    assert created["key"]["id"] in stored  # the tables do hold the key
    assert secret not in stored and created["token"] not in stored
    assert PASSWORD not in stored


def test_totp_secrets_are_encrypted_at_rest(world: World):
    user = world.bo.store.get_user(world.user_ids["admin"])
    assert user is not None and user.totp_secret is not None
    assert world.totp_secrets["admin"].encode() not in user.totp_secret
