"""One contract for the back-office store (users, sessions, API keys, audit), every adapter."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tally.audit.chain import AuditEntry, Sealer, verify
from tally.auth.model import ApiKey, OwnerRef, Session, SessionStage, User
from tally.auth.policy import Role
from tally.auth.ports import AuthChanges, UsernameTaken
from tally.kernel.page import InvalidCursor
from tally.ledger.model import OwnerKind

PG_DSN = os.environ.get("TALLY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
SEALER = Sealer(b"a" * 32)


def _make(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> object:
    if kind == "memory":
        from tally.adapters.memory.backoffice import MemoryBackofficeStore

        made: object = MemoryBackofficeStore(SEALER)
    elif request.param == "sqlite":
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
