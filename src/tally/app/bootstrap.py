"""The one composition root: the only module that knows both ports and adapters."""

from __future__ import annotations

from dataclasses import dataclass, field

from tally.app.settings import Settings
from tally.kernel.clock import Clock, SystemClock
from tally.ledger.ports import LedgerStore
from tally.ledger.service import LedgerService
from tally.settlement.config import SettlementConfig
from tally.settlement.ports import ConfigDocuments, SettlementStore


def build_ledger_store(settings: Settings) -> LedgerStore:
    if settings.mode == "scaled":
        from tally.adapters.postgres.ledger import PostgresLedgerStore

        return PostgresLedgerStore(settings.pg_dsn, settings.ledger_limits)
    from tally.adapters.sqlite.ledger import SqliteLedgerStore

    settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteLedgerStore(settings.sqlite_path, settings.ledger_limits)


def build_settlement(
    settings: Settings, ledger: LedgerStore
) -> tuple[ConfigDocuments, SettlementStore]:
    """Settlement configuration and state, in the same database as the ledger."""
    if settings.mode == "scaled":
        from tally.adapters.postgres.ledger import PostgresLedgerStore
        from tally.adapters.postgres.settlement import (
            PostgresConfigDocuments,
            PostgresSettlementStore,
        )

        assert isinstance(ledger, PostgresLedgerStore)
        return PostgresConfigDocuments(settings.pg_dsn), PostgresSettlementStore(
            ledger, settings.pg_dsn
        )
    from tally.adapters.sqlite.ledger import SqliteLedgerStore
    from tally.adapters.sqlite.settlement import SqliteConfigDocuments, SqliteSettlementStore

    assert isinstance(ledger, SqliteLedgerStore)
    return SqliteConfigDocuments(ledger.path), SqliteSettlementStore(ledger)


@dataclass
class App:
    """Everything a running Tally process holds; entry points build one and close it."""

    settings: Settings
    clock: Clock
    ledger_store: LedgerStore
    ledger: LedgerService
    settlement_documents: ConfigDocuments
    settlement_config: SettlementConfig
    settlement_store: SettlementStore
    _started: bool = field(default=False, repr=False)

    def start(self) -> App:
        if not self._started:
            self.ledger.start()
            self._started = True
        return self

    def close(self) -> None:
        if self._started:
            self.ledger.stop()
            self._started = False
        for part in (self.settlement_store, self.settlement_documents, self.ledger_store):
            close = getattr(part, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> App:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_app(settings: Settings, clock: Clock | None = None) -> App:
    clock = clock or SystemClock()
    store = build_ledger_store(settings)
    ledger = LedgerService(store, clock, settings.ledger_limits)
    documents, settlement_store = build_settlement(settings, store)
    return App(
        settings=settings,
        clock=clock,
        ledger_store=store,
        ledger=ledger,
        settlement_documents=documents,
        settlement_config=SettlementConfig(documents),
        settlement_store=settlement_store,
    )
