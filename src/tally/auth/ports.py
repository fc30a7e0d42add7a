"""What the auth service needs from a store: one atomic commit of changes plus reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from tally.audit.chain import AuditEntry, AuditRecord
from tally.auth.model import ApiKey, Session, User
from tally.auth.throttle import Attempt, ThrottleKey, ThrottleRule
from tally.kernel.page import Page


class UsernameTaken(ValueError):
    def __init__(self, username: str) -> None:
        super().__init__(f"username {username!r} is taken")
        self.username = username


@dataclass(slots=True)
class AuthChanges:
    """Everything one action changes; a store writes it, audit records included, atomically."""

    new_users: list[User] = field(default_factory=list)
    users: list[User] = field(default_factory=list)  # updates of existing users
    api_keys: list[ApiKey] = field(default_factory=list)  # inserted or replaced
    sessions: list[Session] = field(default_factory=list)
    ended_sessions: list[str] = field(default_factory=list)  # token hashes
    end_sessions_of: list[str] = field(default_factory=list)  # user ids
    # (user id, token hash): every session of the user ends but that one (a password
    # change ends the others and keeps the session it was made from).
    end_other_sessions: list[tuple[str, str]] = field(default_factory=list)
    # Usernames whose login waits are lifted (an admin's unlock).
    lift_waits_of: list[str] = field(default_factory=list)
    # Sessions that expired at or before this instant are deleted (keeps the table small).
    purge_expired_before: datetime | None = None
    audit: list[AuditEntry] = field(default_factory=list)


class AuthStore(Protocol):
    def commit(self, changes: AuthChanges) -> list[AuditRecord]:
        """Write ``changes`` and append their audit records in one transaction.

        Raises :class:`UsernameTaken` (and writes nothing) if a new user's name exists.
        """
        ...

    def take_login_attempt(
        self, rules: Sequence[tuple[ThrottleKey, ThrottleRule]], now: datetime
    ) -> Attempt:
        """Check and count one login attempt on every key in one atomic step.

        Refused (nothing counted) if any key is waiting; else counted on all of them
        (see :func:`tally.auth.throttle.take`). Rows long forgotten are purged.
        """
        ...

    def settle_login_attempt(self, cleared: Sequence[str], returned: Sequence[str]) -> None:
        """A counted attempt succeeded: forget the ``cleared`` keys, give one back on the
        ``returned`` ones."""
        ...

    def consume_totp_step(self, user_id: str, step: int) -> bool:
        """Record ``step`` as the user's last TOTP step if it is newer, atomically.

        True for exactly one of any number of concurrent callers with the same step.
        """
        ...

    def get_user(self, user_id: str) -> User | None: ...

    def get_user_by_name(self, username: str) -> User | None: ...

    def list_users(self, *, cursor: str | None = None, limit: int = 100) -> Page[User]: ...

    def get_session(self, token_hash: str) -> Session | None: ...

    def get_api_key(self, key_id: str) -> ApiKey | None: ...

    def list_api_keys(self, *, cursor: str | None = None, limit: int = 100) -> Page[ApiKey]: ...
