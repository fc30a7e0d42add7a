"""In-memory back-office store for tests: same contract as the SQL stores."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TypeVar

from tally.audit.chain import AuditEntry, AuditHead, AuditRecord, Sealer
from tally.audit.service import Auditing
from tally.auth.model import ApiKey, Session, User
from tally.auth.ports import AuthChanges, UsernameTaken
from tally.auth.throttle import (
    Attempt,
    ThrottleKey,
    ThrottleRule,
    ThrottleState,
    given_back,
    take,
)
from tally.kernel.page import Page, decode_cursor, fetch_size, page_from_rows
from tally.security.provider_secrets import SecretInfo

T = TypeVar("T")


def _page(items: list[T], cursor: str | None, limit: int) -> Page[T]:
    # The key of an item is its position plus one, as a seq would be.
    after = decode_cursor(cursor)
    found = list(enumerate(items[after : after + fetch_size(limit)], after + 1))
    return page_from_rows(found, limit, key=lambda r: r[0], item=lambda r: r[1])


class MemoryBackofficeStore:
    def __init__(self, sealer: Sealer) -> None:
        self.sealer = sealer
        self._lock = threading.RLock()
        self._users: dict[str, User] = {}
        self._user_order: list[str] = []
        self._sessions: dict[str, Session] = {}
        self._keys: dict[str, ApiKey] = {}
        self._key_order: list[str] = []
        # Exposed so tamper tests can edit the chain like someone with database access.
        self.records: list[AuditRecord] = []
        self.head: AuditHead | None = None
        self._secrets: dict[tuple[str, str], tuple[SecretInfo, bytes]] = {}
        # key -> (username, state)
        self._throttles: dict[str, tuple[str, ThrottleState]] = {}

    def commit(self, changes: AuthChanges) -> list[AuditRecord]:
        with self._lock:
            names = {u.username for u in self._users.values()}
            for user in changes.new_users:
                if user.username in names:
                    raise UsernameTaken(user.username)
                names.add(user.username)
            for user in changes.new_users:
                self._users[user.id] = user
                self._user_order.append(user.id)
            for user in changes.users:
                if user.id in self._users:
                    self._users[user.id] = user
            for key in changes.api_keys:
                if key.id not in self._keys:
                    self._key_order.append(key.id)
                    self._keys[key.id] = key
                else:
                    old = self._keys[key.id]
                    self._keys[key.id] = replace(key, secret_hash=old.secret_hash)
            self._commit_sessions(changes)
            return [self.append(entry) for entry in changes.audit]

    def _commit_sessions(self, changes: AuthChanges) -> None:
        """Removals first, then new sessions, as the SQL stores do: a new session in the same
        change as a removal (a login purging expired ones, a refresh) is kept."""
        for user_id in changes.end_sessions_of:
            for token in [t for t, s in self._sessions.items() if s.user_id == user_id]:
                del self._sessions[token]
        for user_id, kept in changes.end_other_sessions:
            for token in [
                t for t, s in self._sessions.items() if s.user_id == user_id and t != kept
            ]:
                del self._sessions[token]
        cutoff = changes.purge_expired_before
        if cutoff is not None:
            for token in [t for t, s in self._sessions.items() if s.expires_at <= cutoff]:
                del self._sessions[token]
        for username in changes.lift_waits_of:
            for name in [k for k, (u, _) in self._throttles.items() if u == username]:
                del self._throttles[name]
        for token in changes.ended_sessions:
            self._sessions.pop(token, None)
        for session in changes.sessions:
            self._sessions[session.token_hash] = session

    def take_login_attempt(
        self, rules: Sequence[tuple[ThrottleKey, ThrottleRule]], now: datetime
    ) -> Attempt:
        forget = max((rule.forget_after_s for _, rule in rules), default=0)
        with self._lock:
            for key in [
                k
                for k, (_, s) in self._throttles.items()
                if s.last_at < now - timedelta(seconds=forget) and not s.waiting(now)
            ]:
                del self._throttles[key]
            states: dict[str, ThrottleState | None] = {
                k.key: (self._throttles[k.key][1] if k.key in self._throttles else None)
                for k, _ in rules
            }
            attempt, after = take(states, list(rules), now)
            names = {k.key: k.username for k, _ in rules}
            for key, state in after.items():
                self._throttles[key] = (names[key], state)
            return attempt

    def settle_login_attempt(self, cleared: Sequence[str], returned: Sequence[str]) -> None:
        with self._lock:
            for key in cleared:
                self._throttles.pop(key, None)
            for key in returned:
                if key in self._throttles:
                    username, state = self._throttles[key]
                    self._throttles[key] = (username, given_back(state))

    def consume_totp_step(self, user_id: str, step: int) -> bool:
        with self._lock:
            found = self._users.get(user_id)
            if found is None or found.last_totp_step >= step:
                return False
            self._users[user_id] = replace(found, last_totp_step=step)
            return True

    def append(self, entry: AuditEntry) -> AuditRecord:
        with self._lock:
            record, self.head = self.sealer.next_record(self.head, entry)
            self.records.append(record)
            return record

    def append_in(self, tx: object, entry: AuditEntry) -> AuditRecord:
        """Memory has no transactions: the record is appended at once (the memory stores
        write their change before it, under their own lock)."""
        return self.append(entry)

    def put_secret(self, info: SecretInfo, sealed: bytes, audit: AuditEntry) -> None:
        with self._lock:
            self._secrets[(info.provider, info.name)] = (info, sealed)
            self.append(audit)

    def delete_secret(self, provider: str, name: str, audit: AuditEntry) -> bool:
        with self._lock:
            if self._secrets.pop((provider, name), None) is None:
                return False
            self.append(audit)
            return True

    def get_secret(self, provider: str, name: str) -> bytes | None:
        found = self._secrets.get((provider, name))
        return found[1] if found else None

    def secret_infos(self) -> list[SecretInfo]:
        with self._lock:
            return [info for _, (info, _) in sorted(self._secrets.items())]

    def get_user(self, user_id: str) -> User | None:
        return self._users.get(user_id)

    def get_user_by_name(self, username: str) -> User | None:
        with self._lock:
            return next((u for u in self._users.values() if u.username == username), None)

    def list_users(self, *, cursor: str | None = None, limit: int = 100) -> Page[User]:
        with self._lock:
            return _page([self._users[i] for i in self._user_order], cursor, limit)

    def get_session(self, token_hash: str) -> Session | None:
        return self._sessions.get(token_hash)

    def get_api_key(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

    def list_api_keys(self, *, cursor: str | None = None, limit: int = 100) -> Page[ApiKey]:
        with self._lock:
            return _page([self._keys[i] for i in self._key_order], cursor, limit)

    def audit_records(
        self,
        *,
        cursor: str | None = None,
        limit: int = 100,
        actor: str | None = None,
        action: str | None = None,
    ) -> Page[AuditRecord]:
        after = decode_cursor(cursor)
        with self._lock:
            found = [
                r
                for r in self.records
                if r.seq > after
                and (actor is None or r.entry.actor == actor)
                and (action is None or r.entry.action == action)
            ][: fetch_size(limit)]
        return page_from_rows(found, limit, key=lambda r: r.seq, item=lambda r: r)

    def iter_audit(self) -> Iterator[AuditRecord]:
        with self._lock:
            snapshot = list(self.records)
        yield from snapshot

    def audit_head(self) -> AuditHead | None:
        return self.head

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None


def scratch_auditing(actor: str, source: str = "") -> Auditing:
    """Auditing on a throwaway trail in memory: for benchmarks and simulations that set
    up configuration (or close periods) nobody will read the records of."""
    return Auditing(MemoryBackofficeStore(Sealer(bytes(32))), actor, source)
