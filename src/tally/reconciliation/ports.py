"""What reconciliation needs from the world: a store for its runs, report lines and
breaks, and Tally's side of the story."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from tally.audit.ports import Transaction
from tally.ledger.model import Account, AccountResult, TransferRequest, TransferResult
from tally.ledger.ports import AuditedWrite
from tally.reconciliation.model import (
    Break,
    BreakKind,
    BreakStatus,
    KeptBreak,
    MatchRules,
    ReportLine,
    StatusChange,
    TallyLine,
)


class RunStatus:
    READING = "reading"  # lines being stored; a crash leaves it so, and a re-run replaces it
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    provider: str
    name: str  # the report file's name
    file_sha256: str  # the report file's own hash: the same file twice is refused
    rules: MatchRules
    started_at: datetime
    status: str = RunStatus.READING
    lines: int = 0
    refused: int = 0
    breaks: int = 0
    json_sha256: str = ""
    csv_sha256: str = ""


@dataclass(frozen=True, slots=True)
class Finished:
    """What a finished run keeps, written in one transaction with its audit record."""

    lines: int
    refused: int
    json_report: bytes
    json_sha256: str
    csv_report: bytes
    csv_sha256: str
    breaks: Sequence[tuple[Break, str]]  # each with the file:line that named it ("" if none)
    at: datetime


class ReconciliationStore(Protocol):
    def close(self) -> None:
        """Release the store's connections (a store that holds none does nothing)."""
        ...

    def run_of_file(self, provider: str, file_sha256: str) -> int | None:
        """The finished run that took this file already, if one did."""
        ...

    def start_run(
        self, provider: str, name: str, file_sha256: str, rules: MatchRules, at: datetime
    ) -> int:
        """A new run (status reading); an unfinished run of the same file is dropped."""
        ...

    def add_lines(self, run_id: int, lines: Sequence[tuple[date, ReportLine]]) -> None:
        """Store report lines with their day in the provider's zone."""
        ...

    def report_lines(self, run_id: int) -> Iterator[ReportLine]:
        """The run's lines sorted by day (any order within a day): matching streams them."""
        ...

    def finish_run(
        self, run_id: int, done: Finished, within: Callable[[Transaction], object]
    ) -> None:
        """Keep the breaks and the report, mark the run done, and run ``within(tx)`` (the
        audit record) in the same transaction."""
        ...

    def run(self, run_id: int) -> Run | None: ...

    def runs(self, *, provider: str | None = None, after: int = 0, limit: int = 100) -> list[Run]:
        """Runs by id, after ``after``, ``limit`` at a time (the newest last)."""
        ...

    def report(self, run_id: int, fmt: str) -> bytes | None:
        """A finished run's break report, ``fmt`` "json" or "csv", as kept."""
        ...

    def breaks(
        self,
        *,
        status: BreakStatus | None = None,
        kind: BreakKind | None = None,
        run_id: int | None = None,
        provider: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[KeptBreak]:
        """Breaks by id, after ``after``, ``limit`` at a time."""
        ...

    def get_break(self, break_id: int) -> KeptBreak | None: ...

    def unresolved(
        self, provider: str, operator: str, first_day: date, last_day: date
    ) -> dict[str, tuple[int, int]]:
        """Per currency: how many breaks between ``provider`` and ``operator`` on the days
        [first_day, last_day] are open or being investigated, and the sum of their
        differences' sizes (minor units)."""
        ...

    def change_break(
        self,
        break_id: int,
        expect: BreakStatus,
        change: StatusChange,
        within: Callable[[Transaction], object],
    ) -> bool:
        """Move a break that is still in ``expect`` to ``change.status`` and ``change.owner``,
        append ``change`` to its history and run ``within(tx)`` in the same transaction.
        False (nothing changes) if its status is no longer ``expect``."""
        ...

    def change_break_in(
        self,
        tx: Transaction,
        break_id: int,
        expect: BreakStatus,
        change: StatusChange,
        adjustment: str | None = None,
    ) -> bool:
        """``change_break`` inside ``tx``, a transaction opened on the same database by
        another store (the ledger's, when a rule posts a transfer with the change), so that
        it commits or rolls back with it; ``adjustment`` (when given) is kept as the
        ledger transfer the change posted. False (nothing changes) if the break's status is
        no longer ``expect``."""
        ...


class AdjustmentLedger(Protocol):
    """The ledger as a rule that posts an adjustment needs it (LedgerService is one)."""

    def write_audited(
        self,
        accounts: Sequence[Account],
        transfers: Sequence[TransferRequest],
        within: AuditedWrite,
    ) -> tuple[list[AccountResult], list[TransferResult]]: ...


class TallySide(Protocol):
    # True: ``lines`` reads lazily in time order, so it may be given no end (the caller
    # stops where its report ends). False: it collects the window whole to sort it, so
    # it is given the report's end.
    in_time_order: bool

    def lines(
        self, provider: str, start: datetime, end: datetime | None, zone: str
    ) -> Iterator[TallyLine]:
        """What Tally recorded for ``provider`` with occurred_at in [start, end), sorted
        by day in ``zone``, each marked rolled back or not. ``end`` None: no end (the
        caller stops reading where its report ends)."""
        ...
