"""A real wallet gateway on an embedded ledger, for provider adapter tests.

Everything is real (SQLite ledger with its group-commit writer, the SQLite event log
behind the batching appender, the rollback marks) with the in-memory input quarantine,
so tests can read what was kept.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tally.adapters.memory.backoffice import scratch_auditing
from tally.adapters.memory.quarantine import MemoryInputQuarantine
from tally.adapters.sqlite.events import SqliteEventLog
from tally.adapters.sqlite.ledger import SqliteLedgerStore
from tally.adapters.sqlite.wallet import SqliteWalletMarks
from tally.entrypoints.gateway.app import CallbackBatches
from tally.entrypoints.gateway.relay import RelayServer
from tally.events.appender import BatchingAppender
from tally.events.model import Event
from tally.kernel.clock import Clock
from tally.kernel.limits import LedgerLimits
from tally.ledger.service import LedgerService
from tally.providers.base import Inbound, Outbound
from tally.providers.gateway import Gateway, GatewayLimits
from tally.providers.registry import Registry
from tally.providers.sessions import SessionTokens
from tally.wallet.model import Wallet
from tally.wallet.service import WalletService

SETUP = scratch_auditing("system:test", "test")  # players opened by the tests


@dataclass
class GatewayWorld:
    gateway: Gateway
    wallet: WalletService
    log: SqliteEventLog
    quarantine: MemoryInputQuarantine
    clock: Clock
    secrets: dict[tuple[str, str], str]
    sessions: SessionTokens

    def session(self, provider: str, player: str, currency: str) -> str:
        """A token as Tally hands it to a game at launch."""
        return self.sessions.issue(provider, player, currency, self.clock.now())

    def open_player(
        self, player: str, currency: str, deposit: int, operator: str = "op1", **kw: str
    ) -> Wallet:
        wallet = self.wallet.open(Wallet(player, operator, currency, **kw), by=SETUP)
        if deposit:
            result = self.wallet.deposit(wallet, deposit, f"{player}-{currency}-initial", by=SETUP)
            assert result.code.ok, result.code
        return wallet

    def balance(self, player: str, currency: str = "") -> int:
        wallet = self.wallet.find(player, currency)
        assert wallet is not None
        return self.wallet.balance(wallet)

    def call(
        self,
        provider: str,
        action: str,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        remote: str = "10.0.0.1",
    ) -> Outbound:
        inbound = Inbound(
            action=action,
            body=body,
            received_at=self.clock.now(),
            headers={k.lower(): v for k, v in (headers or {}).items()},
            query=query or {},
            remote=remote,
        )
        return self.gateway.handle(provider, inbound)

    def kept(self) -> list[str]:
        """The reasons of what the quarantine holds, oldest first."""
        return [q.refused.reason.value for q in self.quarantine.entries(limit=10_000).items]

    def events(self) -> list[Event]:
        return [e for _, e in self.log.read(0, 1_000_000)]


@contextmanager
def gateway_world(
    tmp_path: Path,
    clock: Clock,
    secrets: dict[tuple[str, str], str],
    protocols: list[str] | dict[str, str],
    game_type: Callable[[str, str], str] | None = None,
) -> Iterator[GatewayWorld]:
    """``protocols``: names (each a provider of its own name) or provider -> protocol."""
    path = tmp_path / "tally.sqlite"
    store = SqliteLedgerStore(path, LedgerLimits())
    ledger = LedgerService(store, clock, LedgerLimits()).start()
    log = SqliteEventLog(path)
    appender = BatchingAppender(log).start()
    marks = SqliteWalletMarks(path)
    quarantine = MemoryInputQuarantine()
    wallet = WalletService(ledger, appender, marks, quarantine, clock, game_type=game_type)
    registry = Registry()
    pairs = protocols.items() if isinstance(protocols, dict) else [(p, p) for p in protocols]
    for provider, protocol in pairs:
        registry.register(provider, protocol)
    sessions = SessionTokens(b"test-session-key-" * 2)
    # Secrets are read afresh on every call, so a test may change them mid-way.
    gateway = Gateway(
        registry,
        wallet,
        lambda p, n: secrets.get((p, n)),
        quarantine,
        clock,
        sessions,
        GatewayLimits(credentials_ttl_s=0.0),
    )
    try:
        yield GatewayWorld(gateway, wallet, log, quarantine, clock, secrets, sessions)
    finally:
        appender.stop()
        ledger.stop()
        marks.close()
        log.close()
        store.close()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@contextmanager
def relayed_to(batches: CallbackBatches) -> Iterator[Path]:
    """A relay server in front of running ``batches``, as a gateway core runs it; yields
    its socket's path (in a private directory short enough for a Unix socket's name)."""
    with tempfile.TemporaryDirectory(prefix="tally-relay-") as private:
        relay = RelayServer(Path(private) / "core.sock", batches.submit)
        relay.start()
        try:
            yield relay.path
        finally:
            relay.stop()
