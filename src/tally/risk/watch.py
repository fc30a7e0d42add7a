"""The risk watch: reads the event log like settlement does and feeds the detectors.

One batch at a time: read after the committed position, run every event through every
detector (ticking their clocks as the events' recorded times move on), then commit the
new position, the detectors' state and the batch's signals in one transaction. Only then
are the signals handed to the :class:`~tally.kernel.alerts.AlertSink`; a crash in between
leaves them in the outbox, delivered on restart. So a restart neither misses an event nor
counts one twice, and the alerts see every signal at least once (they are idempotent on
(kind, key)).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
import structlog

from tally.events import codec
from tally.events.model import SCHEMA_VERSION, Source, feed_key, idempotency_key
from tally.events.ports import EventLog
from tally.kernel.alerts import AlertSink
from tally.kernel.clock import Clock
from tally.kernel.money import parse_amount
from tally.risk.detectors.behaviour import BehaviourLimits, BonusAbuse, RollbackStorm, SubtreeShift
from tally.risk.detectors.model import Clear, Detector, Said, WatchEvent
from tally.risk.detectors.rtp import GameRtp, RtpLimits, RtpWatch
from tally.risk.detectors.settlement import SettlementLimits, WeekOverWeek
from tally.risk.detectors.volume import Corridor, VolumeLimits, VolumeWatch
from tally.risk.watch_ports import WatchStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class WatchLimits:
    batch_max_events: int = 20_000
    outbox_page: int = 1_000
    idle_sleep_s: float = 1.0


def _seconds(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def decode(body: str | bytes) -> WatchEvent:
    """A stored event (what :func:`codec.dumps` wrote) to what the watch reads."""
    d = orjson.loads(body)
    if d.get("schema_version") != SCHEMA_VERSION:
        e = codec.from_dict(d)
        return WatchEvent(
            e.key,
            e.kind.value,
            e.provider,
            e.operator,
            e.player,
            e.game,
            e.round_id,
            e.amount,
            e.currency,
            e.region,
            e.agent,
            int(e.recorded_at.timestamp()),
            int(e.occurred_at.timestamp()),
        )
    provider, kind, currency = d["provider"], d["kind"], d["currency"]
    key = idempotency_key(provider, d["provider_tx_id"], kind)
    if d.get("source") == Source.FEED.value:
        key = feed_key(d["operator"], key)
    return WatchEvent(
        key,
        kind,
        provider,
        d["operator"],
        d["player"],
        d["game"],
        d["round_id"],
        parse_amount(d["amount"], currency, allow_negative=True),
        currency,
        d["region"],
        d["agent"],
        _seconds(d["recorded_at"]),
        _seconds(d["occurred_at"]),
    )


def default_detectors(
    games: Iterable[GameRtp],
    corridor: Corridor | None = None,
    *,
    rtp: RtpLimits | None = None,
    volume: VolumeLimits | None = None,
    behaviour: BehaviourLimits | None = None,
    settlement: SettlementLimits | None = None,
) -> list[Detector]:
    games = list(games)
    return [
        RtpWatch(games, rtp),
        VolumeWatch(corridor, volume),
        RollbackStorm(behaviour),
        BonusAbuse(behaviour),
        SubtreeShift(behaviour),
        WeekOverWeek({g.game: float(g.volatility) for g in games}, settlement),
    ]


class Pipeline:
    """The detectors and the watch's clock, without any I/O: what the worker runs per
    batch, and what the benchmark times on its own."""

    def __init__(self, detectors: Sequence[Detector]) -> None:
        self.detectors = list(detectors)
        self.minute = -1  # the watch clock's current minute

    def feed(self, events: Iterable[WatchEvent], out: list[Said]) -> None:
        detectors = self.detectors
        for e in events:
            minute = e.at // 60
            if minute > self.minute:
                self.advance(e.at, out)
            for d in detectors:
                d.observe(e, out)

    def advance(self, now: int, out: list[Said]) -> None:
        """Move the clock to ``now`` (never back): windows that ended close."""
        if now // 60 <= self.minute:
            return
        self.minute = now // 60
        for d in self.detectors:
            d.tick(now, out)

    def state(self) -> dict[str, object]:
        return {"minute": self.minute, **{d.name: d.state() for d in self.detectors}}

    def load(self, state: dict[str, object] | None) -> None:
        if not state:
            return
        minute = state.get("minute", -1)
        self.minute = minute if isinstance(minute, int) else -1
        for d in self.detectors:
            part = state.get(d.name)
            if isinstance(part, dict):
                d.load(part)


class RiskWatch:
    def __init__(
        self,
        log_: EventLog,
        store: WatchStore,
        sink: AlertSink,
        detectors: Sequence[Detector],
        clock: Clock,
        limits: WatchLimits | None = None,
        *,
        consumer: str = "risk-watch",
    ) -> None:
        self.log = log_
        self.store = store
        self.sink = sink
        self.clock = clock
        self.limits = limits or WatchLimits()
        self.consumer = consumer
        self._detectors = list(detectors)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._load()

    def _load(self) -> None:
        """(Re)load the detectors' state and the position: the state of the last commit."""
        self.pipeline = Pipeline(self._detectors)
        stored = self.store.load_state(self.consumer)
        self.pipeline.load(dict(stored) if stored else None)
        self.position = self.store.position(self.consumer)

    def step(self) -> int:
        """Watch one batch; returns how many events it read (0: the log is drained)."""
        with self._lock:
            self._deliver()
            batch = self.log.read_stored(self.position, self.limits.batch_max_events)
            if not batch:
                return 0
            out: list[Said] = []
            try:
                self.pipeline.feed((decode(body) for _, body in batch), out)
                last = batch[-1][0]
                self.store.commit(self.consumer, last, self.pipeline.state(), out, self.clock.now())
            except BaseException:
                # The detectors may be ahead of what was committed: start over from the
                # store, exactly as after a crash.
                self._load()
                raise
            self.position = last
            self._deliver()
            return len(batch)

    def drain(self) -> int:
        total = 0
        while (count := self.step()) > 0:
            total += count
        return total

    def idle(self) -> None:
        """Nothing new in the log: let the clock move on (an outage is silence) and
        commit what that closed."""
        with self._lock:
            out: list[Said] = []
            self.pipeline.advance(int(self.clock.now().timestamp()), out)
            if out:
                self.store.commit(
                    self.consumer, self.position, self.pipeline.state(), out, self.clock.now()
                )
                self._deliver()

    def _deliver(self) -> None:
        while pending := self.store.outbox(self.consumer, self.limits.outbox_page):
            for _, said in pending:
                if isinstance(said, Clear):
                    self.sink.clear(said.kind, said.key, said.at)
                else:
                    self.sink.signal(said)
            self.store.delivered(self.consumer, pending[-1][0])
            log.info("risk_signals_delivered", count=len(pending))

    def run(self) -> None:
        """Watch until :meth:`stop`: a batch at a time, idling when the log is drained."""
        while not self._stop.is_set():
            if self.step() == 0:
                self.idle()
                self._stop.wait(self.limits.idle_sleep_s)

    def stop(self) -> None:
        self._stop.set()
