"""Wire shapes. Amounts are decimal strings in major units; times are ISO 8601 UTC."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from tally.audit.chain import AuditRecord, Problem
from tally.auth.model import ApiKey, Principal, User
from tally.auth.policy import Role
from tally.kernel.currency import is_known
from tally.kernel.money import format_amount
from tally.ledger.codec import request_to_dict
from tally.ledger.model import Account, Balance, Rejection, Transfer

T = TypeVar("T")

# Identifiers and names: no control characters (PostgreSQL text refuses NUL, and
# nobody means a control character in a name).
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
OwnerText = Annotated[str, Field(min_length=3, max_length=200, pattern=PRINTABLE)]

AMOUNT = Field(description="decimal string in major units of the currency", examples=["12.34"])


class Input(BaseModel):
    """Request bodies refuse fields they do not know (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid")


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null at end")


class AccountOut(BaseModel):
    id: str
    owner_kind: str
    owner_id: str
    currency: str
    purpose: str
    flags: int
    metadata: dict[str, str]

    @classmethod
    def of(cls, a: Account) -> AccountOut:
        return cls(
            id=a.id,
            owner_kind=a.owner_kind.value,
            owner_id=a.owner_id,
            currency=a.currency,
            purpose=a.purpose,
            flags=int(a.flags),
            metadata=dict(a.metadata),
        )


class BalanceOut(BaseModel):
    account_id: str
    currency: str
    at: datetime | None = Field(description="the instant asked for; null means now")
    debits_pending: str = AMOUNT
    debits_posted: str = AMOUNT
    credits_pending: str = AMOUNT
    credits_posted: str = AMOUNT
    net_credit: str = AMOUNT

    @classmethod
    def of(cls, a: Account, b: Balance, at: datetime | None) -> BalanceOut:
        c = a.currency
        return cls(
            account_id=a.id,
            currency=c,
            at=at,
            debits_pending=format_amount(b.debits_pending, c),
            debits_posted=format_amount(b.debits_posted, c),
            credits_pending=format_amount(b.credits_pending, c),
            credits_posted=format_amount(b.credits_posted, c),
            net_credit=format_amount(b.net_credit, c),
        )


class OwnerBalanceOut(BaseModel):
    account: AccountOut
    balance: BalanceOut


class TransferOut(BaseModel):
    id: str
    kind: str
    debit_account_id: str
    credit_account_id: str
    amount: str = AMOUNT
    currency: str
    code: str
    pending_id: str
    timeout_s: int
    occurred_at: datetime
    recorded_at: datetime
    event_ref: str
    metadata: dict[str, str]
    status: str | None
    resolved_at: datetime | None
    expires_at: datetime | None

    @classmethod
    def of(cls, t: Transfer) -> TransferOut:
        return cls(
            id=t.id,
            kind=t.kind.value,
            debit_account_id=t.debit_account_id,
            credit_account_id=t.credit_account_id,
            amount=format_amount(t.amount, t.currency),
            currency=t.currency,
            code=t.code,
            pending_id=t.pending_id,
            timeout_s=t.timeout_s,
            occurred_at=t.occurred_at,
            recorded_at=t.recorded_at,
            event_ref=t.event_ref,
            metadata=dict(t.metadata),
            status=t.status.value if t.status else None,
            resolved_at=t.resolved_at,
            expires_at=t.expires_at,
        )


class RejectionOut(BaseModel):
    transfer_id: str
    reason: str = Field(description="stable result code, e.g. exceeds_credits")
    reason_number: int
    transient: bool = Field(description="the same request may succeed later unchanged")
    rejected_at: datetime
    amount: str | None = Field(description="the amount asked for, as a decimal string")
    request: dict[str, Any] = Field(description="the refused request as it was received")
    resolved: bool = Field(description="the transfer has been committed since")

    @classmethod
    def of(cls, r: Rejection, resolved: bool) -> RejectionOut:
        request = request_to_dict(r.request)
        minor = request.pop("amount", None)
        currency = request.get("currency")
        amount: str | None = None
        if isinstance(minor, int):
            known = isinstance(currency, str) and is_known(currency)
            amount = format_amount(minor, str(currency)) if known else str(minor)
            request["amount_minor"] = str(minor)
        elif minor is not None:
            request["amount_minor"] = str(minor)
        return cls(
            transfer_id=r.transfer_id,
            reason=r.code.slug,
            reason_number=int(r.code),
            transient=r.code.transient,
            rejected_at=r.rejected_at,
            amount=amount,
            request=request,
            resolved=resolved,
        )


class ExportIn(Input):
    start: AwareDatetime = Field(description="inclusive")
    end: AwareDatetime = Field(description="exclusive; at most 366 days after start")
    owner: OwnerText | None = Field(
        default=None, description="only transfers touching this owner, e.g. operator:op1"
    )


class FiguresRowOut(BaseModel):
    key: dict[str, str] = Field(description="the dimensions asked for, always with currency")
    currency: str
    turnover: str = AMOUNT
    wins: str = AMOUNT
    ggr: str = AMOUNT
    bonuses: str = AMOUNT
    jackpot_contributions: str = AMOUNT
    ngr: str = AMOUNT


class AccrualOut(BaseModel):
    key: dict[str, str]
    currency: str
    accrued: str = AMOUNT


class StatementOut(BaseModel):
    contract_id: str
    operator: str
    period: str
    sha256: str
    closed_at: datetime


class OrphanOut(BaseModel):
    ref: str  # the original the rollback names (``provider:tx_id:*``: any kind)
    rollback_key: str
    # The rollback's own instant, operator and currency, the contract period it falls in
    # and whether that period is closed. ``null``: unknown (no contract was in force, or
    # the rollback was stored before these were recorded).
    occurred_at: datetime | None = None
    operator: str | None = None
    currency: str | None = None
    contract_id: str | None = None
    period: str | None = None
    outlived_close: bool | None = None


class SettlementProblemOut(BaseModel):
    event_key: str
    reason: str
    at: datetime


class ConfigPutOut(BaseModel):
    outcome: Literal["created", "exists"]


class PartnerTreeOut(BaseModel):
    agents: list[dict[str, Any]]
    placements: list[dict[str, Any]]


class FxImportOut(BaseModel):
    created: int
    existing: int
    conflicts: list[dict[str, Any]]


class ProviderSecretOut(BaseModel):
    provider: str
    name: str
    updated_at: datetime
    updated_by: str


class ProviderSecretIn(Input):
    value: str = Field(min_length=1, max_length=4096, description="stored sealed; never shown")


class RedriveIn(Input):
    """Corrections to apply before re-driving; amounts and currency are not fixable."""

    debit_account_id: str | None = Field(default=None, max_length=128, pattern=PRINTABLE)
    credit_account_id: str | None = Field(default=None, max_length=128, pattern=PRINTABLE)
    code: str | None = Field(default=None, max_length=64, pattern=PRINTABLE)


class RedriveOut(BaseModel):
    result: str = Field(description="the ledger's result code for the re-driven request")
    ok: bool
    transfer: TransferOut | None


class UserOut(BaseModel):
    id: str
    username: str
    roles: list[Role]
    scope: list[str]
    mfa_enabled: bool
    disabled: bool
    locked_until: datetime | None
    created_at: datetime
    password_changed_at: datetime | None

    @classmethod
    def of(cls, u: User) -> UserOut:
        return cls(
            id=u.id,
            username=u.username,
            roles=sorted(u.roles),
            scope=sorted(str(o) for o in u.scope),
            mfa_enabled=u.mfa_enabled,
            disabled=u.disabled,
            locked_until=u.locked_until,
            created_at=u.created_at,
            password_changed_at=u.password_changed_at,
        )


class UserCreateIn(Input):
    username: str = Field(min_length=1, max_length=64, pattern=PRINTABLE)
    password: str = Field(min_length=1, max_length=256)
    roles: list[Role] = Field(min_length=1, max_length=5)
    scope: list[OwnerText] = Field(default_factory=list, max_length=100)


class UserPatchIn(Input):
    roles: list[Role] | None = Field(default=None, min_length=1, max_length=5)
    scope: list[OwnerText] | None = Field(default=None, max_length=100)
    disabled: bool | None = None


class ApiKeyOut(BaseModel):
    id: str
    name: str
    roles: list[Role]
    scope: list[str]
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, k: ApiKey) -> ApiKeyOut:
        return cls(
            id=k.id,
            name=k.name,
            roles=sorted(k.roles),
            scope=sorted(str(o) for o in k.scope),
            created_by=k.created_by,
            created_at=k.created_at,
            expires_at=k.expires_at,
            revoked_at=k.revoked_at,
        )


