"""Group commit for the event log: a lone caller appends itself, a crowd shares appends."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from tally.adapters.memory.events import MemoryEventLog
from tally.events.appender import AppendLimits, BatchingAppender
from tally.events.model import Event
from tally.events.ports import Appended, AppendResult
from tests.unit.test_event_schema import sample


def event(n: int) -> Event:
    return sample(provider_tx_id=f"tx-{n}")


class WatchedLog(MemoryEventLog):
    """A memory log that records each append (its events, and the thread that made it),
    and can hold an append at a gate or fail it."""

    def __init__(self) -> None:
        super().__init__()
        self.appends: list[tuple[str, list[str]]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.failing = False

    def append(self, events: Sequence[Event]) -> list[AppendResult]:
        self.appends.append((threading.current_thread().name, [e.provider_tx_id for e in events]))
        self.entered.set()
        assert self.gate.wait(10)
        if self.failing:
            raise OSError("disk I/O error")
        return super().append(events)


@pytest.fixture
def log() -> WatchedLog:
    return WatchedLog()


@pytest.fixture
def appender(log: WatchedLog) -> Iterator[BatchingAppender]:
    appender = BatchingAppender(log, AppendLimits(batch_wait_s=0.0)).start()
    try:
        yield appender
    finally:
        appender.stop()


def test_a_caller_that_finds_nobody_appending_appends_itself(
    log: WatchedLog, appender: BatchingAppender
) -> None:
    results = appender.append([event(1), event(2)])
    assert [r.outcome for r in results] == [Appended.ACCEPTED, Appended.ACCEPTED]
    assert log.appends == [(threading.current_thread().name, ["tx-1", "tx-2"])]
    assert [r.outcome for r in appender.append([event(1)])] == [Appended.DUPLICATE]


def test_callers_that_arrive_during_an_append_share_the_next_one(
    log: WatchedLog, appender: BatchingAppender, monkeypatch: pytest.MonkeyPatch
) -> None:
    log.gate.clear()
    outcomes: dict[int, list[Appended]] = {}

    def call(n: int) -> None:
        outcomes[n] = [r.outcome for r in appender.append([event(n)])]

    first = threading.Thread(target=call, args=(0,), name="first-caller")
    first.start()
    assert log.entered.wait(5)
    queued = threading.Semaphore(0)
    put = appender._queue.put

    def counted_put(*args: Any, **kw: Any) -> None:
        put(*args, **kw)
        queued.release()

    monkeypatch.setattr(appender._queue, "put", counted_put)
    others = [threading.Thread(target=call, args=(n,)) for n in (1, 2, 3)]
    for t in others:
        t.start()
    for _ in others:  # all three queued behind the append in progress
        assert queued.acquire(timeout=5)
    log.gate.set()
    for t in [first, *others]:
        t.join(5)
    assert log.appends[0] == ("first-caller", ["tx-0"])
    # The three that waited went in one append, made by the appender's thread.
    assert len(log.appends) == 2
    assert log.appends[1][0] == "event-appender"
    assert sorted(log.appends[1][1]) == ["tx-1", "tx-2", "tx-3"]
    assert outcomes == {n: [Appended.ACCEPTED] for n in range(4)}


def test_a_failed_append_reaches_its_caller(log: WatchedLog, appender: BatchingAppender) -> None:
    log.failing = True
    with pytest.raises(OSError):
        appender.append([event(1)])
    log.failing = False
    assert [r.outcome for r in appender.append([event(1)])] == [Appended.ACCEPTED]
