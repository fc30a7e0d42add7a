"""The ledger's data: accounts, balances, transfers and the result codes of every request.

Pure: no I/O. Amounts are ``int`` minor units; the currency gives the scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum, IntFlag, StrEnum
from types import MappingProxyType

from tally.kernel.values import value

EMPTY: Mapping[str, str] = MappingProxyType({})


def _empty() -> Mapping[str, str]:
    return EMPTY


class OwnerKind(StrEnum):
    PLAYER = "player"
    OPERATOR = "operator"
    PROVIDER = "provider"
    PARTNER = "partner"
    PLATFORM = "platform"


class AccountFlags(IntFlag):
    NONE = 0
    # The account may never be debited past what was credited (a player wallet).
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1
    # The account may never be credited past what was debited (a credit line).
    CREDITS_MUST_NOT_EXCEED_DEBITS = 2


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    owner_kind: OwnerKind
    owner_id: str
    currency: str
    purpose: str
    flags: AccountFlags = AccountFlags.NONE
    metadata: Mapping[str, str] = field(default_factory=_empty)


@dataclass(slots=True)
class Balance:
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    @property
    def net_credit(self) -> int:
        """Posted credits minus posted debits (what a liability account holds)."""
        return self.credits_posted - self.debits_posted

    @property
    def available_credit(self) -> int:
        """What a debits-must-not-exceed-credits account can still pay out."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    def copy(self) -> Balance:
        return Balance(
            self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted
        )


class TransferKind(StrEnum):
    SINGLE = "single"  # posted at once
    PENDING = "pending"  # reserves; later posted or voided (or expires)
    POST = "post"  # posts a pending transfer, in full or in part
    VOID = "void"  # releases a pending transfer


class PendingStatus(StrEnum):
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


@value
class TransferRequest:
    """What a caller asks for. ``id`` is the idempotency key.

    For POST and VOID the accounts and currency may be left empty (they are
    taken from the pending transfer); a POST without ``amount`` posts in full.
    ``linked`` chains this request to the next one in the same submission:
    the whole chain succeeds or fails together.
    """

    id: str
    debit_account_id: str = ""
    credit_account_id: str = ""
    amount: int | None = None
    currency: str = ""
    code: str = ""
    kind: TransferKind = TransferKind.SINGLE
    pending_id: str = ""
    timeout_s: int = 0
    occurred_at: datetime | None = None
    event_ref: str = ""
    metadata: Mapping[str, str] = field(default_factory=_empty)
    linked: bool = False


@value
class Transfer:
    """A committed transfer. Immutable except a pending one's status."""

    id: str
    kind: TransferKind
    debit_account_id: str
    credit_account_id: str
    amount: int
    currency: str
    code: str
    occurred_at: datetime
    recorded_at: datetime
    pending_id: str = ""
    timeout_s: int = 0
    event_ref: str = ""
    metadata: Mapping[str, str] = field(default_factory=_empty)
    # Only for PENDING transfers: where it stands and since when.
    status: PendingStatus | None = None
    resolved_at: datetime | None = None

    @property
    def expires_at(self) -> datetime | None:
        if self.kind is not TransferKind.PENDING or not self.timeout_s:
            return None
        return self.recorded_at + timedelta(seconds=self.timeout_s)


