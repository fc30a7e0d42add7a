"""The ledger service: one writer, many callers.

Callers submit lists of transfer requests from any thread; a single writer thread
drains a bounded queue, commits everything it gathered in one database transaction
(group commit) and hands each caller its own results. A full queue pushes back.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime

import structlog

from tally.kernel.clock import Clock
from tally.kernel.errors import Overloaded, PermanentError, TallyError
from tally.kernel.limits import LedgerLimits
from tally.kernel.page import Page
from tally.ledger.model import (
    Account,
    AccountResult,
    Balance,
    OwnerKind,
    Rejection,
    Transfer,
    TransferRequest,
    TransferResult,
)
from tally.ledger.ports import AuditedWrite, Decided, LedgerStore, PipelinedLedgerStore

log = structlog.get_logger("tally.ledger")


@dataclass(slots=True)
class _Submission:
    requests: Sequence[TransferRequest]
    future: Future[list[TransferResult]]
    enqueued: float


@dataclass(slots=True)
class _DecidedBatch:
    batch: list[_Submission]
    decided: Decided | None  # None: deciding failed, the batch goes the one-step way
    started: float


class LedgerClosed(PermanentError):
    """The ledger service was stopped; no more submissions are taken."""


@dataclass(slots=True)
class WriterStats:
    batches: int = 0
    transfers: int = 0
    last_batch_size: int = 0
    last_commit_s: float = 0.0


class LedgerService:
    def __init__(
        self,
        store: LedgerStore,
        clock: Clock,
        limits: LedgerLimits | None = None,
        *,
        on_commit: Callable[[int, float], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.limits = limits or LedgerLimits()
        self.stats = WriterStats()
        self._queue: queue.Queue[_Submission | None] = queue.Queue(
            self.limits.queue_max_submissions
        )
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._last_now: datetime | None = None
        self._commit_observer = on_commit

    # -- life cycle ---------------------------------------------------------------------
    def start(self) -> LedgerService:
        assert self._thread is None, "ledger writer already started"
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Finish what was submitted, then stop the writer."""
        if self._thread is None or self._closed.is_set():
            return
        self._closed.set()
        self._queue.put(None)
        self._thread.join()

    def __enter__(self) -> LedgerService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- writes -------------------------------------------------------------------------
    def create_accounts(self, accounts: Sequence[Account]) -> list[AccountResult]:
        return self.store.create_accounts(accounts, self.clock.now())

    def write_audited(
        self,
        accounts: Sequence[Account],
        transfers: Sequence[TransferRequest],
        within: AuditedWrite,
    ) -> tuple[list[AccountResult], list[TransferResult]]:
        """A change made by a person (a wallet opened, a deposit), written in one
        transaction with its audit record: see :meth:`LedgerStore.write_audited`. It goes
        beside the writer, as its retries do: staff changes are few."""
        return self.store.write_audited(accounts, transfers, self.clock.now(), within)

    def submit(self, requests: Sequence[TransferRequest]) -> Future[list[TransferResult]]:
        """Queue a submission; the future resolves to one result per request, in order."""
        if self._closed.is_set() or self._thread is None:
            raise LedgerClosed("the ledger writer is not running")
        if len(requests) > self.limits.submission_max_transfers:
            raise ValueError(
                f"a submission carries at most {self.limits.submission_max_transfers} transfers"
            )
        future: Future[list[TransferResult]] = Future()
        item = _Submission(list(requests), future, time.perf_counter())
        try:
            self._queue.put(item, timeout=self.limits.submit_timeout_s)
        except queue.Full:
            raise Overloaded("the ledger writer's queue is full; retry later") from None
        return future

    def transfer(self, requests: Sequence[TransferRequest]) -> list[TransferResult]:
        """Submit and wait for the results."""
        return self.submit(requests).result()

    # -- reads --------------------------------------------------------------------------
    def account(self, account_id: str) -> Account | None:
        return self.store.get_account(account_id)

    def balance(self, account_id: str, at: datetime | None = None) -> Balance | None:
        return self.store.balance(account_id, at)

    def balances(self, account_ids: Sequence[str]) -> dict[str, Balance]:
        return self.store.balances(account_ids)

    def get_transfer(self, transfer_id: str) -> Transfer | None:
        return self.store.get_transfer(transfer_id)

    def account_transfers(
        self, account_id: str, *, cursor: str | None = None, limit: int = 100
    ) -> Page[Transfer]:
        return self.store.account_transfers(account_id, cursor=cursor, limit=limit)

    def balances_by_owner(
        self, owner_kind: OwnerKind, owner_id: str, currency: str | None = None
    ) -> list[tuple[Account, Balance]]:
        return self.store.balances_by_owner(owner_kind, owner_id, currency)

    def balances_by_owners(
        self, owner_kind: OwnerKind, owner_ids: Sequence[str]
    ) -> list[tuple[Account, Balance]]:
        return self.store.balances_by_owners(owner_kind, owner_ids)

    def queue_depth(self) -> int:
        """Submissions waiting for the writer (the console's infrastructure layer shows it)."""
        return self._queue.qsize()

    def rejections(self, *, cursor: str | None = None, limit: int = 100) -> Page[Rejection]:
        return self.store.rejections(cursor=cursor, limit=limit)

    # -- the writer ---------------------------------------------------------------------
    def _now(self) -> datetime:
        # recorded_at never goes backwards, even if the wall clock does.
        now = self.clock.now()
        if self._last_now is not None and now < self._last_now:
            now = self._last_now
        self._last_now = now
        return now

    def _gather(self) -> tuple[list[_Submission], bool]:
        """Block for the first submission (or the expiry tick), then take what else is ready."""
        limits = self.limits
        batch: list[_Submission] = []
        try:
            first = self._queue.get(timeout=limits.expiry_tick_s)
        except queue.Empty:
            return batch, False
        if first is None:
            return batch, True
        batch.append(first)
        count = len(first.requests)
        deadline = time.perf_counter() + limits.batch_max_wait_s
        while count < limits.batch_max_transfers:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if item is None:
                return batch, True
            batch.append(item)
            count += len(item.requests)
        return batch, False

    def _run(self) -> None:
        store = self.store
        if isinstance(store, PipelinedLedgerStore):
            self._run_pipelined(store)
            return
        stopping = False
        while not stopping:
            batch, stopping = self._gather()
            self._commit(batch)
        rest = self._rest()
        if rest:
            self._commit(rest)

    def _rest(self) -> list[_Submission]:
        """Whatever raced in after the stop marker."""
        rest: list[_Submission] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return rest
            if item is not None:
                rest.append(item)

    def _run_pipelined(self, store: PipelinedLedgerStore) -> None:
        """Decide each batch here while committer threads write the ones before (ADR
        0015, 0016). Callers get their results once their batch is committed, as before."""
        lanes = max(1, store.commit_lanes)
        decided: queue.Queue[_DecidedBatch | None] = queue.Queue(maxsize=lanes)
        committers = [
            threading.Thread(
                target=self._commit_decided,
                args=(store, decided),
                name=f"ledger-committer-{lane}",
                daemon=True,
            )
            for lane in range(lanes)
        ]
        for committer in committers:
            committer.start()
        try:
            stopping = False
            while not stopping:
                batch, stopping = self._gather()
                item = self._decide(store, batch)
                if decided.unfinished_tasks == 0 and self._queue.empty() and not stopping:
                    # Nothing to decide meanwhile, and nothing ahead of it to commit: a
                    # hand-off to a committer would only add its wake-up to the wait.
                    self._commit_one(store, item)
                else:
                    decided.put(item)
            rest = self._rest()
            if rest:
                decided.put(self._decide(store, rest))
        finally:
            for _ in committers:
                decided.put(None)
            for committer in committers:
                committer.join()

    def _decide(self, store: PipelinedLedgerStore, batch: list[_Submission]) -> _DecidedBatch:
        started = time.perf_counter()
        try:
            made: Decided | None = store.decide([s.requests for s in batch], self._now())
        except Exception as exc:  # noqa: BLE001 - the committer takes the one-step path
            log.warning("ledger_decide_failed", error=str(exc), submissions=len(batch))
            made = None
        return _DecidedBatch(batch, made, started)

    def _commit_decided(
        self, store: PipelinedLedgerStore, decided: queue.Queue[_DecidedBatch | None]
    ) -> None:
        while (item := decided.get()) is not None:
            try:
                self._commit_one(store, item)
            finally:
                decided.task_done()

    def _commit_one(self, store: PipelinedLedgerStore, item: _DecidedBatch) -> None:
        if item.decided is None:
            self._commit(item.batch)
            return
        try:
            results = store.commit(item.decided)
        except Exception as exc:  # noqa: BLE001 - retried and split as any batch is
            log.warning("ledger_commit_failed", error=str(exc), submissions=len(item.batch))
            self._commit(item.batch)
            return
        self._deliver(item.batch, results, item.started)

    def _commit(self, batch: list[_Submission]) -> None:
        submissions = [s.requests for s in batch]
        started = time.perf_counter()
        try:
            results = self._apply_with_retry(submissions)
        except Exception as exc:  # noqa: BLE001 - isolate the failing submission below
            if len(batch) == 1:
                log.error("ledger_batch_failed", error=str(exc), submissions=1)
                for s in batch:
                    s.future.set_exception(exc)
                return
            log.warning("ledger_batch_split", error=str(exc), submissions=len(batch))
            for s in batch:
                self._commit([s])
            return
        self._deliver(batch, results, started)

    def _deliver(
        self, batch: list[_Submission], results: list[list[TransferResult]], started: float
    ) -> None:
        if batch:  # not an expiry tick: that is no commit of anyone's transfers
            elapsed = time.perf_counter() - started
            transfers = sum(len(s.requests) for s in batch)
            stats = self.stats
            stats.batches += 1
            stats.transfers += transfers
            stats.last_batch_size = transfers
            stats.last_commit_s = elapsed
            if self._commit_observer is not None:
                self._commit_observer(transfers, elapsed)
        for s, r in zip(batch, results, strict=True):
            s.future.set_result(r)

    def _apply_with_retry(
        self, submissions: list[Sequence[TransferRequest]]
    ) -> list[list[TransferResult]]:
        attempt = 0
        while True:
            try:
                return self.store.apply(submissions, self._now())
            except TallyError as exc:
                attempt += 1
                if not exc.retryable or attempt >= self.limits.retry_attempts:
                    raise
                log.warning("ledger_batch_retried", error=str(exc), attempt=attempt)
                time.sleep(self.limits.retry_backoff_s * attempt)
