"""Drive the real settlement worker on the memory adapters, for scenario tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from tally.adapters.memory.backoffice import scratch_auditing
from tally.adapters.memory.ledger import MemoryLedgerStore
from tally.adapters.memory.settlement import (
    MemoryConfigDocuments,
    MemoryEventSource,
    MemorySettlementStore,
)
from tally.adapters.sqlite.ledger import SqliteLedgerStore
from tally.adapters.sqlite.settlement import SqliteSettlementStore
from tally.kernel.clock import FixedClock
from tally.ledger.ports import LedgerStore
from tally.settlement.config import SettlementConfig
from tally.settlement.contracts import ContractTerms
from tally.settlement.engine import Effect, SettlementEvent
from tally.settlement.fx import FxRate
from tally.settlement.partners import Agent, Placement
from tally.settlement.ports import SettlementStore
from tally.settlement.service import SettlementLimits, SettlementWorker
from tally.settlement.statements import Statement

SETUP_TIME = datetime(2020, 1, 1, tzinfo=UTC)

BY = scratch_auditing("system:test", "test")


class TestWorker:
    __test__ = False  # not a test class

    def __init__(
        self,
        contracts: Sequence[ContractTerms],
        *,
        agents: Sequence[Agent] = (),
        placements: Sequence[Placement] = (),
        rates: Sequence[FxRate] = (),
        batch_max_events: int = 2_000,
        sqlite_path: Path | None = None,
        pg_schema: str | None = None,
    ) -> None:
        """With ``sqlite_path`` the ledger and settlement state live in that SQLite file,
        with ``pg_schema`` in that PostgreSQL schema; else in memory."""
        self.config = SettlementConfig(MemoryConfigDocuments())
        for terms in contracts:
            self.config.put_contract(terms, SETUP_TIME, by=BY)
        for agent in agents:
            self.config.put_agent(agent, SETUP_TIME, by=BY)
        for placement in placements:
            self.config.put_placement(placement, SETUP_TIME, by=BY)
        self.config.put_fx_rates(rates, SETUP_TIME, by=BY)
        self.clock = FixedClock(SETUP_TIME)
        self.ledger: LedgerStore
        self.store: SettlementStore
        if pg_schema is not None:
            from tally.adapters.postgres.ledger import PostgresLedgerStore
            from tally.adapters.postgres.settlement import PostgresSettlementStore
            from tests.conftest import PG_DSN

            pg = PostgresLedgerStore(PG_DSN, schema=pg_schema)
            self.ledger = pg
            self.store = PostgresSettlementStore(pg, PG_DSN, schema=pg_schema)
        elif sqlite_path is None:
            memory = MemoryLedgerStore()
            self.ledger, self.store = memory, MemorySettlementStore(memory)
        else:
            sqlite = SqliteLedgerStore(sqlite_path)
            self.ledger, self.store = sqlite, SqliteSettlementStore(sqlite)
        self.source = MemoryEventSource()
        self.limits = SettlementLimits(batch_max_events=batch_max_events)
        self.worker = self.restart()

    def restart(self) -> SettlementWorker:
        """A new worker on the same store and log, as after a crash."""
        self.worker = SettlementWorker(
            self.source, self.store, self.config, self.clock, self.limits, by=BY
        )
        return self.worker

    def feed(self, events: Sequence[SettlementEvent], now: datetime) -> None:
        """Append events to the log and settle everything."""
        self.clock.set(now)
        self.source.append(events)
        self.worker.drain()

    def close(self, contract_id: str, operator: str, label: str, now: datetime) -> Statement:
        self.clock.set(now)
        return self.worker.close_period(contract_id, operator, label)

    def shutdown(self) -> None:
        self.store.close()
        self.ledger.close()

    def effect(self, key: str) -> Effect:
        return self.store.load_effects([key])[key]

    def net(self, account_id: str) -> int:
        balance = self.ledger.balance(account_id)
        return 0 if balance is None else balance.net_credit
