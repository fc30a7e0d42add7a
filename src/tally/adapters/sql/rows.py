"""Row <-> domain mapping shared by the SQL stores (SQLite and PostgreSQL).

The two differ only in how a timestamp is stored; each passes its converters.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from tally.ledger.codec import dumps, request_to_dict
from tally.ledger.model import (
    EMPTY,
    Account,
    AccountFlags,
    Balance,
    OwnerKind,
    PendingStatus,
    Rejection,
    Transfer,
    TransferKind,
)

TRANSFER_COLUMNS = (
    "id, kind, debit_account_id, credit_account_id, amount, currency, code, pending_id, "
    "timeout_s, expires_at, status, resolved_at, occurred_at, recorded_at, event_ref, metadata"
)
ACCOUNT_COLUMNS = (
    "id, owner_kind, owner_id, currency, purpose, flags, metadata, "
    "debits_pending, debits_posted, credits_pending, credits_posted"
)

TimeIn = Callable[[datetime], Any]
TimeOut = Callable[[Any], datetime]


def metadata_out(metadata: Mapping[str, str]) -> str | None:
    return dumps(dict(metadata)) if metadata else None


def metadata_in(text: str | None) -> Mapping[str, str]:
    return json.loads(text) if text else EMPTY


def transfer_row(t: Transfer, time_in: TimeIn) -> tuple[Any, ...]:
    # On the hot path: only pending transfers can expire, only they have a status.
    expires = t.expires_at if t.timeout_s else None
    return (
        t.id,
        t.kind.value,
        t.debit_account_id,
        t.credit_account_id,
        t.amount,
        t.currency,
        t.code,
        t.pending_id or None,
        t.timeout_s,
        time_in(expires) if expires is not None else None,
        t.status.value if t.status is not None else None,
        time_in(t.resolved_at) if t.resolved_at is not None else None,
        time_in(t.occurred_at),
        time_in(t.recorded_at),
        t.event_ref or None,
        metadata_out(t.metadata) if t.metadata else None,
    )


def transfer_from_row(row: Sequence[Any], time_out: TimeOut) -> Transfer:
    (
        tid,
        kind,
        debit,
        credit,
        amount,
        currency,
        code,
        pending_id,
        timeout_s,
        _expires,
        status,
        resolved_at,
        occurred_at,
        recorded_at,
        event_ref,
        metadata,
    ) = row
    return Transfer(
        id=tid,
        kind=TransferKind(kind),
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        currency=currency,
        code=code,
        pending_id=pending_id or "",
        timeout_s=timeout_s,
        status=PendingStatus(status) if status else None,
        resolved_at=time_out(resolved_at) if resolved_at is not None else None,
        occurred_at=time_out(occurred_at),
        recorded_at=time_out(recorded_at),
        event_ref=event_ref or "",
        metadata=metadata_in(metadata),
    )


def account_from_row(row: Sequence[Any]) -> tuple[Account, Balance]:
    (aid, owner_kind, owner_id, currency, purpose, flags, metadata, dpend, dpost, cpend, cpost) = (
        row
    )
    account = Account(
        id=aid,
        owner_kind=OwnerKind(owner_kind),
        owner_id=owner_id,
        currency=currency,
        purpose=purpose,
        flags=AccountFlags(flags),
        metadata=metadata_in(metadata),
    )
    return account, Balance(dpend, dpost, cpend, cpost)


def account_row(a: Account, created_at: Any) -> tuple[Any, ...]:
    return (
        a.id,
        a.owner_kind.value,
        a.owner_id,
        a.currency,
        a.purpose,
        int(a.flags),
        metadata_out(a.metadata),
        created_at,
    )


def rejection_row(r: Rejection, time_in: TimeIn) -> tuple[Any, ...]:
    return (
        r.transfer_id if isinstance(r.transfer_id, str) else repr(r.transfer_id),
        int(r.code),
        r.code.slug,
        dumps(request_to_dict(r.request)),
        time_in(r.rejected_at),
    )


def balance_from_sums(row: Sequence[Any] | None) -> Balance:
    """(debits_pending, debits_posted, credits_pending, credits_posted) sums, NULL as 0."""
    if row is None:
        return Balance()
    dpend, dpost, cpend, cpost = (int(v or 0) for v in row)
    return Balance(dpend, dpost, cpend, cpost)
