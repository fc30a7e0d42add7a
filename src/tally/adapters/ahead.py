"""Batches a ledger store decided ahead of their commit (ADR 0015), shared by the stores.

A store's writer decides batch N+1 on its cached balances while batch N commits. Until
N is written, N+1 must take the transfers N created or resolved from N itself, not from
the database, and the accounts N changed must stay cached. When the store drops its
caches (a transaction failed, or its view of the balances can no longer be trusted),
every batch decided on them is *void*: it is decided again in its own transaction when
its turn to commit comes, and no new batch is decided until those are written, since
the database is then the only truth and must hold them first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Generic, TypeVar

from tally.ledger.engine import ChangeSet
from tally.ledger.model import Transfer, TransferRequest, TransferResult

W = TypeVar("W")


@dataclass(slots=True, eq=False)
class DecidedBatch(Generic[W]):
    """A batch decided ahead of its commit, with what its commit writes."""

    submissions: Sequence[Sequence[TransferRequest]]
    now: datetime
    results: list[list[TransferResult]]
    writes: W
    transfers: dict[str, Transfer]  # created or resolved by the batch, by id
    accounts: set[str]  # whose balances it changes
    void: bool = False  # the caches were dropped after it was decided
    turn: int = -1  # its place among the store's writes, where the store orders them

    @classmethod
    def of(
        cls,
        submissions: Sequence[Sequence[TransferRequest]],
        now: datetime,
        results: list[list[TransferResult]],
        changes: ChangeSet,
        writes: W,
    ) -> DecidedBatch[W]:
        """The batch the engine decided as ``results`` and ``changes``, to be written by
        ``writes`` (made now: the engine changes cached balances in place later)."""
        return cls(
            submissions,
            now,
            results,
            writes,
            {**{t.id: t for t in changes.created}, **changes.resolved},
            set(changes.balances),
        )


class BatchesAhead(Generic[W]):
    """The batches decided and not yet committed, in their order, and how many batches
    decided before the caches were last dropped are still to commit. Its condition is
    taken last, after the store's write and cache locks."""

    def __init__(self) -> None:
        self._batches: list[DecidedBatch[W]] = []
        self._void = 0
        self._changed = threading.Condition()

    def __bool__(self) -> bool:
        with self._changed:
            return bool(self._batches)

    def decide(
        self,
        cache_lock: AbstractContextManager[object],
        make: Callable[[dict[str, Transfer]], DecidedBatch[W]],
        forget: Callable[[], None],
    ) -> DecidedBatch[W]:
        """Decide a batch with ``make`` under the store's cache lock, handing it what the
        batches ahead made of transfers; ``forget`` drops the caches if it fails (the
        engine may have changed them in place)."""
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._void == 0)
            with cache_lock:
                with self._changed:
                    if self._void:
                        continue  # dropped again before this thread had the caches
                    unsettled: dict[str, Transfer] = {}
                    for ahead in self._batches:
                        unsettled.update(ahead.transfers)
                try:
                    decided = make(unsettled)
                except BaseException:
                    forget()
                    raise
                with self._changed:
                    self._batches.append(decided)
                return decided

    def void_all(self) -> None:
        """The caches were dropped: every batch decided on them is decided again."""
        with self._changed:
            for decided in self._batches:
                decided.void = True
            self._void += len(self._batches)
            self._batches.clear()

    def settled(self, decided: DecidedBatch[W]) -> None:
        """``decided`` was written, or its commit failed."""
        with self._changed:
            if decided.void:
                self._void -= 1
            else:
                self._batches.remove(decided)
            self._changed.notify_all()

    def evictable(self, cached: Iterable[str], count: int) -> list[str]:
        """The first ``count`` of the ``cached`` accounts (the longest held) that a cache
        may forget: not those a batch ahead changed, which the database does not hold
        yet."""
        with self._changed:
            held = set().union(*(ahead.accounts for ahead in self._batches))
        return list(islice((a for a in cached if a not in held), count))
