"""The settlement worker: reads the event log at its own pace and settles it, exactly once.

Each batch is settled by the pure :class:`SettlementBook` and committed by the store in
one transaction with the consumer's log position, so a crash at any instant neither
loses nor doubles an event: on restart the worker reloads its figures and position and
carries on from the last commit.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import structlog

from tally.audit.service import Auditing
from tally.events.model import VOIDABLE, any_kind_key, candidates
from tally.kernel.clock import Clock
from tally.settlement.config import SettlementConfig
from tally.settlement.engine import PeriodCloseError, SettlementBook, SettlementEvent
from tally.settlement.ports import (
    EventSource,
    OpenBreaks,
    Orphan,
    SettlementHolds,
    SettlementStore,
    StoredStatement,
)
from tally.settlement.statements import Statement

log = structlog.get_logger("tally.settlement")


@dataclass(frozen=True, slots=True)
class SettlementLimits:
    # Events settled in one transaction. A batch also posts its accruals (some 400 ledger
    # transfers and 150 figures, whatever its size), so big batches settle a backlog
    # faster: on PostgreSQL 14,000 events/s at 5,000, 18,500 at 20,000. A live worker
    # reads what is there, so its batches stay small and its latency low.
    batch_max_events: int = 20_000
    idle_wait_s: float = 0.05  # how long an idle worker sleeps before reading again
    # A period does not close while the provider's reconciliation breaks with its operator
    # (open or being investigated) differ by more than this in total, in minor units of
    # each currency, unless finance overrides it with a note (audited with the close).
    # 0: any unresolved difference holds the close (a timing break differs by 0).
    close_unresolved_breaks_max: int = 0


class NoEvents:
    """An event source with nothing in it: for a process that only closes periods."""

    def read(self, after: int, limit: int) -> list[tuple[int, SettlementEvent]]:
        return []

    def committed(self, position: int) -> None:
        """Nothing is redelivered: nothing to acknowledge."""


class SettlementWorker:
    def __init__(
        self,
        source: EventSource,
        store: SettlementStore,
        config: SettlementConfig,
        clock: Clock,
        limits: SettlementLimits | None = None,
        *,
        consumer: str = "settlement",
        by: Auditing,
        breaks: OpenBreaks | None = None,
        holds: SettlementHolds | None = None,
    ) -> None:
        """``by``: who closes periods, on whose trail each close is recorded (in the
        close's own transaction). ``breaks``: reconciliation's unresolved breaks, which
        hold a close (None: no reconciliation is consulted). ``holds``: risk's holds on a
        provider's settlement (a playbook's "hold for review"); a held provider's periods
        do not close, whatever the note, until the hold is undone."""
        self.source = source
        self.store = store
        self.config = config
        self.clock = clock
        self.limits = limits or SettlementLimits()
        self.consumer = consumer
        self.by = by
        self.breaks = breaks
        self.holds = holds
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._load()

    def _load(self) -> None:
        """(Re)load figures and position from the store: the state of the last commit."""
        self.book = SettlementBook(
            lambda: self.config.contracts(),
            self.config.partner_tree,
            self.config.fx,
            self.store.load_figures(),
        )
        self.position = self.store.position(self.consumer)

    def step(self) -> int:
        """Settle one batch; returns how many events it read (0: the log is drained)."""
        with self._lock:
            batch = self.source.read(self.position, self.limits.batch_max_events)
            if not batch:
                return 0
            events = [event for _, event in batch]
            first, last = batch[0][0], batch[-1][0]
            names = {e.key for e in events}
            names.update(key for e in events if e.ref for key in candidates(e.ref))
            # A feed report's twin is loaded too: only the provider's own event counts.
            names.update(e.twin for e in events if e.twin)
            waiting = {e.key for e in events}
            waiting.update(any_kind_key(e.key) for e in events if e.kind in VOIDABLE)
            try:
                out = self.book.settle(
                    f"{self.consumer}:{first}-{last}",
                    events,
                    self.store.load_effects(names),
                    self.store.load_orphans(waiting),
                )
                self.store.commit_batch(
                    self.consumer, last, out, self.book.figures, self.clock.now()
                )
            except BaseException:
                # The book's figures may be ahead of what was committed: start over from
                # the store, exactly as after a crash.
                self._load()
                raise
            self.position = last
            # A log that redelivers until told (JetStream) hears only after the commit.
            self.source.committed(last)
            if out.problems:
                log.warning(
                    "settlement_events_refused", count=len(out.problems), first=out.problems[0]
                )
            return len(batch)

    def drain(self) -> int:
        """Settle until the log has nothing more; returns the number of events read."""
        total = 0
        while (count := self.step()) > 0:
            total += count
        return total

    def _held_by_breaks(self, statement: Statement) -> dict[str, dict[str, int]]:
        """The currencies whose unresolved breaks pass the limit: {currency: {count, amount}}."""
        if self.breaks is None:
            return {}
        period = statement.period
        found = self.breaks.unresolved(
            statement.terms.provider, statement.operator, period.start, period.end
        )
        limit = self.limits.close_unresolved_breaks_max
        return {
            cur: {"count": count, "amount": amount}
            for cur, (count, amount) in sorted(found.items())
            if amount > limit
        }

    def close_period(
        self, contract_id: str, operator: str, label: str, *, override_breaks: str = ""
    ) -> Statement:
        """Close a period. Unresolved reconciliation breaks over the limit hold it
        (PeriodCloseError) unless ``override_breaks`` says why it closes anyway: that
        note and the breaks it overrode go on the close's audit record."""
        with self._lock:
            now = self.clock.now()
            try:
                closing = self.book.close_period(contract_id, operator, label, now)
                statement = closing.statement
                hold = self.holds.held(statement.terms.provider) if self.holds else ""
                if hold:
                    raise PeriodCloseError(
                        f"provider {statement.terms.provider}'s settlement is {hold}: period "
                        f"{label} does not close until the hold is undone"
                    )
                held = self._held_by_breaks(statement)
                note = override_breaks.strip()
                if held and not note:
                    what = ", ".join(
                        f"{c}: {v['count']} for {v['amount']}" for c, v in held.items()
                    )
                    raise PeriodCloseError(
                        f"unresolved reconciliation breaks over the limit "
                        f"({self.limits.close_unresolved_breaks_max} minor units) hold period "
                        f"{label} ({what}); resolve them or override with a note"
                    )
                target = f"period:{contract_id}:{operator}:{label}"
                after: dict[str, object] = {
                    "sha256": statement.sha256,
                    "fee": statement.fee.fee,
                    "currency": statement.terms.settlement_currency,
                }
                if held:
                    after["breaks_override"] = {"note": note, "unresolved": held}
                self.store.commit_close(
                    closing,
                    self.book.figures,
                    now,
                    lambda tx: self.by.record_in(tx, "period.closed", target, now, after=after),
                )
            except BaseException:
                self._load()
                raise
            log.info(
                "settlement_period_closed",
                contract=contract_id,
                operator=operator,
                period=label,
                sha256=closing.statement.sha256,
            )
            return closing.statement

    def statements(self) -> list[StoredStatement]:
        return self.store.statements()

    def orphans(self) -> list[Orphan]:
        return self.store.orphans()

    # -- running in the background --------------------------------------------------------
    def start(self) -> SettlementWorker:
        assert self._thread is None, "settlement worker already started"
        self._thread = threading.Thread(target=self._run, name="settlement", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.step() == 0:
                    time.sleep(self.limits.idle_wait_s)
            except Exception as exc:  # noqa: BLE001 - keep settling; the batch is retried
                log.error("settlement_batch_failed", error=str(exc))
                time.sleep(self.limits.idle_wait_s)
