"""Run a seeded simulation through settlement, with faults, and report as it goes.

The driver feeds generated activity into an event log at a target rate; the settlement
worker settles it in the background; callers poll :meth:`SimulationRun.snapshot` for
live figures and finally close the periods that ended.

The run is handed what lies above the contexts by its caller (the CLI, a test): the event
source a direct run appends to, the audit trail, and for callbacks over HTTP a server of
the gateway. The simulation imports no adapter and no entrypoint.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from tally.audit.service import Auditing
from tally.events.ports import EventLog
from tally.ingest.feeds import FeedService
from tally.ingest.files import FileImporter
from tally.kernel.clock import FixedClock
from tally.providers.gateway import Gateway
from tally.settlement.config import SettlementConfig
from tally.settlement.engine import OpenFigures, PeriodCloseError, SettlementEvent
from tally.settlement.ports import EventSource, SettlementStore
from tally.settlement.service import SettlementWorker
from tally.settlement.source import LogSource
from tally.settlement.statements import Statement
from tally.simulation.activity import generate
from tally.simulation.direct import to_settlement_events
from tally.simulation.faults import Faults, deliver
from tally.simulation.protocols import Delivery, Doors, ProtocolFaults, deliveries
from tally.simulation.world import World
from tally.wallet.model import Wallet
from tally.wallet.service import WalletService

# Named limits of the driver.
FEED_CHUNK = 500  # events appended to the log at a time


class EventFeed(EventSource, Protocol):
    """The event source of a direct run: the driver appends, the settlement worker reads."""

    def append(self, events: Iterable[SettlementEvent]) -> int: ...


# Callbacks over HTTP: (path, body, headers) -> the status answered.
Post = Callable[[str, bytes, dict[str, str]], int]
# Serves the gateway for the length of a run on the simulation's clock and yields a poster
# to it. An HTTP server is an entrypoint's business, so the caller passes one in.
Serve = Callable[[Gateway, FixedClock], AbstractContextManager[Post]]


def install_world(world: World, config: SettlementConfig, now: datetime, by: Auditing) -> None:
    """Put the world's contracts, partner trees and FX rates into the configuration."""
    for terms in world.contracts:
        config.put_contract(terms, now, by=by)
    for agent in world.agents:
        config.put_agent(agent, now, by=by)
    for placement in world.placements:
        config.put_placement(placement, now, by=by)
    config.put_fx_rates(world.rates, now, by=by, origin="simulation")


@dataclass
class Snapshot:
    fed: int
    settled: int
    elapsed_s: float
    figures: OpenFigures
    sim_time: datetime


