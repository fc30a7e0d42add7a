"""Balances derived from transfers: the definition every store's fast path must match."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from tally.ledger.model import Balance, Transfer, TransferKind


def balance_at(account_id: str, transfers: Iterable[Transfer], at: datetime | None) -> Balance:
    """Fold an account's transfers recorded up to ``at`` (all when None) into a balance.

    A pending transfer counts as pending from its recording until it is resolved
    (posted, voided or expired); posted amounts come from SINGLE and POST transfers.
    """
    balance = Balance()
    for t in transfers:
        if at is not None and t.recorded_at > at:
            continue
        debit = t.debit_account_id == account_id
        credit = t.credit_account_id == account_id
        if not (debit or credit):
            continue
        if t.kind is TransferKind.SINGLE or t.kind is TransferKind.POST:
            if debit:
                balance.debits_posted += t.amount
            else:
                balance.credits_posted += t.amount
        elif t.kind is TransferKind.PENDING:
            still_pending = t.resolved_at is None or (at is not None and t.resolved_at > at)
            if still_pending:
                if debit:
                    balance.debits_pending += t.amount
                else:
                    balance.credits_pending += t.amount
    return balance


def sum_by_currency(balances: Iterable[tuple[str, Balance]]) -> dict[str, Balance]:
    """Add up (currency, balance) pairs per currency."""
    totals: dict[str, Balance] = {}
    for currency, b in balances:
        t = totals.setdefault(currency, Balance())
        t.debits_pending += b.debits_pending
        t.debits_posted += b.debits_posted
        t.credits_pending += b.credits_pending
        t.credits_posted += b.credits_posted
    return totals
