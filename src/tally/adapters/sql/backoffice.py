"""Users, sessions, API keys and the audit chain over SQL, shared by SQLite and PostgreSQL.

The two differ in placeholders, timestamps and the error a duplicate raises; each
subclass supplies those and a transaction. Writes go through one connection under a
lock (staff traffic is small); every :class:`AuthChanges` is one transaction that
also appends its audit records to the chain.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol

from tally.audit.chain import AuditEntry, AuditHead, AuditRecord, Sealer
from tally.auth.model import ApiKey, OwnerRef, Session, SessionStage, User
from tally.auth.policy import Role
from tally.auth.ports import AuthChanges, UsernameTaken
from tally.auth.throttle import Attempt, ThrottleKey, ThrottleRule, ThrottleState, take
from tally.kernel.page import Page, decode_cursor, fetch_size, page_from_rows
from tally.security.provider_secrets import SecretInfo

# Audit records read per round trip while walking the whole chain.
AUDIT_SCAN_BATCH = 1_000

USER_COLUMNS = (
    "id, username, roles, password_hash, created_at, scope, totp_secret, mfa_enabled, "
    "last_totp_step, failed_logins, locked_until, disabled, password_changed_at"
)
KEY_COLUMNS = "id, name, secret_hash, roles, created_by, created_at, scope, expires_at, revoked_at"
AUDIT_COLUMNS = "seq, actor, action, target, at, source, before, after, detail, prev_hash, hash"


class Cursor(Protocol):
    def execute(self, sql: str, params: Any = ..., /) -> Any: ...


def _roles_out(roles: frozenset[Role]) -> str:
    return ",".join(sorted(r.value for r in roles))


def _roles_in(text: str) -> frozenset[Role]:
    return frozenset(Role(r) for r in text.split(",") if r)


def _scope_out(scope: frozenset[OwnerRef]) -> str:
    return ",".join(sorted(str(o) for o in scope))


def _scope_in(text: str) -> frozenset[OwnerRef]:
    return frozenset(OwnerRef.parse(o) for o in text.split(",") if o)


def _json_out(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


def _json_in(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class SqlBackofficeStore:
    """Implements :class:`tally.auth.ports.AuthStore` and :class:`tally.audit.ports.AuditStore`."""

    placeholder = "?"
    duplicate_error: type[Exception] = Exception
    head_lock = ""  # "FOR UPDATE" where concurrent processes may append
    # Where other processes may count login attempts at once, their rows are locked
    # from the read to the write (SQLite's write transaction already excludes them).
    row_lock = ""

    def __init__(self, sealer: Sealer) -> None:
        self.sealer = sealer

    # -- dialect ------------------------------------------------------------------------
    def _transaction(self) -> AbstractContextManager[Cursor]:
        raise NotImplementedError

    def _time_in(self, when: datetime) -> Any:
        raise NotImplementedError

    def _time_out(self, value: Any) -> datetime:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._transaction() as cur:
            return list(cur.execute(self._sql(sql), params).fetchall())

    def _opt_time_in(self, when: datetime | None) -> Any:
        return None if when is None else self._time_in(when)

    def _opt_time_out(self, value: Any) -> datetime | None:
        return None if value is None else self._time_out(value)

    # -- mapping ------------------------------------------------------------------------
    def _user_row(self, u: User) -> tuple[Any, ...]:
        return (
            u.id,
            u.username,
            _roles_out(u.roles),
            u.password_hash,
            self._time_in(u.created_at),
            _scope_out(u.scope),
            u.totp_secret,
            u.mfa_enabled,
            u.last_totp_step,
            u.failed_logins,
            self._opt_time_in(u.locked_until),
            u.disabled,
            self._opt_time_in(u.password_changed_at),
        )

    def _user(self, row: Sequence[Any]) -> User:
        return User(
            id=row[0],
            username=row[1],
            roles=_roles_in(row[2]),
            password_hash=row[3],
            created_at=self._time_out(row[4]),
            scope=_scope_in(row[5]),
            totp_secret=bytes(row[6]) if row[6] is not None else None,
            mfa_enabled=bool(row[7]),
            last_totp_step=int(row[8]),
            failed_logins=int(row[9]),
            locked_until=self._opt_time_out(row[10]),
            disabled=bool(row[11]),
            password_changed_at=self._opt_time_out(row[12]),
        )

    def _key_row(self, k: ApiKey) -> tuple[Any, ...]:
        return (
            k.id,
            k.name,
            k.secret_hash,
            _roles_out(k.roles),
            k.created_by,
            self._time_in(k.created_at),
            _scope_out(k.scope),
            self._opt_time_in(k.expires_at),
            self._opt_time_in(k.revoked_at),
        )

    def _key(self, row: Sequence[Any]) -> ApiKey:
        return ApiKey(
            id=row[0],
            name=row[1],
            secret_hash=row[2],
            roles=_roles_in(row[3]),
            created_by=row[4],
            created_at=self._time_out(row[5]),
            scope=_scope_in(row[6]),
            expires_at=self._opt_time_out(row[7]),
            revoked_at=self._opt_time_out(row[8]),
        )

    def _record(self, row: Sequence[Any]) -> AuditRecord:
        seq, actor, action, target, at, source, before, after, detail, prev_hash, digest = row
        entry = AuditEntry(
            actor=actor,
            action=action,
            target=target,
            at=self._time_out(at),
            source=source,
            before=_json_in(before),
            after=_json_in(after),
            detail=_json_in(detail) or {},
        )
        return AuditRecord(seq=int(seq), entry=entry, prev_hash=prev_hash, hash=digest)

    # -- writes -------------------------------------------------------------------------
    def commit(self, changes: AuthChanges) -> list[AuditRecord]:
        sql = self._sql
        with self._transaction() as cur:
            for user in changes.new_users:
                taken = cur.execute(
                    sql("SELECT 1 FROM auth_users WHERE username = ?"), (user.username,)
                ).fetchone()
                if taken:
                    raise UsernameTaken(user.username)
                try:
                    cur.execute(
                        sql(f"INSERT INTO auth_users ({USER_COLUMNS}) VALUES ({_marks(13)})"),
                        self._user_row(user),
                    )
                except self.duplicate_error:
                    raise UsernameTaken(user.username) from None
            for user in changes.users:
                cur.execute(
                    sql(
                        "UPDATE auth_users SET username = ?, roles = ?, password_hash = ?, "
                        "created_at = ?, scope = ?, totp_secret = ?, mfa_enabled = ?, "
                        "last_totp_step = ?, failed_logins = ?, locked_until = ?, disabled = ?, "
                        "password_changed_at = ? WHERE id = ?"
                    ),
                    (*self._user_row(user)[1:], user.id),
                )
            for key in changes.api_keys:
                cur.execute(
                    sql(
                        f"INSERT INTO auth_api_keys ({KEY_COLUMNS}) VALUES ({_marks(9)}) "
                        "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
                        "roles = excluded.roles, scope = excluded.scope, "
                        "expires_at = excluded.expires_at, revoked_at = excluded.revoked_at"
                    ),
                    self._key_row(key),
                )
            for user_id in changes.end_sessions_of:
                cur.execute(sql("DELETE FROM auth_sessions WHERE user_id = ?"), (user_id,))
            for user_id, kept in changes.end_other_sessions:
                cur.execute(
                    sql("DELETE FROM auth_sessions WHERE user_id = ? AND token_hash <> ?"),
                    (user_id, kept),
                )
            if changes.purge_expired_before is not None:
                cur.execute(
                    sql("DELETE FROM auth_sessions WHERE expires_at <= ?"),
                    (self._time_in(changes.purge_expired_before),),
                )
            for username in changes.lift_waits_of:
                cur.execute(sql("DELETE FROM auth_login_throttles WHERE username = ?"), (username,))
            for token in changes.ended_sessions:
                cur.execute(sql("DELETE FROM auth_sessions WHERE token_hash = ?"), (token,))
            for s in changes.sessions:
                cur.execute(
                    sql(
                        "INSERT INTO auth_sessions (token_hash, user_id, created_at, expires_at, "
                        "stage, source) VALUES (?, ?, ?, ?, ?, ?)"
                    ),
                    (
                        s.token_hash,
                        s.user_id,
                        self._time_in(s.created_at),
                        self._time_in(s.expires_at),
                        s.stage.value,
                        s.source,
                    ),
                )
            return [self._append(cur, entry) for entry in changes.audit]

    # -- login throttling and TOTP steps (each one atomic step) ----------------------------
    def take_login_attempt(
        self, rules: Sequence[tuple[ThrottleKey, ThrottleRule]], now: datetime
    ) -> Attempt:
        sql = self._sql
        # Locked in key order, so two transactions never wait on each other in a circle.
        rules = sorted(rules, key=lambda r: r[0].key)
        forget = max((rule.forget_after_s for _, rule in rules), default=0)
        with self._transaction() as cur:
            cur.execute(
                sql(
                    "DELETE FROM auth_login_throttles WHERE last_at < ? "
                    "AND (wait_until IS NULL OR wait_until <= ?)"
                ),
                (self._time_in(now - timedelta(seconds=forget)), self._time_in(now)),
            )
            states: dict[str, ThrottleState | None] = {}
            for key, _ in rules:
                # A placeholder row first, so that a first attempt has a row to lock too.
                cur.execute(
                    sql(
                        "INSERT INTO auth_login_throttles (key, username, attempts, last_at, "
                        "wait_until) VALUES (?, ?, 0, ?, NULL) ON CONFLICT (key) DO NOTHING"
                    ),
                    (key.key, key.username, self._time_in(now)),
                )
                row = cur.execute(
                    sql(
                        "SELECT attempts, last_at, wait_until FROM auth_login_throttles "
                        f"WHERE key = ? {self.row_lock}"
                    ),
                    (key.key,),
                ).fetchone()
                states[key.key] = ThrottleState(
                    int(row[0]), self._time_out(row[1]), self._opt_time_out(row[2])
                )
            attempt, after = take(states, list(rules), now)
            for name, state in after.items():
                cur.execute(
                    sql(
                        "UPDATE auth_login_throttles SET attempts = ?, last_at = ?, "
                        "wait_until = ? WHERE key = ?"
                    ),
                    (
                        state.attempts,
                        self._time_in(state.last_at),
                        self._opt_time_in(state.wait_until),
                        name,
                    ),
                )
            return attempt

    def settle_login_attempt(self, cleared: Sequence[str], returned: Sequence[str]) -> None:
        sql = self._sql
        with self._transaction() as cur:
            for key in cleared:
                cur.execute(sql("DELETE FROM auth_login_throttles WHERE key = ?"), (key,))
            for key in returned:
                cur.execute(
                    sql(
                        "UPDATE auth_login_throttles SET wait_until = NULL, "
                        "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END "
                        "WHERE key = ?"
                    ),
                    (key,),
                )

    def consume_totp_step(self, user_id: str, step: int) -> bool:
        # One conditional UPDATE: of several logins with the same code, one changes the row.
        with self._transaction() as cur:
            done = cur.execute(
                self._sql(
                    "UPDATE auth_users SET last_totp_step = ? WHERE id = ? AND last_totp_step < ?"
                ),
                (step, user_id, step),
            )
            return int(done.rowcount) == 1

    def append(self, entry: AuditEntry) -> AuditRecord:
        with self._transaction() as cur:
            return self._append(cur, entry)

    def append_in(self, tx: Any, entry: AuditEntry) -> AuditRecord:
        """``append`` inside another store's open transaction on the same database (its
        connection): the record commits with that store's change, or not at all."""
        return self._append(tx, entry)

    def _append(self, cur: Cursor, entry: AuditEntry) -> AuditRecord:
        sql = self._sql
        found = cur.execute(
            sql(f"SELECT seq, hash, seal FROM audit_head WHERE id = 1 {self.head_lock}")
        ).fetchone()
        head = AuditHead(int(found[0]), found[1], found[2]) if found else None
        record, new_head = self.sealer.next_record(head, entry)
        e = record.entry
        cur.execute(
            sql(f"INSERT INTO audit_records ({AUDIT_COLUMNS}) VALUES ({_marks(11)})"),
            (
                record.seq,
                e.actor,
                e.action,
                e.target,
                self._time_in(e.at),
                e.source,
                _json_out(e.before),
                _json_out(e.after),
                _json_out(dict(e.detail)),
                record.prev_hash,
                record.hash,
            ),
        )
        cur.execute(
            sql(
                "INSERT INTO audit_head (id, seq, hash, seal) VALUES (1, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
                "seal = excluded.seal"
            ),
            (new_head.seq, new_head.hash, new_head.seal),
        )
        return record

    # -- provider secrets (sealed by the caller) -----------------------------------------
    def put_secret(self, info: SecretInfo, sealed: bytes, audit: AuditEntry) -> None:
        with self._transaction() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO provider_secrets (provider, name, sealed, updated_at, updated_by) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (provider, name) DO UPDATE SET "
                    "sealed = excluded.sealed, updated_at = excluded.updated_at, "
                    "updated_by = excluded.updated_by"
                ),
                (info.provider, info.name, sealed, self._time_in(info.updated_at), info.updated_by),
            )
            self._append(cur, audit)

    def delete_secret(self, provider: str, name: str, audit: AuditEntry) -> bool:
        with self._transaction() as cur:
            found = cur.execute(
                self._sql("SELECT 1 FROM provider_secrets WHERE provider = ? AND name = ?"),
                (provider, name),
            ).fetchone()
            if not found:
                return False
            cur.execute(
                self._sql("DELETE FROM provider_secrets WHERE provider = ? AND name = ?"),
                (provider, name),
            )
            self._append(cur, audit)
            return True

    def get_secret(self, provider: str, name: str) -> bytes | None:
        found = self._rows(
            "SELECT sealed FROM provider_secrets WHERE provider = ? AND name = ?", (provider, name)
        )
        return bytes(found[0][0]) if found else None

    def secret_infos(self) -> list[SecretInfo]:
        return [
            SecretInfo(p, n, self._time_out(at), by)
            for p, n, at, by in self._rows(
                "SELECT provider, name, updated_at, updated_by FROM provider_secrets "
                "ORDER BY provider, name"
            )
        ]

    # -- reads --------------------------------------------------------------------------
    def get_user(self, user_id: str) -> User | None:
        found = self._rows(f"SELECT {USER_COLUMNS} FROM auth_users WHERE id = ?", (user_id,))
        return self._user(found[0]) if found else None

    def get_user_by_name(self, username: str) -> User | None:
        found = self._rows(f"SELECT {USER_COLUMNS} FROM auth_users WHERE username = ?", (username,))
        return self._user(found[0]) if found else None

    def list_users(self, *, cursor: str | None = None, limit: int = 100) -> Page[User]:
        return self._page(
            f"SELECT seq, {USER_COLUMNS} FROM auth_users WHERE seq > ? ORDER BY seq LIMIT ?",
            cursor,
            limit,
            self._user,
        )

    def get_session(self, token_hash: str) -> Session | None:
        found = self._rows(
            "SELECT token_hash, user_id, created_at, expires_at, stage, source "
            "FROM auth_sessions WHERE token_hash = ?",
            (token_hash,),
        )
        if not found:
            return None
        th, user_id, created_at, expires_at, stage, source = found[0]
        return Session(
            th,
            user_id,
            self._time_out(created_at),
            self._time_out(expires_at),
            SessionStage(stage),
            source,
        )

    def get_api_key(self, key_id: str) -> ApiKey | None:
        found = self._rows(f"SELECT {KEY_COLUMNS} FROM auth_api_keys WHERE id = ?", (key_id,))
        return self._key(found[0]) if found else None

    def list_api_keys(self, *, cursor: str | None = None, limit: int = 100) -> Page[ApiKey]:
        return self._page(
            f"SELECT seq, {KEY_COLUMNS} FROM auth_api_keys WHERE seq > ? ORDER BY seq LIMIT ?",
            cursor,
            limit,
            self._key,
        )

    def _page(
        self,
        sql: str,
        cursor: str | None,
        limit: int,
        make: Callable[[Sequence[Any]], Any],
        extra: Sequence[Any] = (),
    ) -> Page[Any]:
        found = self._rows(sql, (*extra, decode_cursor(cursor), fetch_size(limit)))
        return page_from_rows(found, limit, key=lambda r: int(r[0]), item=lambda r: make(r[1:]))

    def audit_records(
        self,
        *,
        cursor: str | None = None,
        limit: int = 100,
        actor: str | None = None,
        action: str | None = None,
    ) -> Page[AuditRecord]:
        where: list[str] = []
        params: list[Any] = []
        if actor is not None:
            where.append("actor = ?")
            params.append(actor)
        if action is not None:
            where.append("action = ?")
            params.append(action)
        where.append("seq > ?")
        found = self._rows(
            f"SELECT {AUDIT_COLUMNS} FROM audit_records WHERE {' AND '.join(where)} "
            "ORDER BY seq LIMIT ?",
            (*params, decode_cursor(cursor), fetch_size(limit)),
        )
        return page_from_rows(found, limit, key=lambda r: int(r[0]), item=self._record)

    def iter_audit(self) -> Iterator[AuditRecord]:
        after = 0
        while True:
            found = self._rows(
                f"SELECT {AUDIT_COLUMNS} FROM audit_records WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, AUDIT_SCAN_BATCH),
            )
            for row in found:
                yield self._record(row)
            if len(found) < AUDIT_SCAN_BATCH:
                return
            after = int(found[-1][0])

    def audit_head(self) -> AuditHead | None:
        found = self._rows("SELECT seq, hash, seal FROM audit_head WHERE id = 1")
        return AuditHead(int(found[0][0]), found[0][1], found[0][2]) if found else None


def _marks(n: int) -> str:
    return ", ".join(["?"] * n)
