"""The group-commit writer: back-pressure, batching, draining, and failure isolation."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest

from tally.adapters.memory.ledger import MemoryLedgerStore
from tally.kernel.clock import FixedClock
from tally.kernel.errors import Overloaded, PermanentError, RetryableError
from tally.kernel.limits import LedgerLimits
from tally.ledger.model import Account, OwnerKind, ResultCode, TransferRequest
from tally.ledger.service import LedgerClosed, LedgerService
from tests.conftest import START

R = ResultCode


class GatedStore:
    """A memory store whose writes wait at a gate and can be told to fail."""

    def __init__(self) -> None:
        self.inner = MemoryLedgerStore()
        self.inner.create_accounts(
            [
                Account("a", OwnerKind.OPERATOR, "op", "EUR", "float"),
                Account("b", OwnerKind.OPERATOR, "op", "EUR", "float"),
            ],
            START,
        )
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.calls: list[list[str]] = []
        self.flaky = 0  # fail this many next calls with a retryable error

    def apply(self, submissions: Sequence[Sequence[TransferRequest]], now: datetime) -> Any:
        ids = [r.id for s in submissions for r in s]
        if ids:  # an idle writer applies empty batches to expire due transfers
            self.calls.append(ids)
            self.entered.set()
        assert self.gate.wait(10)
        if self.flaky:
            self.flaky -= 1
            raise RetryableError("lock timeout")
        if any(r.id == "boom" for s in submissions for r in s):
            raise PermanentError("the database refused the batch")
        return self.inner.apply(submissions, now)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def t(tid: str, amount: int = 1) -> TransferRequest:
    return TransferRequest(tid, "a", "b", amount, "EUR", "bet")


@pytest.fixture
def store() -> GatedStore:
    return GatedStore()


def test_a_full_queue_pushes_back_with_overloaded(store: GatedStore, clock: FixedClock) -> None:
    limits = LedgerLimits(queue_max_submissions=2, submit_timeout_s=0.05)
    service = LedgerService(store, clock, limits)  # type: ignore[arg-type]
    store.gate.clear()
    service.start()
    first = service.submit([t("1")])
    assert store.entered.wait(5)  # the writer holds the first and waits at the gate
    queued = [service.submit([t("2")]), service.submit([t("3")])]
    with pytest.raises(Overloaded) as refused:
        service.submit([t("4")])
    assert refused.value.retryable
    store.gate.set()
    assert [f.result(5)[0].code for f in [first, *queued]] == [R.OK] * 3
    # What waited in the queue was committed together, in one batch.
    assert store.calls == [["1"], ["2", "3"]]
    service.stop()
    assert store.inner.get_transfer("4") is None
    assert service.stats.transfers == 3


def test_a_submission_larger_than_the_limit_is_refused_up_front(
    store: GatedStore, clock: FixedClock
) -> None:
    limits = LedgerLimits(submission_max_transfers=2)
    with LedgerService(store, clock, limits) as service:  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            service.submit([t("1"), t("2"), t("3")])
        assert [r.code for r in service.transfer([t("1"), t("2")])] == [R.OK, R.OK]


def test_stop_commits_everything_already_queued(store: GatedStore, clock: FixedClock) -> None:
    service = LedgerService(store, clock).start()  # type: ignore[arg-type]
    store.gate.clear()
    futures = [service.submit([t(str(i))]) for i in range(20)]
    stopper = threading.Thread(target=service.stop)
    stopper.start()
    store.gate.set()
    stopper.join(10)
    assert not stopper.is_alive()
    assert [f.result(0)[0].code for f in futures] == [R.OK] * 20
    assert store.inner.balance("b").credits_posted == 20
    with pytest.raises(LedgerClosed):
        service.submit([t("late")])
    service.stop()  # stopping twice is harmless


def test_a_submission_before_start_is_refused(store: GatedStore, clock: FixedClock) -> None:
    with pytest.raises(LedgerClosed):
        LedgerService(store, clock).submit([t("1")])  # type: ignore[arg-type]


def test_a_failing_submission_fails_alone_and_its_batch_mates_commit(
    store: GatedStore, clock: FixedClock
) -> None:
    service = LedgerService(store, clock).start()  # type: ignore[arg-type]
    store.gate.clear()
    blocker = service.submit([t("0")])
    assert store.entered.wait(5)
    good1 = service.submit([t("1")])
    bad = service.submit([t("boom")])
    good2 = service.submit([t("2"), t("3")])
    store.gate.set()
    assert blocker.result(5)[0].code is R.OK
    assert [r.code for r in good1.result(5)] == [R.OK]
    assert [r.code for r in good2.result(5)] == [R.OK, R.OK]
    with pytest.raises(PermanentError):
        bad.result(5)
    service.stop()
    # The batch of three failed as a whole, then each submission was tried on its own.
    assert store.calls[1] == ["1", "boom", "2", "3"]
    assert sorted(store.calls[2:]) == [["1"], ["2", "3"], ["boom"]]
    assert store.inner.balance("b").credits_posted == 4


def test_a_retryable_store_error_is_retried_and_the_caller_never_sees_it(
    store: GatedStore, clock: FixedClock
) -> None:
    store.flaky = 2
    limits = LedgerLimits(retry_attempts=3, retry_backoff_s=0.001)
    with LedgerService(store, clock, limits) as service:  # type: ignore[arg-type]
        assert [r.code for r in service.transfer([t("1")])] == [R.OK]
    assert store.calls == [["1"], ["1"], ["1"]]


def test_a_store_error_that_outlasts_the_retries_reaches_the_caller(
    store: GatedStore, clock: FixedClock
) -> None:
    store.flaky = 5
    limits = LedgerLimits(retry_attempts=2, retry_backoff_s=0.001)
    with LedgerService(store, clock, limits) as service:  # type: ignore[arg-type]
        with pytest.raises(RetryableError):
            service.transfer([t("1")])
        store.flaky = 0
        assert [r.code for r in service.transfer([t("1")])] == [R.OK]


def test_recorded_time_never_goes_backwards_when_the_clock_does(
    store: GatedStore, clock: FixedClock
) -> None:
    from datetime import timedelta

    with LedgerService(store, clock) as service:  # type: ignore[arg-type]
        service.transfer([t("1")])
        clock.set(START - timedelta(hours=1))
        service.transfer([t("2")])
    assert store.inner.get_transfer("2").recorded_at == START


class DecidingStore(GatedStore):
    """A store the writer drives in two steps (decide, then commit: ADR 0015), which can
    be told to fail either step; ``apply`` is its one-step path."""

    commit_lanes = 1

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[tuple[str, list[str]]] = []
        self.fail_decide = 0
        self.fail_commit = 0
        self.committed_on: list[str] = []

    def decide(self, submissions: Sequence[Sequence[TransferRequest]], now: datetime) -> Any:
        self.steps.append(("decide", [r.id for s in submissions for r in s]))
        if submissions:
            self.entered.set()
        assert self.gate.wait(10)
        if self.fail_decide:
            self.fail_decide -= 1
            raise RuntimeError("the read connection broke")
        return (submissions, now)

    def commit(self, decided: Any) -> Any:
        submissions, now = decided
        ids = [r.id for s in submissions for r in s]
        self.steps.append(("commit", ids))
        if ids:
            self.committed_on.append(threading.current_thread().name)
        if self.fail_commit:
            self.fail_commit -= 1
            raise RetryableError("disk I/O error")
        return self.inner.apply(submissions, now)


def test_the_writer_decides_then_commits_when_the_store_can(clock: FixedClock) -> None:
    store = DecidingStore()
    with LedgerService(store, clock) as service:  # type: ignore[arg-type]
        assert [r.code for r in service.transfer([t("1"), t("2")])] == [R.OK, R.OK]
    assert [step for step in store.steps if step[1]] == [
        ("decide", ["1", "2"]),
        ("commit", ["1", "2"]),
    ]
    assert store.calls == []  # the one-step path was not taken
    # Nothing else was waiting: the writer committed it itself, with no hand-off.
    assert store.committed_on == ["ledger-writer"]


def test_a_batch_decided_while_more_wait_is_committed_by_the_committer(
    clock: FixedClock,
) -> None:
    store = DecidingStore()
    with LedgerService(store, clock) as service:  # type: ignore[arg-type]
        store.gate.clear()
        first = service.submit([t("1")])
        assert store.entered.wait(5)
        second = service.submit([t("2")])  # waits while the first is decided
        store.gate.set()
        assert [r.code for r in first.result(5)] == [R.OK]
        assert [r.code for r in second.result(5)] == [R.OK]
    # The first went to the committer so that the writer could decide the second.
    assert store.committed_on[0] == "ledger-committer-0"
    assert [ids for step, ids in store.steps if step == "commit" and ids] == [["1"], ["2"]]


class TwoLaneStore(DecidingStore):
    """A store that commits two batches at once (ADR 0016): each commit waits until the
    other has begun, so the writer must hand them to two committers."""

    commit_lanes = 2

    def __init__(self) -> None:
        super().__init__()
        self.both = threading.Barrier(2, timeout=5)

    def commit(self, decided: Any) -> Any:
        if decided[0]:
            self.both.wait()
        return super().commit(decided)


def test_a_store_with_two_commit_lanes_gets_two_batches_committing_at_once(
    clock: FixedClock,
) -> None:
    store = TwoLaneStore()
    with LedgerService(store, clock) as service:  # type: ignore[arg-type]
        store.gate.clear()
        first = service.submit([t("1")])
        assert store.entered.wait(5)
        second = service.submit([t("2")])
        third = service.submit([t("3")])
        store.gate.set()
        for future in (first, second, third):
            assert [r.code for r in future.result(10)] == [R.OK]
    assert not store.both.broken
    assert {"ledger-committer-0", "ledger-committer-1"} <= set(store.committed_on)


@pytest.mark.parametrize("failing", ["decide", "commit"])
def test_a_batch_whose_decision_or_commit_fails_goes_the_one_step_way(
    clock: FixedClock, failing: str
) -> None:
    store = DecidingStore()
    limits = LedgerLimits(expiry_tick_s=60)  # no idle batches in between
    with LedgerService(store, clock, limits) as service:  # type: ignore[arg-type]
        setattr(store, f"fail_{failing}", 1)
        assert [r.code for r in service.transfer([t("1")])] == [R.OK]
        assert [r.code for r in service.transfer([t("2")])] == [R.OK]
    assert store.calls == [["1"]]  # retried in one step, then back to two
    assert ("commit", ["2"]) in store.steps
    assert store.inner.balance("b").credits_posted == 2
