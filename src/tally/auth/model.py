"""Users, API keys, sessions and the principal a request acts as. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from tally.auth.policy import Permission, Role, allows, is_unscoped
from tally.ledger.model import OwnerKind


@dataclass(frozen=True, slots=True, order=True)
class OwnerRef:
    """One ledger owner (an operator, a partner) a scoped principal may see."""

    kind: OwnerKind
    id: str

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> OwnerRef:
        kind, sep, owner_id = text.partition(":")
        if not sep or not owner_id:
            raise ValueError(f"owner reference {text!r} is not '<kind>:<id>'")
        return cls(OwnerKind(kind), owner_id)


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    roles: frozenset[Role]
    password_hash: str
    created_at: datetime
    # Owners a partner user may see (the root of its subtree); empty for staff.
    scope: frozenset[OwnerRef] = frozenset()
    # The TOTP secret, encrypted with the secret box; None until enrolled.
    totp_secret: bytes | None = None
    mfa_enabled: bool = False
    last_totp_step: int = 0  # refuses a code that was used already (replay)
    failed_logins: int = 0
    locked_until: datetime | None = None
    disabled: bool = False
    password_changed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    secret_hash: str  # SHA-256 of the high-entropy secret; the secret is shown once
    roles: frozenset[Role]
    created_by: str
    created_at: datetime
    scope: frozenset[OwnerRef] = frozenset()
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class SessionStage(StrEnum):
    FULL = "full"
    # Password was right but the role needs MFA and none is enrolled yet: the
    # session may only enrol a TOTP secret.
    MFA_ENROLMENT = "mfa_enrolment"


@dataclass(frozen=True, slots=True)
class Session:
    token_hash: str
    user_id: str
    created_at: datetime
    expires_at: datetime
    stage: SessionStage = SessionStage.FULL
    source: str = ""


class PrincipalKind(StrEnum):
    USER = "user"
    API_KEY = "api_key"
    ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class Principal:
    kind: PrincipalKind
    id: str
    name: str
    roles: frozenset[Role] = frozenset()
    scope: frozenset[OwnerRef] = frozenset()
    stage: SessionStage = SessionStage.FULL
    session_hash: str = field(default="", repr=False)

    @property
    def actor(self) -> str:
        return f"{self.kind.value}:{self.id}"

    def may(self, permission: Permission) -> bool:
        if self.kind is PrincipalKind.ANONYMOUS or self.stage is not SessionStage.FULL:
            return False
        return allows(self.roles, permission)

    @property
    def unscoped(self) -> bool:
        return is_unscoped(self.roles)

    def may_push_for(self, owner: OwnerRef) -> bool:
        """Whether this principal may push events (feeds, reports) for ``owner``.

        A feed's reach is its scope, whatever other roles it holds: a staff role that
        widens what it reads must not widen where it writes. Staff without the feed
        role (an admin) push for any owner their permission allows.
        """
        if not self.may(Permission.EVENTS_PUSH):
            return False
        return owner in self.scope if Role.FEED in self.roles else True


ANONYMOUS = Principal(PrincipalKind.ANONYMOUS, "-", "anonymous")
