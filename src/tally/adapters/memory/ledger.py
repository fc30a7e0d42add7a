"""An in-memory ledger store: the reference fake the contract suite also runs against."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

from tally.kernel.limits import LedgerLimits
from tally.kernel.page import Page, decode_cursor, fetch_size, page_from_rows
from tally.ledger import engine
from tally.ledger.history import balance_at, sum_by_currency
from tally.ledger.model import (
    Account,
    AccountResult,
    Balance,
    OwnerKind,
    PendingStatus,
    Rejection,
    Transfer,
    TransferRequest,
    TransferResult,
)
from tally.ledger.ports import AuditedWrite


class MemoryLedgerStore:
    def __init__(self, limits: LedgerLimits | None = None) -> None:
        self.limits = limits or LedgerLimits()
        self._lock = threading.RLock()
        self._accounts: dict[str, Account] = {}
        self._balances: dict[str, Balance] = {}
        self._transfers: dict[str, Transfer] = {}
        self._order: list[str] = []
        self._rejections: list[Rejection] = []

    def create_accounts(self, accounts: Sequence[Account], now: datetime) -> list[AccountResult]:
        with self._lock:
            results, new = engine.decide_accounts(accounts, self._accounts, self.limits)
            for account in new:
                self._accounts[account.id] = account
                self._balances[account.id] = Balance()
            return results

    def write_audited(
        self,
        accounts: Sequence[Account],
        transfers: Sequence[TransferRequest],
        now: datetime,
        within: AuditedWrite,
    ) -> tuple[list[AccountResult], list[TransferResult]]:
        # Memory cannot roll back; the record goes on after the change, under the lock.
        with self._lock:
            created = self.create_accounts(accounts, now)
            moved = self.apply([transfers], now)[0] if transfers else []
            within(None, created, moved)
            return created, moved

    def apply(
        self, submissions: Sequence[Sequence[TransferRequest]], now: datetime
    ) -> list[list[TransferResult]]:
        with self._lock:
            due = [
                t
                for t in self._transfers.values()
                if t.status is PendingStatus.PENDING
                and (e := t.expires_at) is not None
                and e <= now
            ]
            ids = engine.referenced_transfer_ids(submissions)
            loaded = {i: self._transfers[i] for i in ids if i in self._transfers}
            account_ids = engine.referenced_account_ids(submissions, [*loaded.values(), *due])
            state = engine.LedgerState(
                accounts={a: self._accounts[a] for a in account_ids if a in self._accounts},
                balances={a: self._balances[a].copy() for a in account_ids if a in self._accounts},
                transfers=loaded,
            )
            results, changes = engine.apply_batch(submissions, state, now, self.limits, due=due)
            for transfer in changes.created:
                self._transfers[transfer.id] = transfer
                self._order.append(transfer.id)
            self._transfers.update(changes.resolved)
            for account_id, balance in changes.balances.items():
                self._balances[account_id] = balance.copy()
            self._rejections.extend(changes.rejections)
            return results

    def get_account(self, account_id: str) -> Account | None:
        with self._lock:
            return self._accounts.get(account_id)

    def balance(self, account_id: str, at: datetime | None = None) -> Balance | None:
        with self._lock:
            if account_id not in self._accounts:
                return None
            if at is None:
                return self._balances[account_id].copy()
            return balance_at(account_id, (self._transfers[i] for i in self._order), at)

    def balances(self, account_ids: Sequence[str]) -> dict[str, Balance]:
        with self._lock:
            return {a: self._balances[a].copy() for a in account_ids if a in self._accounts}

    def get_transfer(self, transfer_id: str) -> Transfer | None:
        with self._lock:
            return self._transfers.get(transfer_id)

    def account_transfers(
        self, account_id: str, *, cursor: str | None = None, limit: int = 100
    ) -> Page[Transfer]:
        limit = max(1, min(limit, self.limits.page_max_size))
        # The key of a transfer is its position in commit order plus one, as a seq would be.
        after = decode_cursor(cursor)
        found: list[tuple[int, Transfer]] = []
        with self._lock:
            for position in range(after, len(self._order)):
                t = self._transfers[self._order[position]]
                if account_id in (t.debit_account_id, t.credit_account_id):
                    found.append((position + 1, t))
                    if len(found) == fetch_size(limit):
                        break
        return page_from_rows(found, limit, key=lambda r: r[0], item=lambda r: r[1])

    def balances_by_owner(
        self, owner_kind: OwnerKind, owner_id: str, currency: str | None = None
    ) -> list[tuple[Account, Balance]]:
        with self._lock:
            return [
                (a, self._balances[a.id].copy())
                for a in sorted(self._accounts.values(), key=lambda a: a.id)
                if a.owner_kind == owner_kind
                and a.owner_id == owner_id
                and (currency is None or a.currency == currency)
            ]

    def balances_by_owners(
        self, owner_kind: OwnerKind, owner_ids: Sequence[str]
    ) -> list[tuple[Account, Balance]]:
        owners = set(owner_ids)
        with self._lock:
            return [
                (a, self._balances[a.id].copy())
                for a in sorted(self._accounts.values(), key=lambda a: a.id)
                if a.owner_kind == owner_kind and a.owner_id in owners
            ]

    def rejections(self, *, cursor: str | None = None, limit: int = 100) -> Page[Rejection]:
        limit = max(1, min(limit, self.limits.page_max_size))
        # The key of a rejection is its position plus one, as a seq would be.
        after = decode_cursor(cursor)
        with self._lock:
            found = list(enumerate(self._rejections[after : after + fetch_size(limit)], after + 1))
        return page_from_rows(found, limit, key=lambda r: r[0], item=lambda r: r[1])

    def totals_by_currency(self) -> dict[str, Balance]:
        with self._lock:
            return sum_by_currency(
                (self._accounts[a].currency, b) for a, b in self._balances.items()
            )

    def close(self) -> None:
        return None


__all__ = ["MemoryLedgerStore"]