class ApiKeyCreateIn(Input):
    name: str = Field(min_length=1, max_length=128, pattern=PRINTABLE)
    roles: list[Role] = Field(min_length=1, max_length=5)
    scope: list[OwnerText] = Field(default_factory=list, max_length=100)
    expires_at: AwareDatetime | None = None


class ApiKeyCreatedOut(BaseModel):
    key: ApiKeyOut
    token: str = Field(description="shown once; only a hash of it is kept")


class AuditRecordOut(BaseModel):
    seq: int
    actor: str
    action: str
    target: str
    at: datetime
    source: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, r: AuditRecord) -> AuditRecordOut:
        e = r.entry
        return cls(
            seq=r.seq,
            actor=e.actor,
            action=e.action,
            target=e.target,
            at=e.at,
            source=e.source,
            before=dict(e.before) if e.before is not None else None,
            after=dict(e.after) if e.after is not None else None,
            detail=dict(e.detail),
            prev_hash=r.prev_hash,
            hash=r.hash,
        )


class ProblemOut(BaseModel):
    seq: int
    finding: str
    detail: str

    @classmethod
    def of(cls, p: Problem) -> ProblemOut:
        return cls(seq=p.seq, finding=p.finding.value, detail=p.detail)


class AuditVerifyOut(BaseModel):
    checked: int
    intact: bool
    problems: list[ProblemOut]


class LoginIn(Input):
    username: str = Field(min_length=1, max_length=64, pattern=PRINTABLE)
    password: str = Field(min_length=1, max_length=256)
    totp_code: str | None = Field(default=None, max_length=16)


class TokenOut(BaseModel):
    token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a scheme name
    expires_at: datetime
    stage: str = Field(description="'full', or 'mfa_enrolment' when a TOTP must be enrolled")


class MeOut(BaseModel):
    kind: str
    id: str
    name: str
    roles: list[Role]
    scope: list[str]
    stage: str

    @classmethod
    def of(cls, p: Principal) -> MeOut:
        return cls(
            kind=p.kind.value,
            id=p.id,
            name=p.name,
            roles=sorted(p.roles),
            scope=sorted(str(o) for o in p.scope),
            stage=p.stage.value,
        )


class PasswordIn(Input):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class EnrolmentOut(BaseModel):
    secret: str
    otpauth_uri: str


class CodeIn(Input):
    code: str = Field(min_length=1, max_length=16)


class StatusOut(BaseModel):
    status: str
