"""The one composition root: the only module that knows both ports and adapters."""

from __future__ import annotations

from dataclasses import dataclass, field

from tally.app.settings import Settings
from tally.kernel.clock import Clock, SystemClock
from tally.ledger.ports import LedgerStore
from tally.ledger.service import LedgerService


def build_ledger_store(settings: Settings) -> LedgerStore:
    if settings.mode == "scaled":
        from tally.adapters.postgres.ledger import PostgresLedgerStore

        return PostgresLedgerStore(settings.pg_dsn, settings.ledger_limits)
    from tally.adapters.sqlite.ledger import SqliteLedgerStore

    settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteLedgerStore(settings.sqlite_path, settings.ledger_limits)


@dataclass
class App:
    """Everything a running Tally process holds; entry points build one and close it."""

    settings: Settings
    clock: Clock
    ledger_store: LedgerStore
    ledger: LedgerService
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
        self.ledger_store.close()

    def __enter__(self) -> App:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_app(settings: Settings, clock: Clock | None = None) -> App:
    clock = clock or SystemClock()
    store = build_ledger_store(settings)
    ledger = LedgerService(store, clock, settings.ledger_limits)
    return App(settings=settings, clock=clock, ledger_store=store, ledger=ledger)