@dataclass
class SimulationRun:
    world: World
    config: SettlementConfig
    store: SettlementStore
    faults: Faults = field(default_factory=Faults)
    events_per_second: float = 5_000.0
    minutes: int = 36 * 60  # simulated time
    rounds_per_minute: float = 40.0
    # Whose trail the set-up and the period closes go on.
    by: Auditing = field(kw_only=True)
    # Where a direct run appends its events (a gateway run reads the gateway's log instead).
    source: EventFeed | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        self.clock = self._start_clock()
        self.worker = self._new_worker()
        self.fed = 0
        self._started = 0.0
        self._events: list[SettlementEvent] = []
        self._late: list[SettlementEvent] = []

    def _start_clock(self) -> FixedClock:
        return FixedClock(self.world.start)

    def _new_worker(self) -> SettlementWorker:
        assert self.source is not None, "a direct run needs the event source it appends to"
        return SettlementWorker(self.source, self.store, self.config, self.clock, by=self.by)

    def prepare(self) -> int:
        """Generate the activity and its faulty delivery order; returns the event count."""
        install_world(self.world, self.config, self.world.start, self.by)
        events = to_settlement_events(
            generate(self.world, minutes=self.minutes, rounds_per_minute=self.rounds_per_minute)
        )
        self._events, self._late = deliver(
            events,
            self.faults,
            random.Random(self.world.seed),
            ref_of=lambda e: e.ref,
            key_of=lambda e: e.key,
        )
        return len(self._events) + len(self._late)

    def feed(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Append events to the log at the target rate, moving the simulated clock along."""
        assert self.source is not None
        self._started = time.perf_counter()
        self.worker.start()
        for batch in (self._events, self._late):
            for start in range(0, len(batch), FEED_CHUNK):
                if should_stop():
                    return
                chunk = batch[start : start + FEED_CHUNK]
                self.clock.set(max(self.clock.now(), max(e.occurred_at for e in chunk)))
                self.source.append(chunk)
                self.fed += len(chunk)
                ahead = self.fed / self.events_per_second - (time.perf_counter() - self._started)
                if ahead > 0:
                    time.sleep(ahead)

    def wait_settled(self, timeout_s: float = 60.0) -> bool:
        deadline = time.perf_counter() + timeout_s
        while self.worker.position < self.fed:
            if time.perf_counter() > deadline:
                return False
            time.sleep(0.05)
        return True

    def snapshot(self) -> Snapshot:
        return Snapshot(
            self.fed,
            self.worker.position,
            time.perf_counter() - self._started,
            self.worker.book.figures,
            self.clock.now(),
        )

    def close_ended_periods(self) -> list[Statement]:
        """Close, for every contract and operator, each period that has ended."""
        self.worker.stop()
        self.worker.drain()
        end = self.world.start + timedelta(minutes=self.minutes)
        self.clock.set(end + timedelta(hours=12))
        closed: list[Statement] = []
        labels = sorted({b.period for b in self.worker.book.figures.totals})
        for terms in self.world.contracts:
            for operator in self.world.operators:
                for label in labels:
                    try:
                        closed.append(
                            self.worker.close_period(terms.contract_id, operator.id, label)
                        )
                    except PeriodCloseError:
                        break  # not ended yet (or already closed): later periods stay open
        return closed


WALLET_FUNDING = 10**10  # minor units per simulated wallet: bets are never short of funds
DELIVERY_WINDOW = 64  # requests sent concurrently; anything in a window may overtake
RESTART_EVERY = 200  # windows between settlement worker restarts, when restarts are on
SENDERS = 8  # concurrent senders, as a provider's callback workers would be


@dataclass
class GatewayRun(SimulationRun):
    """The same run, driven through the wallet gateway in the providers' own protocol:
    wallets are opened and funded, every round becomes signed callbacks, and settlement
    reads the real event log the gateway appends to."""

    gateway: Gateway | None = None
    log: EventLog | None = None
    wallets: WalletService | None = None
    feeds: FeedService | None = None
    importer: FileImporter | None = None
    protocol_faults: ProtocolFaults = field(default_factory=ProtocolFaults)
    # Replace the settlement worker now and then with a new one that reloads everything
    # from the store, as after a crash (kill -9 itself is tests/integration/
    # test_settlement_crash.py's, on the worker process).
    worker_restarts: bool = False
    restarts: int = 0
    # Callbacks over HTTP to the gateway this serves (e.g. in this process on a free local
    # port), rather than handed to it directly.
    serve: Serve | None = None

    def __post_init__(self) -> None:
        assert self.gateway is not None and self.log is not None and self.wallets is not None
        assert self.feeds is not None and self.importer is not None
        super().__post_init__()
        self._deliveries: list[tuple[datetime, Delivery]] = []
        self.refused = 0

    def _start_clock(self) -> FixedClock:
        # The gateway's clock is the simulation's: it moves with the plays' time.
        assert self.wallets is not None
        assert isinstance(self.wallets.clock, FixedClock), "drive the gateway on a FixedClock"
        return self.wallets.clock

    def _new_worker(self) -> SettlementWorker:
        assert self.log is not None
        return SettlementWorker(
            LogSource(self.log), self.store, self.config, self.clock, by=self.by
        )

    def prepare(self) -> int:
        install_world(self.world, self.config, self.world.start, self.by)
        assert self.wallets is not None
        self.wallets.open_many(
            [Wallet(p.id, p.operator, p.currency, p.region, p.agent) for p in self.world.players],
            WALLET_FUNDING,
            "simulation-funding",
        )
        plays = list(
            generate(self.world, minutes=self.minutes, rounds_per_minute=self.rounds_per_minute)
        )
        rng = random.Random(self.world.seed)
        sent = deliveries(self.world, plays, self.protocol_faults, rng)
        # The simulated clock follows the plays' times in order, whatever request (a
        # duplicate, a swapped neighbour) happens to go out at that point.
        times = sorted(p.occurred_at for p in plays if p.kind == "bet")
        step = max(1, len(times)) / max(1, len(sent))
        self._deliveries = [
            (times[min(len(times) - 1, int(i * step))] if times else self.world.start, d)
            for i, d in enumerate(sent)
        ]
        return len(self._deliveries)

    def feed(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Send the deliveries at the target rate (requests, here), window by window."""
        assert self.gateway is not None and self.feeds is not None and self.importer is not None
        with self.serve(self.gateway, self.clock) if self.serve else nullcontext() as post:
            doors = Doors(self.gateway, self.feeds, self.importer, self.clock, post)
            self._send_all(doors, should_stop)

    def _send_all(self, doors: Doors, should_stop: Callable[[], bool]) -> None:
        self._started = time.perf_counter()
        self.worker.start()

        def send(item: tuple[datetime, Delivery]) -> int:
            return doors.send(item[1])

        with ThreadPoolExecutor(SENDERS) as pool:
            for start in range(0, len(self._deliveries), DELIVERY_WINDOW):
                if should_stop():
                    return
                window = self._deliveries[start : start + DELIVERY_WINDOW]
                self.clock.set(max(self.clock.now(), max(at for at, _ in window)))
                statuses = list(pool.map(send, window))
                self.refused += sum(1 for s in statuses if s != 200)
                self.fed += len(window)
                if self.worker_restarts and (start // DELIVERY_WINDOW) % RESTART_EVERY == 1:
                    self._restart_worker()
                ahead = self.fed / self.events_per_second - (time.perf_counter() - self._started)
                if ahead > 0:
                    time.sleep(ahead)

    def _restart_worker(self) -> None:
        self.worker.stop()
        self.worker = self._new_worker().start()
        self.restarts += 1

    def snapshot(self) -> Snapshot:
        """Events in the log (what the gateway accepted) against events settled."""
        assert self.log is not None
        snap = super().snapshot()
        snap.fed = self.log.head()
        return snap

    def wait_settled(self, timeout_s: float = 60.0) -> bool:
        assert self.log is not None
        deadline = time.perf_counter() + timeout_s
        while self.worker.position < self.log.head():
            if time.perf_counter() > deadline:
                return False
            time.sleep(0.05)
        return True
