"""Plain-data forms of ledger values, for storage of rejections and for the wire.

Amounts stay integers of minor units here; the HTTP layer turns them into strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tally.ledger.model import TransferKind, TransferRequest


def request_to_dict(request: TransferRequest) -> dict[str, Any]:
    """Lossless enough to show a person what was refused (odd types become their repr)."""
    amount: Any = request.amount
    if amount is not None and type(amount) is not int:
        amount = repr(amount)
    occurred = request.occurred_at
    return {
        "id": _text(request.id),
        "kind": request.kind.value
        if isinstance(request.kind, TransferKind)
        else repr(request.kind),
        "debit_account_id": _text(request.debit_account_id),
        "credit_account_id": _text(request.credit_account_id),
        "amount": amount,
        "currency": _text(request.currency),
        "code": _text(request.code),
        "pending_id": _text(request.pending_id),
        "timeout_s": request.timeout_s
        if type(request.timeout_s) is int
        else repr(request.timeout_s),
        "occurred_at": occurred.isoformat() if isinstance(occurred, datetime) else None,
        "event_ref": _text(request.event_ref),
        "metadata": {str(k): str(v) for k, v in request.metadata.items()}
        if isinstance(request.metadata, Mapping)
        else repr(request.metadata),
        "linked": bool(request.linked),
    }


def request_from_dict(data: Mapping[str, Any]) -> TransferRequest:
    occurred = data.get("occurred_at")
    kind_text = data.get("kind", "single")
    try:
        kind: Any = TransferKind(kind_text)
    except ValueError:
        kind = kind_text
    return TransferRequest(
        id=data.get("id", ""),
        debit_account_id=data.get("debit_account_id", ""),
        credit_account_id=data.get("credit_account_id", ""),
        amount=data.get("amount"),
        currency=data.get("currency", ""),
        code=data.get("code", ""),
        kind=kind,
        pending_id=data.get("pending_id", ""),
        timeout_s=data.get("timeout_s", 0),
        occurred_at=datetime.fromisoformat(occurred) if isinstance(occurred, str) else None,
        event_ref=data.get("event_ref", ""),
        metadata=data.get("metadata") or {},
        linked=bool(data.get("linked", False)),
    )


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _text(value: object) -> str:
    return value if isinstance(value, str) else repr(value)
