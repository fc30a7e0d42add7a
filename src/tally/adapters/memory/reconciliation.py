"""Reconciliation's store in memory (tests, the demo)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import date, datetime

from tally.audit.ports import Transaction
from tally.reconciliation.model import (
    BreakKind,
    BreakStatus,
    KeptBreak,
    MatchRules,
    ReportLine,
    StatusChange,
)
from tally.reconciliation.ports import Finished, Run, RunStatus


class MemoryReconciliationStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[int, Run] = {}
        self._reports: dict[tuple[int, str], bytes] = {}
        self._lines: dict[int, list[tuple[date, ReportLine]]] = {}
        self._breaks: dict[int, KeptBreak] = {}
        self._last_run = 0  # ids are never reused, also after a dropped run

    def close(self) -> None:
        """Nothing to release: the store is memory."""

    def run_of_file(self, provider: str, file_sha256: str) -> int | None:
        with self._lock:
            for run in self._runs.values():
                if (run.provider, run.file_sha256, run.status) == (
                    provider,
                    file_sha256,
                    RunStatus.DONE,
                ):
                    return run.id
        return None

    def start_run(
        self, provider: str, name: str, file_sha256: str, rules: MatchRules, at: datetime
    ) -> int:
        with self._lock:
            for old in [
                r.id
                for r in self._runs.values()
                if (r.provider, r.file_sha256, r.status)
                == (provider, file_sha256, RunStatus.READING)
            ]:
                del self._runs[old]
                self._lines.pop(old, None)
            self._last_run += 1
            run_id = self._last_run
            self._runs[run_id] = Run(run_id, provider, name, file_sha256, rules, at)
            self._lines[run_id] = []
            return run_id

    def add_lines(self, run_id: int, lines: Sequence[tuple[date, ReportLine]]) -> None:
        with self._lock:
            self._lines[run_id].extend(lines)

    def report_lines(self, run_id: int) -> Iterator[ReportLine]:
        with self._lock:
            lines = sorted(self._lines.get(run_id, ()), key=lambda x: x[0])
        return (line for _, line in lines)

    def finish_run(
        self, run_id: int, done: Finished, within: Callable[[Transaction], object]
    ) -> None:
        with self._lock:
            next_id = max(self._breaks, default=0) + 1
            for n, (brk, source) in enumerate(done.breaks):
                self._breaks[next_id + n] = KeptBreak(
                    next_id + n, run_id, brk, done.at, source=source
                )
            self._runs[run_id] = replace(
                self._runs[run_id],
                status=RunStatus.DONE,
                lines=done.lines,
                refused=done.refused,
                breaks=len(done.breaks),
                json_sha256=done.json_sha256,
                csv_sha256=done.csv_sha256,
            )
            self._reports[(run_id, "json")] = done.json_report
            self._reports[(run_id, "csv")] = done.csv_report
            self._lines.pop(run_id, None)
        within(None)

    def run(self, run_id: int) -> Run | None:
        with self._lock:
            return self._runs.get(run_id)

    def runs(self, *, provider: str | None = None, after: int = 0, limit: int = 100) -> list[Run]:
        with self._lock:
            found = [
                r
                for i, r in sorted(self._runs.items())
                if i > after and (provider is None or r.provider == provider)
            ]
        return found[:limit]

    def report(self, run_id: int, fmt: str) -> bytes | None:
        with self._lock:
            return self._reports.get((run_id, fmt))

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
        with self._lock:
            found = [
                b
                for i, b in sorted(self._breaks.items())
                if i > after
                and (status is None or b.status is status)
                and (kind is None or b.brk.kind is kind)
                and (run_id is None or b.run_id == run_id)
                and (provider is None or b.brk.provider == provider)
            ]
        return found[:limit]

    def get_break(self, break_id: int) -> KeptBreak | None:
        with self._lock:
            return self._breaks.get(break_id)

    def unresolved(
        self, provider: str, operator: str, first_day: date, last_day: date
    ) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        with self._lock:
            for k in self._breaks.values():
                b = k.brk
                if (
                    (b.provider, b.operator) == (provider, operator)
                    and k.status in (BreakStatus.OPEN, BreakStatus.INVESTIGATING)
                    and first_day <= b.day <= last_day
                ):
                    n, total = found.get(b.currency, (0, 0))
                    found[b.currency] = (n + 1, total + abs(b.difference))
        return found

    def change_break(
        self,
        break_id: int,
        expect: BreakStatus,
        change: StatusChange,
        within: Callable[[Transaction], object],
    ) -> bool:
        if not self.change_break_in(None, break_id, expect, change):
            return False
        within(None)
        return True

    def change_break_in(
        self,
        tx: Transaction,
        break_id: int,
        expect: BreakStatus,
        change: StatusChange,
        adjustment: str | None = None,
    ) -> bool:
        # Memory cannot roll back: the change stands once made (as the memory ledger's).
        with self._lock:
            kept = self._breaks.get(break_id)
            if kept is None or kept.status is not expect:
                return False
            self._breaks[break_id] = replace(
                kept,
                status=change.status,
                owner=change.owner,
                history=(*kept.history, change),
                adjustment=kept.adjustment if adjustment is None else adjustment,
            )
        return True
