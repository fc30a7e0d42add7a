"""What settlement needs from storage."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tally.audit.ports import Transaction, UnitOfWork
from tally.settlement.engine import (
    BatchOutcome,
    Closing,
    Effect,
    OpenFigures,
    SettlementEvent,
    WaitingRollback,
)


class SettlementHolds(Protocol):
    """Risk's holds on a provider's settlement, as a period close asks about them
    (settlement does not know risk: bootstrap wires this to ``RiskSwitches``)."""

    def held(self, provider: str) -> str:
        """Why ``provider``'s settlement is held for review, or "" if it is not."""
        ...


class OpenBreaks(Protocol):
    """Reconciliation's unresolved breaks, as a period close asks about them (settlement
    does not know reconciliation: bootstrap wires this to its store)."""

    def unresolved(
        self, provider: str, operator: str, start: datetime, end: datetime
    ) -> Mapping[str, tuple[int, int]]:
        """Per currency: (how many, the sum of their differences' sizes in minor units) of
        the breaks still open or being investigated between ``provider`` and ``operator``
        on the report days that [start, end) touches."""
        ...


class ConfigDocuments(UnitOfWork, Protocol):
    """Versioned settlement configuration as JSON documents, append-only.

    ``kind`` is one of ``contract``, ``agent``, ``placement``, ``fx_rate``; ``key``
    identifies one version. Documents are never updated or deleted: a change is a new
    version with its own effective instant. Every insert bumps ``revision()``, which
    lets in-memory caches notice a change made by any process. Writes happen inside
    ``unit_of_work()``, so that their audit record is written in the same transaction.
    """

    def get(self, kind: str, key: str) -> Mapping[str, Any] | None: ...

    def get_in(self, tx: Transaction, kind: str, key: str) -> Mapping[str, Any] | None:
        """``get`` inside ``tx``: it sees what ``tx`` inserted."""
        ...

    def insert_in(
        self, tx: Transaction, kind: str, key: str, document: Mapping[str, Any], now: datetime
    ) -> None: ...

    def all(self, kind: str) -> list[Mapping[str, Any]]: ...

    def revision(self) -> int: ...

    def close(self) -> None:
        """Release what the store holds (connections); one that holds nothing does nothing."""
        ...


class EventSource(Protocol):
    """The event log as settlement reads it: positions increase, reads are repeatable."""

    def read(self, after: int, limit: int) -> list[tuple[int, SettlementEvent]]:
        """Up to ``limit`` events with a position greater than ``after``, in order."""
        ...

    def committed(self, position: int) -> None:
        """Settlement committed everything up to ``position``: the worker calls it after
        each commit, so a log that redelivers until acknowledged (JetStream) acknowledges
        only then. A source that redelivers nothing does nothing."""
        ...


@dataclass(frozen=True, slots=True)
class StoredStatement:
    contract_id: str
    operator: str
    period: str
    sha256: str
    document: bytes
    csv: bytes
    closed_at: datetime


@dataclass(frozen=True, slots=True)
class Orphan:
    """A rollback still waiting for its original, and whether its period has closed
    (``None``: its period is not known, see :class:`WaitingRollback`)."""

    waiting: WaitingRollback
    outlived_close: bool | None


class SettlementStore(Protocol):
    """Settlement state plus the ledger, written together.

    ``commit_batch`` and ``commit_close`` are atomic: the ledger accounts and transfers,
    the settlement rows and the consumer's position are all written, or none is.
    """

    def load_figures(self) -> OpenFigures: ...

    def position(self, consumer: str) -> int: ...

    def load_effects(self, keys: Iterable[str]) -> dict[str, Effect]: ...

    def load_orphans(self, keys: Iterable[str]) -> dict[str, str]: ...

    def commit_batch(
        self,
        consumer: str,
        position: int,
        out: BatchOutcome,
        figures: OpenFigures,
        now: datetime,
    ) -> None: ...

    def commit_close(
        self,
        closing: Closing,
        figures: OpenFigures,
        now: datetime,
        within: Callable[[Transaction], object],
    ) -> None:
        """``within(tx)`` runs inside the close's transaction, before it commits: the
        close's audit record is written there, so the two commit together or not at all."""
        ...

    def statements(self) -> list[StoredStatement]: ...

    def orphans(self) -> list[Orphan]:
        """Rollbacks still waiting for their original, sorted by the ref they name then
        their key. One still here after its period closed (``outlived_close``) voided
        nothing in it: its original never came (or came under another key)."""
        ...

    def problems(self) -> list[tuple[str, str, datetime]]:
        """Events settlement could not place: (event key, reason, when)."""
        ...

    def close(self) -> None:
        """Release what the store holds (connections); one that holds nothing does nothing."""
        ...
