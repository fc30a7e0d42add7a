"""The risk watch worker: what it reads, what it commits, and what a crash changes
(nothing: a restart neither misses an event nor counts one twice)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tally.adapters.memory.events import MemoryEventLog
from tally.adapters.memory.risk_watch import MemoryWatchStore
from tally.events import codec
from tally.kernel.alerts import AlertSignal, Severity
from tally.kernel.clock import FixedClock
from tally.risk.detectors.model import Clear, Said
from tally.risk.watch import RiskWatch, WatchLimits, decode, default_detectors
from tally.risk.watch_codec import said_from_dict, said_to_dict
from tally.simulation.incidents import OUTAGE, ROLLBACK_STORM, Incident, stream
from tally.simulation.riskwatch import certified_games, to_event
from tally.simulation.world import build_world

START = datetime(2026, 3, 2, 9, tzinfo=UTC)


class RecordingSink:
    def __init__(self, fail_first: int = 0) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self.fail_first = fail_first

    def signal(self, alert: AlertSignal) -> None:
        if self.fail_first:
            self.fail_first -= 1
            raise ConnectionError("the alerts service is away")
        self.seen.append(("signal", alert.kind, alert.key))

    def clear(self, kind: str, key: str, at: datetime) -> None:
        self.seen.append(("clear", kind, key))


class FlakyStore(MemoryWatchStore):
    """Fails the ``fail_at``-th commit, as a crash before the transaction ends would."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.commits = 0
        self.fail_at = fail_at

    def commit(self, *args: Any, **kwargs: Any) -> None:
        self.commits += 1
        if self.commits == self.fail_at:
            raise OSError("disk went away mid-commit")
        super().commit(*args, **kwargs)


@pytest.fixture(scope="module")
def logged() -> tuple[MemoryEventLog, Any]:
    world = build_world(11, START, players=300)
    incidents = [
        Incident(
            OUTAGE, START + timedelta(minutes=70), START + timedelta(minutes=90), "eu", "prov1"
        ),
        Incident(
            ROLLBACK_STORM,
            START + timedelta(minutes=110),
            START + timedelta(minutes=125),
            "eu",
            "prov2",
        ),
    ]
    log = MemoryEventLog()
    log.append(
        [
            to_event(r)
            for r in stream(world, minutes=135, rounds_per_minute=80, incidents=incidents, seed=11)
        ]
    )
    return log, world


def _watch(
    log: MemoryEventLog, world: Any, store: MemoryWatchStore, sink: RecordingSink
) -> RiskWatch:
    return RiskWatch(
        log,
        store,
        sink,
        default_detectors(certified_games(world)),
        FixedClock(START),
        WatchLimits(batch_max_events=2_000),
    )


def test_a_stored_event_decodes_to_what_the_watch_reads(logged: Any) -> None:
    log, _ = logged
    ((_, event),) = log.read(0, 1)
    e = decode(codec.dumps(event))
    assert (e.kind, e.provider, e.amount, e.currency) == (
        "bet",
        event.provider,
        event.amount,
        event.currency,
    )
    assert e.at == int(event.recorded_at.timestamp()) and e.game == event.game


def test_the_watch_sees_the_outage_and_the_storm_and_commits_its_position(logged: Any) -> None:
    log, world = logged
    store, sink = MemoryWatchStore(), RecordingSink()
    watch = _watch(log, world, store, sink)
    assert watch.drain() == log.head()
    assert store.position("risk-watch") == log.head()
    assert sink.seen == _unbroken(log, world)[0].seen  # the same stream says the same
    raised = {(k, key) for what, k, key in sink.seen if what == "signal"}
    assert ("risk.volume.drop", "eu|prov1") in raised
    assert ("risk.behaviour.rollback_storm", "eu|prov2") in raised
    assert ("clear", "risk.volume.drop", "eu|prov1") in sink.seen
    assert store.outbox("risk-watch", 10) == []


@pytest.mark.parametrize("fail_at", [1, 9])
def test_a_crash_mid_commit_and_a_restart_say_exactly_what_an_unbroken_run_says(
    logged: Any, fail_at: int
) -> None:
    log, world = logged
    unbroken, final = _unbroken(log, world)
    store, sink = FlakyStore(fail_at), RecordingSink()
    watch = _watch(log, world, store, sink)
    with pytest.raises(OSError, match="mid-commit"):
        watch.drain()
    restarted = _watch(log, world, store, sink)  # a new process: state from the store
    restarted.drain()
    assert sink.seen == unbroken.seen
    assert restarted.pipeline.state() == final


_UNBROKEN: dict[int, tuple[RecordingSink, dict[str, object]]] = {}


def _unbroken(log: MemoryEventLog, world: Any) -> tuple[RecordingSink, dict[str, object]]:
    """One uninterrupted run, shared by the tests that compare against it."""
    if id(log) not in _UNBROKEN:
        sink = RecordingSink()
        watch = _watch(log, world, MemoryWatchStore(), sink)
        watch.drain()
        _UNBROKEN[id(log)] = (sink, watch.pipeline.state())
    return _UNBROKEN[id(log)]


def test_signals_the_sink_missed_are_handed_over_on_restart(logged: Any) -> None:
    log, world = logged
    unbroken, _ = _unbroken(log, world)
    store, sink = MemoryWatchStore(), RecordingSink(fail_first=1)
    with pytest.raises(ConnectionError):
        _watch(log, world, store, sink).drain()
    assert store.outbox("risk-watch", 10)  # committed, not yet delivered
    _watch(log, world, store, sink).drain()
    assert sink.seen == unbroken.seen


def test_signals_and_clears_survive_the_outbox_codec() -> None:
    alert = AlertSignal(
        kind="risk.rtp.drift",
        key="g1",
        severity=Severity.CRITICAL,
        cause="c",
        at=START,
        game="g1",
        money_at_risk=12,
        currency="EUR",
        evidence={"x": "1"},
        refs=("event:a",),
    )
    said: list[Said] = [alert, Clear("risk.rtp.drift", "g1", START)]
    assert [said_from_dict(said_to_dict(s)) for s in said] == said


def test_a_quiet_log_lets_the_clock_move_on_without_moving_the_position(logged: Any) -> None:
    log, world = logged
    store, sink = MemoryWatchStore(), RecordingSink()
    clock = FixedClock(START)
    watch = RiskWatch(log, store, sink, default_detectors(certified_games(world)), clock)
    watch.drain()
    before = list(sink.seen)
    minute = watch.pipeline.minute
    clock.set(START + timedelta(hours=3))  # an hour after the last event
    watch.idle()
    assert watch.pipeline.minute == int((START + timedelta(hours=3)).timestamp()) // 60 > minute
    assert store.position("risk-watch") == log.head()
    # Every provider falls silent at once: a lull, not one provider's outage.
    assert [s for s in sink.seen[len(before) :] if s[1] == "risk.volume.drop"] == []
