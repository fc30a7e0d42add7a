"""Run a seeded simulation through settlement, with faults, and report as it goes.

The driver feeds generated activity into an event log at a target rate; the settlement
worker settles it in the background; callers poll :meth:`SimulationRun.snapshot` for
live figures and finally close the periods that ended.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tally.adapters.memory.settlement import MemoryEventSource
from tally.kernel.clock import FixedClock
from tally.settlement.config import SettlementConfig
from tally.settlement.engine import OpenFigures, PeriodCloseError, SettlementEvent
from tally.settlement.ports import SettlementStore
from tally.settlement.service import SettlementWorker
from tally.settlement.statements import Statement
from tally.simulation.activity import generate
from tally.simulation.direct import to_settlement_events
from tally.simulation.faults import Faults, deliver
from tally.simulation.world import World

# Named limits of the driver.
FEED_CHUNK = 500  # events appended to the log at a time


def install_world(world: World, config: SettlementConfig, now: datetime) -> None:
    """Put the world's contracts, partner trees and FX rates into the configuration."""
    for terms in world.contracts:
        config.put_contract(terms, now)
    for agent in world.agents:
        config.put_agent(agent, now)
    for placement in world.placements:
        config.put_placement(placement, now)
    config.put_fx_rates(world.rates, now)


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
    on_close: Callable[[Statement, datetime], None] | None = None

    def __post_init__(self) -> None:
        self.clock = FixedClock(self.world.start)
        self.source = MemoryEventSource()
        self.worker = SettlementWorker(
            self.source, self.store, self.config, self.clock, on_close=self.on_close
        )
        self.fed = 0
        self._started = 0.0
        self._events: list[SettlementEvent] = []
        self._late: list[SettlementEvent] = []

    def prepare(self) -> int:
        """Generate the activity and its faulty delivery order; returns the event count."""
        install_world(self.world, self.config, self.world.start)
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
