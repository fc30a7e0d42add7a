"""In-memory settlement adapters (the reference fakes): config documents, log, state."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from tally.adapters.memory.ledger import MemoryLedgerStore
from tally.adapters.sql.settlement_rows import require_posted
from tally.ledger.model import Account, TransferRequest
from tally.settlement.engine import (
    BatchOutcome,
    Closing,
    Effect,
    OpenFigures,
    SettlementEvent,
    WaitingRollback,
)
from tally.settlement.ports import Orphan, StoredStatement


class MemoryConfigDocuments:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._docs: dict[tuple[str, str], dict[str, Any]] = {}
        self._order: list[tuple[str, str]] = []

    def get(self, kind: str, key: str) -> Mapping[str, Any] | None:
        with self._lock:
            found = self._docs.get((kind, key))
            return copy.deepcopy(found) if found is not None else None

    @contextmanager
    def unit_of_work(self) -> Iterator[dict[tuple[str, str], dict[str, Any]]]:
        """The transaction is the inserts it gathers, applied when the block ends well."""
        pending: dict[tuple[str, str], dict[str, Any]] = {}
        yield pending
        with self._lock:
            clash = [k for k in pending if k in self._docs]
            if clash:
                raise KeyError(f"{clash[0][0]} {clash[0][1]} exists")
            self._docs.update(pending)
            self._order.extend(pending)

    def get_in(
        self, tx: dict[tuple[str, str], dict[str, Any]], kind: str, key: str
    ) -> Mapping[str, Any] | None:
        found = tx.get((kind, key))
        return copy.deepcopy(found) if found is not None else self.get(kind, key)

    def insert_in(
        self,
        tx: dict[tuple[str, str], dict[str, Any]],
        kind: str,
        key: str,
        document: Mapping[str, Any],
        now: datetime,
    ) -> None:
        if (kind, key) in tx or self.get(kind, key) is not None:
            raise KeyError(f"{kind} {key} exists")
        tx[(kind, key)] = copy.deepcopy(dict(document))

    def all(self, kind: str) -> list[Mapping[str, Any]]:
        with self._lock:
            return [copy.deepcopy(self._docs[k]) for k in self._order if k[0] == kind]

    def revision(self) -> int:
        with self._lock:
            return len(self._order)

    def close(self) -> None:
        """Nothing held: nothing to release."""


class MemoryEventSource:
    """An append-only list of events with positions 1, 2, 3, ... (for tests and the fake)."""

    def __init__(self) -> None:
        self._events: list[SettlementEvent] = []
        self._lock = threading.Lock()

    def append(self, events: Iterable[SettlementEvent]) -> int:
        with self._lock:
            self._events.extend(events)
            return len(self._events)

    def read(self, after: int, limit: int) -> list[tuple[int, SettlementEvent]]:
        with self._lock:
            chunk = self._events[after : after + limit]
        return [(after + i + 1, e) for i, e in enumerate(chunk)]

    def committed(self, position: int) -> None:
        """Nothing is redelivered: nothing to acknowledge."""


class MemorySettlementStore:
    """Settlement state in dicts beside a memory ledger; commits are all-or-nothing."""

    def __init__(self, ledger: MemoryLedgerStore) -> None:
        self.ledger = ledger
        self._lock = threading.Lock()
        self._figures = OpenFigures()
        self._positions: dict[str, int] = {}
        self._effects: dict[str, Effect] = {}
        self._orphans: dict[str, WaitingRollback] = {}
        self._statements: dict[tuple[str, str, str], StoredStatement] = {}
        self._problems: list[tuple[str, str, datetime]] = []

    def load_figures(self) -> OpenFigures:
        with self._lock:
            return copy.deepcopy(self._figures)

    def position(self, consumer: str) -> int:
        with self._lock:
            return self._positions.get(consumer, 0)

    def load_effects(self, keys: Iterable[str]) -> dict[str, Effect]:
        with self._lock:
            return {k: self._effects[k] for k in keys if k in self._effects}

    def load_orphans(self, keys: Iterable[str]) -> dict[str, str]:
        with self._lock:
            return {k: self._orphans[k].key for k in keys if k in self._orphans}

    def _post(
        self, accounts: Iterable[Account], transfers: list[TransferRequest], now: datetime
    ) -> None:
        self.ledger.create_accounts(list(accounts), now)
        [results] = self.ledger.apply([transfers], now)
        require_posted(results)

    def commit_batch(
        self,
        consumer: str,
        position: int,
        out: BatchOutcome,
        figures: OpenFigures,
        now: datetime,
    ) -> None:
        with self._lock:
            self._post(out.accounts.values(), out.transfers, now)
            self._effects.update(out.effects)
            self._orphans.update(out.orphans)
            for key in out.orphans_resolved:
                self._orphans.pop(key, None)
            self._problems.extend((key, reason, now) for key, reason in out.problems)
            self._figures = copy.deepcopy(figures)
            self._positions[consumer] = position

    def commit_close(
        self,
        closing: Closing,
        figures: OpenFigures,
        now: datetime,
        within: Callable[[object], object],
    ) -> None:
        s = closing.statement
        with self._lock:
            # Memory cannot roll back: what runs in the transaction runs first, so that if
            # it fails nothing of the close is kept either.
            within(None)
            self._post(closing.accounts.values(), closing.transfers, now)
            self._statements[(s.terms.contract_id, s.operator, s.period.label)] = StoredStatement(
                s.terms.contract_id,
                s.operator,
                s.period.label,
                s.sha256,
                s.to_json(),
                s.to_csv(),
                now,
            )
            self._figures = copy.deepcopy(figures)

    def statements(self) -> list[StoredStatement]:
        with self._lock:
            return [self._statements[k] for k in sorted(self._statements)]

    def orphans(self) -> list[Orphan]:
        with self._lock:
            closed = self._figures.closed
            return [
                Orphan(w, w.outlived_close(closed))
                for w in sorted(self._orphans.values(), key=lambda w: (w.ref, w.key))
            ]

    def problems(self) -> list[tuple[str, str, datetime]]:
        with self._lock:
            return list(self._problems)

    def close(self) -> None:
        """Nothing held: nothing to release."""
