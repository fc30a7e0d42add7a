"""One contract for the back-office store (users, sessions, API keys, audit), every adapter."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tally.audit.chain import AuditEntry, Sealer, verify
from tally.auth.model import ApiKey, OwnerRef, Session, SessionStage, User
from tally.auth.policy import Role
from tally.auth.ports import AuthChanges, UsernameTaken
from tally.auth.throttle import ThrottleKey, ThrottleRule
from tally.kernel.page import InvalidCursor
from tally.ledger.model import OwnerKind

PG_DSN = os.environ.get("TALLY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
SEALER = Sealer(b"a" * 32)


def _make(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> object:
    if kind == "memory":
        from tally.adapters.memory.backoffice import MemoryBackofficeStore

        made: object = MemoryBackofficeStore(SEALER)
    elif kind == "sqlite":
        from tally.adapters.sqlite.backoffice import SqliteBackofficeStore

        made = SqliteBackofficeStore(tmp_path / "tally.sqlite", SEALER)
    else:
        from tally.adapters.postgres.backoffice import PostgresBackofficeStore

        made = PostgresBackofficeStore(PG_DSN, SEALER, schema=request.getfixturevalue("pg_schema"))
    return made


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    made = _make(request.param, request, tmp_path)
    yield made
    made.close()  # type: ignore[attr-defined]


@pytest.fixture(params=["sqlite", "postgres"])
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    made = _make(request.param, request, tmp_path)
    yield made
    made.close()  # type: ignore[attr-defined]


def user(name: str = "alice", **kw: object) -> User:
    base = {
        "id": f"id-{name}",
        "username": name,
        "roles": frozenset({Role.FINANCE}),
        "password_hash": "$argon2id$fake",
        "created_at": T0,
    }
    base.update(kw)
    return User(**base)  # type: ignore[arg-type]


def entry(action: str = "user.created", actor: str = "system", n: int = 0) -> AuditEntry:
    return AuditEntry(
        actor, action, "user:x", T0 + timedelta(seconds=n), "cli", None, {"n": n}, {"k": "v"}
    )


def test_a_user_round_trips_with_every_field(store):
    u = user(
        scope=frozenset({OwnerRef(OwnerKind.PARTNER, "p1"), OwnerRef(OwnerKind.OPERATOR, "o")}),
        totp_secret=b"\x01sealed",
        mfa_enabled=True,
        last_totp_step=99,
        failed_logins=2,
        locked_until=T0 + timedelta(minutes=5),
        password_changed_at=T0,
        roles=frozenset({Role.PARTNER}),
    )
    store.commit(AuthChanges(new_users=[u]))
    assert store.get_user(u.id) == u
    assert store.get_user_by_name("alice") == u
    assert store.get_user("nobody") is None


def test_a_taken_username_is_refused_and_nothing_of_that_change_is_written(store):
    store.commit(AuthChanges(new_users=[user()]))
    with pytest.raises(UsernameTaken):
        store.commit(AuthChanges(new_users=[user(id="other")], audit=[entry()]))
    assert store.get_user("other") is None
    assert store.audit_head() is None


def test_updates_replace_a_user(store):
    u = user()
    store.commit(AuthChanges(new_users=[u]))
    from dataclasses import replace

    changed = replace(u, roles=frozenset({Role.ADMIN}), disabled=True)
    store.commit(AuthChanges(users=[changed]))
    assert store.get_user(u.id) == changed


def test_users_come_in_cursor_pages(store):
    store.commit(AuthChanges(new_users=[user(f"u{i}") for i in range(5)]))
    first = store.list_users(limit=2)
    second = store.list_users(cursor=first.next_cursor, limit=2)
    third = store.list_users(cursor=second.next_cursor, limit=2)
    names = [u.username for page in (first, second, third) for u in page.items]
    assert names == [f"u{i}" for i in range(5)]
    assert third.next_cursor is None


def test_sessions_end_one_by_one_or_all_of_a_user(store):
    store.commit(AuthChanges(new_users=[user()]))
    s1 = Session("h1", "id-alice", T0, T0 + timedelta(hours=1), SessionStage.FULL, "1.2.3.4")
    s2 = Session("h2", "id-alice", T0, T0 + timedelta(hours=1), SessionStage.MFA_ENROLMENT, "")
    store.commit(AuthChanges(sessions=[s1, s2]))
    assert store.get_session("h1") == s1
    assert store.get_session("h2") == s2
    store.commit(AuthChanges(ended_sessions=["h1"]))
    assert store.get_session("h1") is None
    store.commit(AuthChanges(end_sessions_of=["id-alice"]))
    assert store.get_session("h2") is None


def test_the_other_sessions_of_a_user_end_and_the_one_kept_goes_on(store):
    store.commit(AuthChanges(new_users=[user(), user("bob")]))
    later = T0 + timedelta(hours=1)
    mine = [Session(f"a{i}", "id-alice", T0, later, SessionStage.FULL, "") for i in range(3)]
    bobs = Session("b0", "id-bob", T0, later, SessionStage.FULL, "")
    store.commit(AuthChanges(sessions=[*mine, bobs]))
    store.commit(AuthChanges(end_other_sessions=[("id-alice", "a1")]))
    assert [store.get_session(f"a{i}") is not None for i in range(3)] == [False, True, False]
    assert store.get_session("b0") == bobs


def test_api_keys_are_stored_listed_and_revoked(store):
    from dataclasses import replace

    keys = [
        ApiKey(f"k{i}", f"key {i}", "hash", frozenset({Role.OPERATIONS}), "user:a", T0)
        for i in range(3)
    ]
    store.commit(AuthChanges(api_keys=keys))
    revoked = replace(keys[1], revoked_at=T0 + timedelta(days=1))
    store.commit(AuthChanges(api_keys=[revoked]))
    assert store.get_api_key("k1") == revoked
    page = store.list_api_keys(limit=2)
    rest = store.list_api_keys(cursor=page.next_cursor, limit=2)
    assert [k.id for k in page.items + rest.items] == ["k0", "k1", "k2"]


def test_audit_records_chain_in_order_and_verify(store):
    store.commit(AuthChanges(new_users=[user()], audit=[entry(n=0), entry(n=1)]))
    store.append(entry("login.failed", "user:id-alice", 2))
    records = list(store.iter_audit())
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].entry == entry(n=0)
    assert records[1].prev_hash == records[0].hash
    head = store.audit_head()
    assert head is not None and head.seq == 3 and head.hash == records[2].hash
    assert verify(records, SEALER, head) == []


def test_audit_records_page_and_filter_by_actor_and_action(store):
    for i in range(5):
        store.append(entry("login.failed" if i % 2 else "user.created", f"user:{i % 2}", i))
    page = store.audit_records(limit=2)
    assert [r.seq for r in page.items] == [1, 2]
    page2 = store.audit_records(cursor=page.next_cursor, limit=10)
    assert [r.seq for r in page2.items] == [3, 4, 5] and page2.next_cursor is None
    assert [r.seq for r in store.audit_records(action="login.failed").items] == [2, 4]
    assert [r.seq for r in store.audit_records(actor="user:0").items] == [1, 3, 5]


def test_a_malformed_cursor_is_refused(store):
    with pytest.raises(InvalidCursor):
        store.list_users(cursor="abc")
    with pytest.raises(InvalidCursor):
        store.list_api_keys(cursor="-1")
    with pytest.raises(InvalidCursor):
        store.audit_records(cursor="1.5")


def test_the_audit_table_is_append_only_and_tampering_behind_its_back_is_found(sql_store):
    from tally.audit.chain import Finding

    store = sql_store
    for i in range(4):
        store.append(entry(n=i))
    statement = "UPDATE audit_records SET actor = 'user:mallory' WHERE seq = 2"
    with pytest.raises(Exception, match="append-only"), store._transaction() as cur:
        cur.execute(statement)
    with store._transaction() as cur:
        if store.placeholder == "?":
            cur.execute("DROP TRIGGER audit_records_no_update")
        else:
            cur.execute("DROP TRIGGER audit_records_append_only ON audit_records")
        cur.execute(statement)
    problems = verify(list(store.iter_audit()), SEALER, store.audit_head())
    assert [(p.seq, p.finding) for p in problems] == [(2, Finding.EDITED)]


def test_provider_secrets_are_replaced_listed_deleted_and_audited(store):
    from tally.security.provider_secrets import SecretInfo

    store.put_secret(SecretInfo("acme", "key", T0, "user:a"), b"\x01one", entry("s.set", n=1))
    store.put_secret(SecretInfo("acme", "key", T0, "user:b"), b"\x01two", entry("s.set", n=2))
    store.put_secret(SecretInfo("beta", "key", T0, "user:a"), b"\x01three", entry("s.set", n=3))
    assert store.get_secret("acme", "key") == b"\x01two"
    assert [(i.provider, i.updated_by) for i in store.secret_infos()] == [
        ("acme", "user:b"),
        ("beta", "user:a"),
    ]
    assert store.delete_secret("acme", "key", entry("s.del", n=4)) is True
    assert store.delete_secret("acme", "key", entry("s.del", n=5)) is False
    assert store.get_secret("acme", "key") is None
    assert [r.entry.action for r in store.iter_audit()] == ["s.set", "s.set", "s.set", "s.del"]


def test_expired_sessions_are_purged_on_request(store):
    store.commit(AuthChanges(new_users=[user()]))
    old = Session("old", "id-alice", T0, T0 + timedelta(hours=1))
    new = Session("new", "id-alice", T0, T0 + timedelta(hours=9))
    store.commit(AuthChanges(sessions=[old, new]))
    store.commit(AuthChanges(purge_expired_before=T0 + timedelta(hours=1)))
    assert store.get_session("old") is None
    assert store.get_session("new") == new


RULE = ThrottleRule(attempts=5, first_wait_s=30, max_wait_s=900, forget_after_s=3600)


def _rules(username: str = "alice", source: str = "10.0.0.1") -> list:
    return [(ThrottleKey.user_from(username, source), RULE), (ThrottleKey.source(source), RULE)]


def test_login_attempts_are_granted_up_to_the_limit_then_wait(store):
    granted = [store.take_login_attempt(_rules(), T0).granted for _ in range(8)]
    assert granted == [True] * 5 + [False] * 3
    refused = store.take_login_attempt(_rules(), T0 + timedelta(seconds=29))
    assert refused.retry_at == T0 + timedelta(seconds=30)
    # After the wait, one more attempt, and then a longer wait.
    again = store.take_login_attempt(_rules(), T0 + timedelta(seconds=30))
    assert again.granted and again.waits_begun
    assert store.take_login_attempt(_rules(), T0 + timedelta(seconds=31)).retry_at == T0 + (
        timedelta(seconds=90)
    )
    # Another username from another address is not affected.
    assert store.take_login_attempt(_rules("bob", "10.0.0.2"), T0).granted


def test_a_settled_attempt_clears_or_gives_back_its_count(store):
    for _ in range(4):
        store.take_login_attempt(_rules(), T0)
    pair, source = (k.key for k, _ in _rules())
    store.settle_login_attempt([pair], [source])
    # The pair starts again; the source had one given back (4 - 1 = 3 counted), so its
    # wait begins at the second attempt from now, the pair's not yet.
    assert store.take_login_attempt(_rules(), T0).waits_begun == ()
    assert store.take_login_attempt(_rules(), T0).waits_begun == (source,)


def test_an_unlock_lifts_every_wait_of_a_username(store):
    store.commit(AuthChanges(new_users=[user()]))
    for _ in range(6):
        store.take_login_attempt([(ThrottleKey.user("alice"), RULE)], T0)
    assert not store.take_login_attempt([(ThrottleKey.user("alice"), RULE)], T0).granted
    store.commit(AuthChanges(lift_waits_of=["alice"]))
    assert store.take_login_attempt([(ThrottleKey.user("alice"), RULE)], T0).granted


def test_counts_are_forgotten_after_a_quiet_while(store):
    for _ in range(4):
        store.take_login_attempt(_rules(), T0)
    later = T0 + timedelta(seconds=RULE.forget_after_s + 1)
    assert [store.take_login_attempt(_rules(), later).granted for _ in range(5)] == [True] * 5


def test_login_attempts_taken_at_once_are_each_counted(store):
    attempts = 40
    barrier = threading.Barrier(attempts)

    def take(_: int) -> bool:
        barrier.wait()
        return bool(store.take_login_attempt(_rules(), T0).granted)

    with ThreadPoolExecutor(attempts) as pool:
        granted = list(pool.map(take, range(attempts)))
    assert granted.count(True) == RULE.attempts


def test_login_attempts_counted_through_two_connections_at_once_are_each_counted(
    sql_store, request, tmp_path
):
    """Two stores on one database, as two processes would have: one count between them."""
    other = _make(request.node.callspec.params["sql_store"], request, tmp_path)
    try:
        attempts = 30
        barrier = threading.Barrier(attempts)

        def take(i: int) -> bool:
            barrier.wait()
            target = sql_store if i % 2 else other
            return bool(target.take_login_attempt(_rules(), T0).granted)

        with ThreadPoolExecutor(attempts) as pool:
            granted = list(pool.map(take, range(attempts)))
        assert granted.count(True) == RULE.attempts
    finally:
        other.close()  # type: ignore[attr-defined]


def test_a_totp_step_is_consumed_once_even_when_sent_at_once(store):
    store.commit(AuthChanges(new_users=[user(last_totp_step=10)]))
    assert not store.consume_totp_step("id-alice", 10)  # not newer than the last one
    tries = 8
    barrier = threading.Barrier(tries)

    def consume(_: int) -> bool:
        barrier.wait()
        return bool(store.consume_totp_step("id-alice", 11))

    with ThreadPoolExecutor(tries) as pool:
        assert list(pool.map(consume, range(tries))).count(True) == 1
    assert store.get_user("id-alice").last_totp_step == 11
    assert not store.consume_totp_step("nobody", 12)