class ResultCode(IntEnum):
    """Outcome of one transfer request, in the order the checks run.

    The first failing check decides the code, so a request gets the same code
    whatever else is wrong with it later in the list.
    """

    OK = 0
    LINKED_EVENT_FAILED = 1
    LINKED_EVENT_CHAIN_OPEN = 2
    ID_MUST_NOT_BE_EMPTY = 3
    ID_TOO_LONG = 4
    KIND_UNKNOWN = 5
    AMOUNT_MUST_BE_INTEGER = 6
    AMOUNT_MUST_BE_POSITIVE = 7
    AMOUNT_TOO_LARGE = 8
    DEBIT_ACCOUNT_ID_MUST_NOT_BE_EMPTY = 9
    CREDIT_ACCOUNT_ID_MUST_NOT_BE_EMPTY = 10
    ACCOUNTS_MUST_BE_DIFFERENT = 11
    CURRENCY_MUST_NOT_BE_EMPTY = 12
    CURRENCY_UNKNOWN = 13
    CODE_MUST_NOT_BE_EMPTY = 14
    CODE_TOO_LONG = 15
    PENDING_ID_MUST_BE_EMPTY = 16
    PENDING_ID_MUST_NOT_BE_EMPTY = 17
    PENDING_ID_MUST_BE_DIFFERENT = 18
    TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = 19
    TIMEOUT_OUT_OF_RANGE = 20
    OCCURRED_AT_MUST_BE_AWARE = 21
    METADATA_INVALID = 22
    EXISTS_WITH_DIFFERENT_KIND = 23
    EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID = 24
    EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID = 25
    EXISTS_WITH_DIFFERENT_AMOUNT = 26
    EXISTS_WITH_DIFFERENT_CURRENCY = 27
    EXISTS_WITH_DIFFERENT_CODE = 28
    EXISTS_WITH_DIFFERENT_PENDING_ID = 29
    EXISTS_WITH_DIFFERENT_TIMEOUT = 30
    EXISTS_WITH_DIFFERENT_OCCURRED_AT = 31
    EXISTS_WITH_DIFFERENT_EVENT_REF = 32
    EXISTS_WITH_DIFFERENT_METADATA = 33
    EXISTS = 34
    DEBIT_ACCOUNT_NOT_FOUND = 35
    CREDIT_ACCOUNT_NOT_FOUND = 36
    ACCOUNTS_MUST_HAVE_THE_SAME_CURRENCY = 37
    TRANSFER_CURRENCY_MUST_MATCH_ACCOUNTS = 38
    PENDING_TRANSFER_NOT_FOUND = 39
    PENDING_TRANSFER_NOT_PENDING = 40
    PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID = 41
    PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID = 42
    PENDING_TRANSFER_HAS_DIFFERENT_CURRENCY = 43
    PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT = 44
    EXCEEDS_PENDING_TRANSFER_AMOUNT = 45
    PENDING_TRANSFER_ALREADY_POSTED = 46
    PENDING_TRANSFER_ALREADY_VOIDED = 47
    PENDING_TRANSFER_EXPIRED = 48
    OVERFLOWS_DEBITS = 49
    OVERFLOWS_CREDITS = 50
    EXCEEDS_CREDITS = 51
    EXCEEDS_DEBITS = 52

    @property
    def ok(self) -> bool:
        """The request's effect is in the ledger (just now, or already before)."""
        return self is ResultCode.OK or self is ResultCode.EXISTS

    @property
    def transient(self) -> bool:
        """The same request may succeed later without being changed."""
        return self in _TRANSIENT

    @property
    def slug(self) -> str:
        return self.name.lower()


_TRANSIENT = frozenset(
    {
        ResultCode.DEBIT_ACCOUNT_NOT_FOUND,
        ResultCode.CREDIT_ACCOUNT_NOT_FOUND,
        ResultCode.PENDING_TRANSFER_NOT_FOUND,
        ResultCode.EXCEEDS_CREDITS,
        ResultCode.EXCEEDS_DEBITS,
        ResultCode.LINKED_EVENT_FAILED,
    }
)


@value
class TransferResult:
    id: str
    code: ResultCode
    # The committed transfer for OK and EXISTS, else None.
    transfer: Transfer | None = None


class AccountResultCode(IntEnum):
    OK = 0
    ID_MUST_NOT_BE_EMPTY = 1
    ID_TOO_LONG = 2
    OWNER_KIND_UNKNOWN = 3
    OWNER_ID_MUST_NOT_BE_EMPTY = 4
    CURRENCY_UNKNOWN = 5
    PURPOSE_MUST_NOT_BE_EMPTY = 6
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = 7
    METADATA_INVALID = 8
    EXISTS_WITH_DIFFERENT_OWNER = 9
    EXISTS_WITH_DIFFERENT_CURRENCY = 10
    EXISTS_WITH_DIFFERENT_PURPOSE = 11
    EXISTS_WITH_DIFFERENT_FLAGS = 12
    EXISTS_WITH_DIFFERENT_METADATA = 13
    EXISTS = 14

    @property
    def ok(self) -> bool:
        return self is AccountResultCode.OK or self is AccountResultCode.EXISTS

    @property
    def slug(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class AccountResult:
    id: str
    code: AccountResultCode


@value
class Rejection:
    """A refused request, kept with its reason so a person can look at it."""

    transfer_id: str
    code: ResultCode
    request: TransferRequest
    rejected_at: datetime
