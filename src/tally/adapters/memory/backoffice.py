"""In-memory back-office store for tests: same contract as the SQL stores."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import TypeVar

from tally.adapters.backoffice_sql import _cursor_value
from tally.audit.chain import AuditEntry, AuditHead, AuditRecord, Sealer
from tally.audit.service import Auditing
from tally.auth.model import ApiKey, Session, User
from tally.auth.ports import AuthChanges, UsernameTaken
from tally.ledger.model import Page
from tally.security.provider_secrets import SecretInfo

T = TypeVar("T")


def _page(items: list[T], cursor: str | None, limit: int) -> Page[T]:
    start = _cursor_value(cursor)
    limit = max(1, limit)
    chunk = items[start : start + limit]
    more = len(items) > start + limit
    return Page(chunk, str(start + limit) if more else None)


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
        cutoff = changes.purge_expired_before
        if cutoff is not None:
            for token in [t for t, s in self._sessions.items() if s.expires_at <= cutoff]:
                del self._sessions[token]
        for token in changes.ended_sessions:
            self._sessions.pop(token, None)
        for session in changes.sessions:
            self._sessions[session.token_hash] = session

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
        after = _cursor_value(cursor)
        limit = max(1, limit)
        with self._lock:
            found = [
                r
                for r in self.records
                if r.seq > after
                and (actor is None or r.entry.actor == actor)
                and (action is None or r.entry.action == action)
            ]
        items = found[:limit]
        return Page(items, str(items[-1].seq) if len(found) > limit else None)

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
