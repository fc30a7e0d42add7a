"""A minimal in-memory settlement worker for tests: what a real worker persists, in dicts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tally.adapters.memory.ledger import MemoryLedgerStore
from tally.settlement.contracts import ContractTerms
from tally.settlement.engine import Closing, Effect, SettlementBook, SettlementEvent
from tally.settlement.fx import FxTable
from tally.settlement.partners import PartnerTree


class TestWorker:
    __test__ = False  # not a test class

    def __init__(
        self,
        contracts: Sequence[ContractTerms],
        trees: dict[str, PartnerTree] | None = None,
        fx: FxTable | None = None,
    ) -> None:
        trees = trees or {}
        table = fx or FxTable([])
        self.book = SettlementBook(
            lambda: contracts, lambda op: trees.get(op, PartnerTree([], [])), lambda: table
        )
        self.ledger = MemoryLedgerStore()
        self.effects: dict[str, Effect] = {}
        self.orphans: dict[str, str] = {}
        self.problems: list[tuple[str, str]] = []
        self._batches = 0

    def feed(self, events: Sequence[SettlementEvent], now: datetime) -> None:
        self._batches += 1
        names = {e.key for e in events} | {e.ref for e in events if e.ref}
        out = self.book.settle(
            f"b{self._batches}",
            events,
            {k: self.effects[k] for k in names if k in self.effects},
            {e.key: self.orphans[e.key] for e in events if e.key in self.orphans},
        )
        self.problems.extend(out.problems)
        self.effects.update(out.effects)
        self.orphans.update(out.orphans)
        for key in out.orphans_resolved:
            self.orphans.pop(key, None)
        self._post(out.accounts, out.transfers, now)

    def close(self, contract_id: str, operator: str, label: str, now: datetime) -> Closing:
        closing = self.book.close_period(contract_id, operator, label, now)
        self._post(closing.accounts, closing.transfers, now)
        return closing

    def _post(self, accounts: dict[str, object], transfers: list[object], now: datetime) -> None:
        self.ledger.create_accounts(list(accounts.values()), now)  # type: ignore[arg-type]
        [results] = self.ledger.apply([transfers], now)  # type: ignore[list-item]
        bad = [r for r in results if not r.code.ok]
        assert not bad, bad

    def net(self, account_id: str) -> int:
        balance = self.ledger.balance(account_id)
        return 0 if balance is None else balance.net_credit
