"""The auth service: logins with throttling and TOTP, sessions, users, roles and API keys.

Every change it makes is committed together with its audit records.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from tally.audit.chain import AuditEntry
from tally.auth.model import (
    ApiKey,
    OwnerRef,
    Principal,
    PrincipalKind,
    Session,
    SessionStage,
    User,
)
from tally.auth.policy import Role, requires_mfa
from tally.auth.ports import AuthChanges, AuthStore, UsernameTaken
from tally.auth.throttle import Attempt, ThrottleKey, ThrottleRule
from tally.kernel.clock import Clock
from tally.kernel.limits import AuthLimits
from tally.kernel.page import Page
from tally.security import totp
from tally.security.passwords import PasswordHasher, password_problem
from tally.security.secretbox import SecretBox

log = structlog.get_logger("tally.auth")

SESSION_PREFIX = "ts_"
API_KEY_PREFIX = "tk_"
SYSTEM = "system"


class AuthError(Exception):
    """A refused auth request; ``code`` is stable and safe to show."""

    def __init__(self, code: str, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        # For a throttled login: seconds until an attempt may be made again.
        self.retry_after_s = retry_after_s


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def user_view(user: User) -> dict[str, Any]:
    """What the audit trail records of a user: never a hash or a secret."""
    return {
        "username": user.username,
        "roles": sorted(r.value for r in user.roles),
        "scope": sorted(str(o) for o in user.scope),
        "mfa_enabled": user.mfa_enabled,
        "disabled": user.disabled,
        "locked_until": user.locked_until.isoformat() if user.locked_until else None,
    }


def key_view(key: ApiKey) -> dict[str, Any]:
    return {
        "name": key.name,
        "roles": sorted(r.value for r in key.roles),
        "scope": sorted(str(o) for o in key.scope),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str
    session: Session
    user: User


@dataclass(frozen=True, slots=True)
class Enrolment:
    secret: str
    uri: str


class AuthService:
    def __init__(
        self,
        store: AuthStore,
        clock: Clock,
        hasher: PasswordHasher,
        box: SecretBox,
        limits: AuthLimits | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.hasher = hasher
        self.box = box
        self.limits = limits or AuthLimits()
        # Verified against when the username is unknown, so timing does not tell.
        self._dummy_hash: str | None = None

    # -- helpers ------------------------------------------------------------------------
    def _entry(
        self,
        actor: str,
        action: str,
        target: str,
        source: str,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        **detail: Any,
    ) -> AuditEntry:
        return AuditEntry(
            actor=actor,
            action=action,
            target=target,
            at=self.clock.now(),
            source=source,
            before=before,
            after=after,
            detail=detail,
        )

    def _require_user(self, user_id: str) -> User:
        user = self.store.get_user(user_id)
        if user is None:
            raise AuthError("not_found", f"no user {user_id!r}")
        return user

    def _check_username(self, username: str) -> None:
        if not username or len(username) > self.limits.username_max_length:
            raise AuthError("invalid_username", "a username has 1 to 64 characters")
        if not all(c.isalnum() or c in "._-@" for c in username) or not username.isascii():
            raise AuthError("invalid_username", "a username uses letters, digits and . _ - @")

    @staticmethod
    def _check_scope(roles: frozenset[Role], scope: frozenset[OwnerRef]) -> None:
        if Role.PARTNER in roles and not scope:
            raise AuthError("scope_required", "a partner must be given the owners it may see")
        if Role.PARTNER in roles and len(roles) > 1:
            raise AuthError("invalid_roles", "the partner role is not combined with staff roles")
        if not roles:
            raise AuthError("invalid_roles", "give at least one role")

    # -- users --------------------------------------------------------------------------
    def create_user(
        self,
        actor: str,
        username: str,
        password: str,
        roles: frozenset[Role],
        *,
        scope: frozenset[OwnerRef] = frozenset(),
        source: str = "",
    ) -> User:
        self._check_username(username)
        self._check_scope(roles, scope)
        problem = password_problem(password)
        if problem:
            raise AuthError("password_rejected", problem)
        now = self.clock.now()
        user = User(
            id=uuid.uuid4().hex,
            username=username,
            roles=roles,
            password_hash=self.hasher.hash(password),
            created_at=now,
            scope=scope,
            password_changed_at=now,
        )
        entry = self._entry(actor, "user.created", f"user:{user.id}", source, after=user_view(user))
        try:
            self.store.commit(AuthChanges(new_users=[user], audit=[entry]))
        except UsernameTaken:
            raise AuthError("username_taken", f"username {username!r} is taken") from None
        return user

    def update_user(
        self,
        actor: str,
        user_id: str,
        *,
        roles: frozenset[Role] | None = None,
        scope: frozenset[OwnerRef] | None = None,
        disabled: bool | None = None,
        source: str = "",
    ) -> User:
        before = self._require_user(user_id)
        after = replace(
            before,
            roles=before.roles if roles is None else roles,
            scope=before.scope if scope is None else scope,
            disabled=before.disabled if disabled is None else disabled,
        )
        self._check_scope(after.roles, after.scope)
        if after == before:
            return before
        losing_admin = self._is_active_admin(before) and not self._is_active_admin(after)
        if losing_admin and not any(
            self._is_active_admin(u) and u.id != user_id for u in self._all_users()
        ):
            raise AuthError("last_admin", "the last active admin cannot lose admin rights")
        changes = AuthChanges(users=[after])
        changes.audit.append(
            self._entry(
                actor,
                "user.updated",
                f"user:{user_id}",
                source,
                user_view(before),
                user_view(after),
            )
        )
        # Losing a role or being disabled takes effect now, not at the session's end.
        changes.end_sessions_of.append(user_id)
        self.store.commit(changes)
        return after

    @staticmethod
    def _is_active_admin(user: User) -> bool:
        return Role.ADMIN in user.roles and not user.disabled

    def _all_users(self) -> list[User]:
        found: list[User] = []
        cursor: str | None = None
        while True:
            page = self.store.list_users(cursor=cursor, limit=self.limits.page_max_size)
            found.extend(page.items)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    def unlock_user(self, actor: str, user_id: str, *, source: str = "") -> User:
        """Lift every login wait of the user's name (and a lock left by older versions)."""
        before = self._require_user(user_id)
        after = replace(before, failed_logins=0, locked_until=None)
        entry = self._entry(
            actor, "user.unlocked", f"user:{user_id}", source, user_view(before), user_view(after)
        )
        self.store.commit(
            AuthChanges(users=[after], lift_waits_of=[before.username], audit=[entry])
        )
        return after

    def reset_mfa(self, actor: str, user_id: str, *, source: str = "") -> User:
        """Forget a user's TOTP secret: their next login must enrol a new one."""
        before = self._require_user(user_id)
        after = replace(before, totp_secret=None, mfa_enabled=False, last_totp_step=0)
        entry = self._entry(
            actor, "user.mfa_reset", f"user:{user_id}", source, user_view(before), user_view(after)
        )
        self.store.commit(AuthChanges(users=[after], end_sessions_of=[user_id], audit=[entry]))
        return after

    def get_user(self, user_id: str) -> User | None:
        return self.store.get_user(user_id)

    def list_users(self, *, cursor: str | None = None, limit: int = 100) -> Page[User]:
        return self.store.list_users(cursor=cursor, limit=min(limit, self.limits.page_max_size))

    # -- logins -------------------------------------------------------------------------
    def _throttle_rules(self, username: str, source: str) -> list[tuple[ThrottleKey, ThrottleRule]]:
        """What one login attempt is counted against: the username from this address,
        this address, and the username from anywhere (see tally.auth.throttle)."""
        lim = self.limits
        strict = (lim.login_first_wait_s, lim.login_max_wait_s, lim.login_forget_after_s)
        return [
            (
                ThrottleKey.user_from(username, source),
                ThrottleRule(lim.login_attempts_per_user_source, *strict),
            ),
            (ThrottleKey.source(source), ThrottleRule(lim.login_attempts_per_source, *strict)),
            (
                ThrottleKey.user(username),
                ThrottleRule(
                    lim.login_attempts_per_user,
                    lim.login_user_first_wait_s,
                    lim.login_user_max_wait_s,
                    lim.login_forget_after_s,
                ),
            ),
        ]

    def _take_attempt(
        self, username: str, source: str
    ) -> tuple[Attempt, list[tuple[ThrottleKey, ThrottleRule]]]:
        """Count one attempt before anything is checked; refused while a wait runs.

        The answer to a refused attempt is the same whether the username exists or not.
        """
        now = self.clock.now()
        rules = self._throttle_rules(username, source)
        attempt = self.store.take_login_attempt(rules, now)
        if not attempt.granted:
            assert attempt.retry_at is not None
            wait = max(1, math.ceil((attempt.retry_at - now).total_seconds()))
            # Logged, not audited: refused unseen, they change nothing and could be many.
            log.info("login_throttled", source=source, retry_after_s=wait)
            raise AuthError(
                "too_many_attempts", "too many attempts; try again later", retry_after_s=wait
            )
        return attempt, rules

    def _succeeded(self, rules: list[tuple[ThrottleKey, ThrottleRule]]) -> None:
        """The attempt was no guess: forget the username's counts (from this address and
        from anywhere) and give the address back its attempt."""
        pair, from_source, of_user = (k.key for k, _ in rules)
        self.store.settle_login_attempt([pair, of_user], [from_source])

    def login(
        self, username: str, password: str, totp_code: str | None = None, *, source: str = ""
    ) -> LoginResult:
        attempt, rules = self._take_attempt(username, source)
        try:
            result = self._login(username, password, totp_code, source, attempt)
        except AuthError as exc:
            if exc.code == "mfa_required":
                # The password was right; the code comes in the next request.
                self.store.settle_login_attempt([], [k.key for k, _ in rules])
            raise
        self._succeeded(rules)
        return result

    def _login(
        self, username: str, password: str, totp_code: str | None, source: str, attempt: Attempt
    ) -> LoginResult:
        now = self.clock.now()
        user = self.store.get_user_by_name(username)
        if user is None or user.disabled:
            # Verified all the same, so that timing does not tell either case apart.
            if self._dummy_hash is None:
                self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
            self.hasher.verify(self._dummy_hash, password)
            if user is None:
                self._failed(f"anonymous:{username[:64]}", "user:?", source, "unknown", attempt)
            else:
                self._failed(f"user:{user.id}", f"user:{user.id}", source, "disabled", attempt)
            raise AuthError("invalid_credentials", "wrong username or password")
        target = f"user:{user.id}"
        if not self.hasher.verify(user.password_hash, password):
            self._failed(target, target, source, "password", attempt)
            raise AuthError("invalid_credentials", "wrong username or password")

        stage = SessionStage.FULL
        if user.mfa_enabled and user.totp_secret is not None:
            if not totp_code:
                raise AuthError("mfa_required", "this account needs a TOTP code")
            secret = self.box.open(user.totp_secret, user.id.encode()).decode()
            step = totp.matching_step(secret, totp_code, now, user.last_totp_step)
            # Consumed in one conditional write: of the same code sent many times at once,
            # exactly one request gets the step.
            if step is None or not self.store.consume_totp_step(user.id, step):
                self._failed(target, target, source, "totp", attempt)
                raise AuthError("invalid_mfa_code", "the TOTP code is wrong or was used already")
            user = replace(user, last_totp_step=step)
        elif requires_mfa(user.roles):
            stage = SessionStage.MFA_ENROLMENT

        ttl = (
            self.limits.session_ttl_s
            if stage is SessionStage.FULL
            else self.limits.enrolment_session_ttl_s
        )
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        session = Session(
            token_hash=token_hash(token),
            user_id=user.id,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
            stage=stage,
            source=source,
        )
        entry = self._entry(f"user:{user.id}", "login.succeeded", target, source, stage=stage.value)
        # The user's row is not written: a stale copy would undo concurrent changes.
        self.store.commit(AuthChanges(sessions=[session], audit=[entry], purge_expired_before=now))
        return LoginResult(token, session, user)

    def _failed(self, actor: str, target: str, source: str, reason: str, attempt: Attempt) -> None:
        """Audit a failed attempt, and the waits it began. Nobody's account or sessions
        change: a failed login is somebody else's as often as not."""
        changes = AuthChanges()
        changes.audit.append(self._entry(actor, "login.failed", target, source, reason=reason))
        if attempt.waits_begun:
            changes.audit.append(
                self._entry(
                    SYSTEM, "login.throttled", target, source, keys=list(attempt.waits_begun)
                )
            )
            log.warning("login_wait_begun", keys=len(attempt.waits_begun), source=source)
        self.store.commit(changes)

    def logout(self, principal: Principal, *, source: str = "") -> None:
        if principal.kind is not PrincipalKind.USER or not principal.session_hash:
            raise AuthError("not_a_session", "only a staff session can log out")
        entry = self._entry(principal.actor, "logout.succeeded", principal.actor, source)
        self.store.commit(AuthChanges(ended_sessions=[principal.session_hash], audit=[entry]))

    def authenticate(self, token: str) -> Principal | None:
        """The principal behind a session token or API key, or None."""
        if token.startswith(API_KEY_PREFIX):
            return self._authenticate_key(token)
        if not token.startswith(SESSION_PREFIX):
            return None
        hashed = token_hash(token)
        session = self.store.get_session(hashed)
        now = self.clock.now()
        if session is None or session.expires_at <= now:
            return None
        user = self.store.get_user(session.user_id)
        if user is None or user.disabled:
            return None
        # Failed logins (anybody's) end no session: a session ends by logout, expiry, or
        # an admin's change to the user.
        return Principal(
            PrincipalKind.USER,
            user.id,
            user.username,
            roles=user.roles,
            scope=user.scope,
            stage=session.stage,
            session_hash=hashed,
        )

    def change_password(
        self, principal: Principal, current: str, new: str, *, source: str = ""
    ) -> None:
        user = self._require_user(principal.id)
        # A wrong current password is a guess like any other: throttled like a login.
        attempt, rules = self._take_attempt(user.username, source)
        if not self.hasher.verify(user.password_hash, current):
            target = f"user:{user.id}"
            self._failed(principal.actor, target, source, "password_change", attempt)
            raise AuthError("invalid_credentials", "the current password is wrong")
        self._succeeded(rules)
        problem = password_problem(new)
        if problem:
            raise AuthError("password_rejected", problem)
        if new == current:
            raise AuthError("password_rejected", "the new password must differ from the old one")
        now = self.clock.now()
        after = replace(user, password_hash=self.hasher.hash(new), password_changed_at=now)
        entry = self._entry(principal.actor, "user.password_changed", f"user:{user.id}", source)
        # Every other session of the user ends; this one goes on.
        changes = AuthChanges(users=[after], audit=[entry])
        if principal.session_hash:
            changes.end_other_sessions.append((user.id, principal.session_hash))
        else:
            changes.end_sessions_of.append(user.id)
        self.store.commit(changes)

    # -- MFA enrolment ------------------------------------------------------------------
    def begin_enrolment(self, principal: Principal, *, source: str = "") -> Enrolment:
        user = self._require_user(principal.id)
        if user.mfa_enabled:
            raise AuthError("mfa_already_enrolled", "ask an admin to reset MFA first")
        secret = totp.new_secret()
        after = replace(user, totp_secret=self.box.seal(secret.encode(), user.id.encode()))
        entry = self._entry(principal.actor, "user.mfa_enrolment_started", principal.actor, source)
        self.store.commit(AuthChanges(users=[after], audit=[entry]))
        return Enrolment(secret, totp.provisioning_uri(secret, user.username))

    def verify_second_factor(self, user_id: str, code: str) -> bool:
        """A step-up check (a payout run's approval): whether ``code`` is a fresh TOTP
        code of an active user with MFA on. Its time step is consumed, so the same code
        (or an older one) never passes twice."""
        user = self.store.get_user(user_id)
        if user is None or user.disabled or not user.mfa_enabled or user.totp_secret is None:
            return False
        secret = self.box.open(user.totp_secret, user.id.encode()).decode()
        step = totp.matching_step(secret, code, self.clock.now(), user.last_totp_step)
        return step is not None and self.store.consume_totp_step(user.id, step)

    def confirm_enrolment(self, principal: Principal, code: str, *, source: str = "") -> str:
        """Turn MFA on with a first valid code; returns a fresh full session token."""
        user = self._require_user(principal.id)
        if user.mfa_enabled or user.totp_secret is None:
            raise AuthError("mfa_not_pending", "start an enrolment first")
        now = self.clock.now()
        secret = self.box.open(user.totp_secret, user.id.encode()).decode()
        step = totp.matching_step(secret, code, now, user.last_totp_step)
        if step is None or not self.store.consume_totp_step(user.id, step):
            raise AuthError("invalid_mfa_code", "the TOTP code is wrong")
        after = replace(user, mfa_enabled=True, last_totp_step=step)
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        session = Session(
            token_hash(token),
            user.id,
            now,
            now + timedelta(seconds=self.limits.session_ttl_s),
            SessionStage.FULL,
            source,
        )
        entry = self._entry(
            principal.actor,
            "user.mfa_enrolled",
            principal.actor,
            source,
            user_view(user),
            user_view(after),
        )
        ended = [principal.session_hash] if principal.session_hash else []
        self.store.commit(
            AuthChanges(users=[after], sessions=[session], ended_sessions=ended, audit=[entry])
        )
        return token

    # -- API keys -----------------------------------------------------------------------
    def create_api_key(
        self,
        actor: str,
        name: str,
        roles: frozenset[Role],
        *,
        scope: frozenset[OwnerRef] = frozenset(),
        expires_at: datetime | None = None,
        source: str = "",
    ) -> tuple[ApiKey, str]:
        """A new key and its token (shown once; only a hash is kept)."""
        if not name or len(name) > self.limits.name_max_length:
            raise AuthError("invalid_name", "a key's name has 1 to 128 characters")
        if Role.ADMIN in roles:
            raise AuthError("invalid_roles", "machine clients do not get the admin role")
        self._check_scope(roles, scope)
        now = self.clock.now()
        if expires_at is not None and (
            expires_at <= now or expires_at > now + timedelta(seconds=self.limits.api_key_max_ttl_s)
        ):
            raise AuthError("invalid_expiry", "a key expires in the future, within a year")
        key_id = uuid.uuid4().hex[:16]
        secret = secrets.token_urlsafe(32)
        key = ApiKey(
            id=key_id,
            name=name,
            secret_hash=token_hash(secret),
            roles=roles,
            created_by=actor,
            created_at=now,
            scope=scope,
            expires_at=expires_at,
        )
        entry = self._entry(
            actor, "api_key.created", f"api_key:{key_id}", source, after=key_view(key)
        )
        self.store.commit(AuthChanges(api_keys=[key], audit=[entry]))
        return key, f"{API_KEY_PREFIX}{key_id}.{secret}"

    def revoke_api_key(self, actor: str, key_id: str, *, source: str = "") -> ApiKey:
        key = self.store.get_api_key(key_id)
        if key is None:
            raise AuthError("not_found", f"no API key {key_id!r}")
        if key.revoked_at is not None:
            return key
        after = replace(key, revoked_at=self.clock.now())
        entry = self._entry(
            actor, "api_key.revoked", f"api_key:{key_id}", source, key_view(key), key_view(after)
        )
        self.store.commit(AuthChanges(api_keys=[after], audit=[entry]))
        return after

    def list_api_keys(self, *, cursor: str | None = None, limit: int = 100) -> Page[ApiKey]:
        return self.store.list_api_keys(cursor=cursor, limit=min(limit, self.limits.page_max_size))

    def _authenticate_key(self, token: str) -> Principal | None:
        key_id, sep, secret = token[len(API_KEY_PREFIX) :].partition(".")
        if not sep:
            return None
        key = self.store.get_api_key(key_id)
        if key is None or not hmac.compare_digest(key.secret_hash, token_hash(secret)):
            return None
        now = self.clock.now()
        if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
            return None
        return Principal(PrincipalKind.API_KEY, key.id, key.name, roles=key.roles, scope=key.scope)
