"""Group commit for the event log: many callers, one appending thread, batched appends.

A provider callback must not answer before its events are durable, but one log
transaction per callback would cap the gateway at the disk's commit rate. Callers hand
their events to :meth:`BatchingAppender.append` and wait; one thread gathers what is
waiting (up to a named size, or a named wait) and appends it in one call, then hands
each caller its own results. A caller that finds nobody appending or waiting appends
its events itself, sparing two thread wake-ups.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from tally.events.model import Event
from tally.events.ports import AppendResult, EventLog
from tally.kernel.errors import RetryableError


@dataclass(frozen=True, slots=True)
class AppendLimits:
    batch_max_events: int = 2_000  # events appended in one log transaction
    batch_wait_s: float = 0.002  # how long the first waiting caller lets others join
    queue_max: int = 10_000  # callers waiting; beyond it, append refuses (back-pressure)
    submit_timeout_s: float = 1.0


class AppenderClosed(RetryableError):
    pass


class BatchingAppender:
    def __init__(self, log: EventLog, limits: AppendLimits | None = None) -> None:
        self.log = log
        self.limits = limits or AppendLimits()
        self._queue: queue.Queue[tuple[list[Event], Future[list[AppendResult]]] | None] = (
            queue.Queue(self.limits.queue_max)
        )
        self._thread: threading.Thread | None = None
        # Held by whoever appends: the thread, or a caller that found nobody else there.
        self._appending = threading.Lock()

    def start(self) -> BatchingAppender:
        assert self._thread is None, "appender already started"
        self._thread = threading.Thread(target=self._run, name="event-appender", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def append(self, events: Sequence[Event]) -> list[AppendResult]:
        if not events:
            return []
        if self._thread is None:
            raise AppenderClosed("the event appender is not running")
        future: Future[list[AppendResult]] = Future()
        if self._queue.empty() and self._appending.acquire(blocking=False):
            # Nobody is appending or waiting: append here, without waking the thread.
            try:
                self._commit([(list(events), future)])
            finally:
                self._appending.release()
            return future.result()
        try:
            self._queue.put((list(events), future), timeout=self.limits.submit_timeout_s)
        except queue.Full:
            raise AppenderClosed("the event appender's queue is full; retry later") from None
        return future.result()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            # Gathered once no caller appends: what queued behind a caller's own append
            # goes in one.
            with self._appending:
                batch = [first]
                size = len(first[0])
                stopping = False
                while size < self.limits.batch_max_events:
                    try:
                        item = self._queue.get(timeout=self.limits.batch_wait_s)
                    except queue.Empty:
                        break
                    if item is None:
                        stopping = True
                        break
                    batch.append(item)
                    size += len(item[0])
                self._commit(batch)
            if stopping:
                return

    def _commit(self, batch: list[tuple[list[Event], Future[list[AppendResult]]]]) -> None:
        try:
            results = self.log.append([e for events, _ in batch for e in events])
        except BaseException as exc:  # noqa: BLE001 - every waiting caller hears of it
            for _, future in batch:
                future.set_exception(exc)
            return
        at = 0
        for events, future in batch:
            future.set_result(results[at : at + len(events)])
            at += len(events)
