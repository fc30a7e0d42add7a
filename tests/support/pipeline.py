"""Accounts and helpers for the tests of batches decided ahead (ADR 0015, ADR 0016)."""

from __future__ import annotations

from typing import Any

from tally.ledger.model import Account, AccountFlags, OwnerKind, ResultCode, TransferRequest

WALLET = Account(
    "w", OwnerKind.PLAYER, "p", "EUR", "wallet", AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
)
HOUSE = [Account(f"h{i}", OwnerKind.OPERATOR, "o", "EUR", "float") for i in range(8)]


def move(tid: str, dr: str, cr: str, amount: int, **kw: Any) -> TransferRequest:
    return TransferRequest(tid, dr, cr, amount, "EUR", "play", **kw)


def codes(results: list[list[Any]]) -> list[list[ResultCode]]:
    return [[r.code for r in sub] for sub in results]


def posted(store: Any, account_id: str) -> tuple[int, int]:
    balance = store.balance(account_id)
    assert balance is not None
    return balance.debits_posted, balance.credits_posted
