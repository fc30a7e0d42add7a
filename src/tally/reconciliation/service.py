"""Reconciliation runs and break handling: the use cases.

A run reads one provider report file and matches its lines day by day against Tally's
side: as it reads them when the report comes in day order (ADR 0020), else kept apart
from the events they describe in the reconciliation store and read back sorted by day.
It keeps the breaks, the break report (JSON and CSV with their SHA-256) and the run's
audit record in one transaction. Bad input is answered with an error naming the file and
line and kept in the input quarantine; a file refused whole leaves no run behind, and
earlier runs are never touched. What a person must act on is signalled as an alert.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import islice
from typing import Any

from tally.audit.ports import Transaction
from tally.audit.service import Auditing
from tally.events.ports import Appended, EventLog
from tally.ingest.files import BOM, LINE_MAX_BYTES, read_line
from tally.ingest.lines import LineRefusal
from tally.kernel.alerts import AlertSink
from tally.kernel.clock import Clock
from tally.kernel.limits import ReconciliationLimits
from tally.kernel.page import Page, decode_cursor, fetch_size, page_from_rows
from tally.ledger.model import AccountResult, ResultCode, TransferResult
from tally.quarantine.inputs import InputQuarantine, Reason, Refused, payload_text
from tally.reconciliation.alerts import (
    BALANCE_UNEXPLAINED,
    BREAK_AGED,
    balance_key,
    balance_unexplained,
    break_aged,
    break_key,
    report_refused,
)
from tally.reconciliation.layouts import ReportLayout, layout_for
from tally.reconciliation.matching import (
    InDayOrder,
    MatchResult,
    NotInDayOrder,
    day_of,
    match,
    match_days,
    zone_of,
)
from tally.reconciliation.model import (
    BreakKind,
    BreakStatus,
    KeptBreak,
    MatchRules,
    ReportLine,
    StatusChange,
    TallyLine,
    Transition,
    check_reopen,
    check_transition,
)
from tally.reconciliation.ports import (
    AdjustmentLedger,
    Finished,
    ReconciliationStore,
    Run,
    TallySide,
)
from tally.reconciliation.reading import (
    column_plan,
    missing_columns,
    row_to_report_line,
    to_report_line,
    unknown_columns,
)
from tally.reconciliation.report import to_csv, to_json
from tally.reconciliation.resolution import (
    FX_ACTOR,
    TIMING_ACTOR,
    UNRESOLVED,
    Adjustment,
    adjustment_id,
    fx_adjustment,
    fx_reversal,
    is_timing_pair,
    opposite,
    redrive_event,
    transaction_of,
)

SOURCE = "reconciliation"  # the quarantine's name for this door (not re-driven: re-run)

# The four protocol providers' rules until configuration says otherwise.
DEFAULT_RULES: Mapping[str, MatchRules] = {
    p: MatchRules(p, version=1, amount_tolerance=0, time_tolerance_s=60, zone="UTC")
    for p in ("softswiss", "pragmatic", "hub88", "evolution")
}


class ReportRefused(ValueError):
    """The report as a whole was refused: nothing of it was matched or kept as a run."""


class _AdjustmentRefused(Exception):
    """Raised inside the ledger's transaction to roll back an adjustment and its break's
    change together (the ledger refused it, or the break moved meanwhile)."""


@dataclass(frozen=True, slots=True)
class Redriven:
    """What re-driving a break's line did: ``verdict`` OK with the event's key, or why
    not (``detail``)."""

    verdict: Transition
    key: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RunOutcome:
    run: Run
    result: MatchResult
    refused_lines: tuple[str, ...] = field(default_factory=tuple)  # "file line N: why"


def _is_csv(name: str) -> bool:
    return not name.lower().endswith((".jsonl", ".ndjson", ".json"))


def _chunks(data: bytes) -> Iterator[bytes]:
    """``data.splitlines()`` one line at a time: a report is never split whole (a million
    lines would be a million objects held at once)."""
    at, size = 0, len(data)
    while at < size:
        end = data.find(b"\n", at)
        if end < 0:
            end = size
        piece = data[at:end]
        at = end + 1
        if b"\r" in piece:
            yield from piece.splitlines()  # a CR alone also ends a line, as in splitlines
        else:
            yield piece


def _read(data: bytes, name: str) -> Iterator[tuple[int, str, dict[str, Any] | list[str] | str]]:
    """(line number, text, fields or why not) for each line of content; the CSV header
    comes first as its own fields (its names) so it can be checked. A plain CSV line's
    fields come as its row (in the header's order), the others' as a dict."""
    header: str | None = None
    names: tuple[str, ...] = ()
    started = False
    is_csv = _is_csv(name)
    for number, chunk in enumerate(_chunks(data.removeprefix(BOM)), start=1):
        if len(chunk) > LINE_MAX_BYTES:
            yield number, "", f"line longer than {LINE_MAX_BYTES} bytes"
            continue
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError:
            yield number, "", "line is not UTF-8"
            continue
        if not text.strip() or (not started and text.lstrip().startswith("#")):
            continue
        started = True
        if is_csv and header is None:
            header = text
            names = tuple(h.strip() for h in next(csv.reader([header]), []))
            yield number, text, {"": header}
            continue
        if names and '"' not in text and "\0" not in text:
            # No quote: the csv module would split at each comma, and nothing else.
            row = text.split(",")
            yield number, text, (
                row if len(row) == len(names)
                else f"{len(row)} fields where the header has {len(names)}"
            )  # fmt: skip
            continue
        yield number, text, read_line(text, {} if header is None else {"x-tally-columns": header})


class _Parse:
    """A report's lines parsed, each with its day in the provider's zone; refused lines
    are named and kept in the quarantine (once: ``kept`` holds the line numbers kept by
    an earlier reading of the same file)."""

    def __init__(
        self,
        service: ReconciliationService,
        name: str,
        sha: str,
        tz: tzinfo,
        read: Iterator[tuple[int, str, ReportLine | LineRefusal]],
        kept: set[int],
    ) -> None:
        self.service, self.name, self.sha, self.tz, self.read = service, name, sha, tz, read
        self.kept = kept
        self.count = 0
        self.refused: list[str] = []  # "file line N: why"
        self.first: date | None = None
        self.last: date | None = None

    def lines(self) -> Iterator[tuple[date, ReportLine]]:
        tz, first, last = self.tz, self.first, self.last
        for number, text, parsed in self.read:
            if isinstance(parsed, LineRefusal):
                detail = f"{self.name} line {number}: {parsed.detail}"
                self.refused.append(detail)
                if number not in self.kept:
                    self.kept.add(number)
                    self.service.keep(
                        self.name, self.sha, number, text or "(not text)", parsed.reason, detail
                    )
                continue
            self.count += 1
            day = day_of(parsed.occurred_at, tz)
            if first is None or day < first:
                self.first = first = day
            if last is None or day > last:
                self.last = last = day
            yield day, parsed


class ReconciliationService:
    def __init__(
        self,
        store: ReconciliationStore,
        tally: TallySide,
        quarantine: InputQuarantine,
        clock: Clock,
        rules: Mapping[str, MatchRules] | None = None,
        layouts: Mapping[str, ReportLayout] | None = None,
        limits: ReconciliationLimits | None = None,
        *,
        alerts: AlertSink,
        ledger: AdjustmentLedger | None = None,
        log: EventLog | None = None,
    ) -> None:
        """``alerts``: where the conditions a person must act on are signalled (see
        :mod:`tally.reconciliation.alerts`); ``ledger``: where rule (b) posts FX rounding
        adjustments (None: the rule does not run); ``log``: the event log a missing line
        is re-driven into."""
        self.store = store
        self.alerts = alerts
        self.ledger = ledger
        self.log = log
        self.tally = tally
        self.quarantine = quarantine
        self.clock = clock
        self.rules = dict(DEFAULT_RULES if rules is None else rules)
        self.layouts = dict(layouts or {})
        self.limits = limits or ReconciliationLimits()

    # -- refusals ----------------------------------------------------------------------

    def keep(
        self, name: str, file_sha: str, number: int, text: str, reason: Reason, detail: str
    ) -> None:
        self.quarantine.put(
            Refused(
                source=SOURCE,
                channel=name,
                reason=reason,
                detail=detail,
                payload=text,
                received_at=self.clock.now(),
                key=f"recon:{file_sha}:{number}",
            )
        )

    def _refuse(
        self,
        provider: str,
        name: str,
        data: bytes,
        sha: str,
        number: int,
        reason: Reason,
        why: str,
    ) -> ReportRefused:
        detail = f"{name} line {number}: {why}" if number else f"{name}: {why}"
        self.keep(name, sha, number, payload_text(data[:4096]), reason, detail)
        self.alerts.signal(
            report_refused(provider, name, sha, reason.value, detail, self.clock.now())
        )
        return ReportRefused(detail)

    # -- a run -------------------------------------------------------------------------

    def run(
        self, name: str, data: bytes, provider: str, auditing: Auditing, zone: str | None = None
    ) -> RunOutcome:
        """Reconcile one report file of ``provider`` (``zone`` overrides its rules' zone)."""
        if len(data) > self.limits.report_max_bytes:
            raise ReportRefused(f"{name}: larger than {self.limits.report_max_bytes} bytes")
        sha = hashlib.sha256(data).hexdigest()
        rules = self.rules.get(provider)
        if rules is None:
            why = f"provider {provider!r} is unknown (known: {', '.join(sorted(self.rules))})"
            raise self._refuse(provider, name, data, sha, 0, Reason.UNKNOWN_PROVIDER, why)
        if zone:
            try:
                zone_of(zone)
            except (ValueError, KeyError):
                raise ReportRefused(f"{name}: {zone!r} is not a time zone") from None
            rules = replace(rules, zone=zone)
        earlier = self.store.run_of_file(provider, sha)
        if earlier is not None:
            why = f"this file was reconciled before (run {earlier}); runs are not repeated"
            raise self._refuse(provider, name, data, sha, 0, Reason.CONFLICT, why)
        layout = layout_for(provider, self.layouts)
        tz = zone_of(rules.zone)
        # The header is checked before anything is kept: a wrong layout refuses the file.
        lines = _read(data, name)
        first = next(lines, None)
        plan: tuple[tuple[int, str, str], ...] = ()
        is_csv = _is_csv(name)
        skip = 0
        if first is not None and is_csv:
            number, text, _ = first
            names = [h.strip() for h in next(csv.reader([text]), [])]
            plan = column_plan(layout, tuple(names))
            unknown = unknown_columns(layout, names)
            missing = missing_columns(layout, names)
            if unknown or missing:
                why = (
                    f"unknown column {', '.join(unknown)}" if unknown
                    else f"missing column for {', '.join(missing)}"
                )  # fmt: skip
                raise self._refuse(provider, name, data, sha, number, Reason.MALFORMED, why)
            skip = 1  # the header, checked
        now = self.clock.now()
        run_id = self.store.start_run(provider, name, sha, rules, now)

        def parse(kept: set[int]) -> _Parse:
            read = (
                (number, text, (
                    LineRefusal(Reason.MALFORMED, fields) if isinstance(fields, str)
                    else row_to_report_line(layout, plan, provider, tz, fields, name, number, text)
                    if isinstance(fields, list)
                    else to_report_line(
                        layout, provider, tz, fields, name, number, columns_checked=is_csv,
                        raw=text,
                    )
                ))
                for number, text, fields in islice(_read(data, name), skip, None)
            )  # fmt: skip
            return _Parse(self, name, sha, tz, read, kept)

        # A report in day order (the usual) is matched as it is read, when Tally's side
        # can be read as far as the report reaches; otherwise the report is stored and
        # read back sorted by day, and Tally's side read over its days.
        parsed = parse(set())
        result: MatchResult | None = None
        if self.tally.in_time_order:
            slack = timedelta(seconds=self.limits.day_order_slack_s)
            report = InDayOrder(parsed.lines(), tz, slack)
            try:
                tally = self._tally_days(report, provider, rules.zone, tz)
                result = match_days(report.lines(), tally, rules, self.limits)
            except NotInDayOrder:
                parsed = parse(parsed.kept)  # read again, the sorted way
        if result is None:
            result = self._match_sorted(run_id, parsed, provider, rules, now)
        count, refused = parsed.count, parsed.refused
        js, cs = to_json(result), to_csv(result)
        done = Finished(
            lines=count,
            refused=len(refused),
            json_report=js.body,
            json_sha256=js.sha256,
            csv_report=cs.body,
            csv_sha256=cs.sha256,
            breaks=[(b, b.source) for b in result.breaks],
            at=now,
        )
        after = {
            "provider": provider,
            "file": name,
            "file_sha256": sha,
            "rules": rules.to_dict(),
            "lines": count,
            "refused": len(refused),
            "breaks": len(result.breaks),
            "report_sha256": js.sha256,
        }
        self.store.finish_run(
            run_id,
            done,
            lambda tx: auditing.record_in(
                tx, "reconciliation.run", f"recon_run:{run_id}", now, after=after
            ),
        )
        self._close_timing_pairs(run_id, provider, auditing)
        self._adjust_fx_rounding(run_id, rules, auditing)
        self._signal_balances(run_id, result, now)
        self.signal_aged(provider)
        run = self.store.run(run_id)
        assert run is not None
        return RunOutcome(run, result, tuple(refused))

    def _match_sorted(
        self, run_id: int, parsed: _Parse, provider: str, rules: MatchRules, now: datetime
    ) -> MatchResult:
        """The report's lines kept in the store with their day and read back sorted by
        day, matched against Tally's side over the days they cover."""
        batch: list[tuple[date, ReportLine]] = []
        for item in parsed.lines():
            batch.append(item)
            if len(batch) >= self.limits.batch_lines:
                self.store.add_lines(run_id, batch)
                batch = []
        self.store.add_lines(run_id, batch)
        if parsed.first is None or parsed.last is None:
            start = end = now
        else:
            # Tally's side over the days the report covers, in the provider's zone.
            tz = parsed.tz
            start = datetime.combine(parsed.first, time(), tz).astimezone(UTC)
            end = datetime.combine(parsed.last + timedelta(days=1), time(), tz).astimezone(UTC)
        side = self.tally.lines(provider, start, end, rules.zone) if start < end else iter(())
        return match(self.store.report_lines(run_id), side, rules, self.limits)

    def _tally_days(
        self, report: InDayOrder, provider: str, zone: str, tz: tzinfo
    ) -> Iterator[tuple[date, TallyLine]]:
        """Tally's side over the days ``report`` covers (from its first day to its last,
        read from the report as far as each of Tally's lines needs)."""
        first = report.start()
        if first is None:
            return
        start = datetime.combine(first, time(), tz).astimezone(UTC)
        for line in self.tally.lines(provider, start, None, zone):
            day = day_of(line.occurred_at, tz)
            if not report.reaches(day):
                return
            yield day, line

    # -- alerts ------------------------------------------------------------------------

    def _signal_balances(self, run_id: int, result: MatchResult, at: datetime) -> None:
        """A balance difference no break explains is signalled; a row that adds up now
        (a corrected report re-run) clears the signal a run before raised for it."""
        for row in result.balances:
            if row.unexplained:
                self.alerts.signal(balance_unexplained(row, run_id, at))
            else:
                self.alerts.clear(BALANCE_UNEXPLAINED, balance_key(row), at)

    def signal_aged(self, provider: str | None = None) -> int:
        """Signal every unresolved break (of ``provider``, or all) open longer than
        ``limits.break_alert_age_s``; returns how many. Each run ends with it for its
        provider; a scheduler may call it between runs. A break's signal is cleared when
        the break is resolved or written off."""
        now = self.clock.now()
        age = timedelta(seconds=self.limits.break_alert_age_s)
        count = 0
        for status in (BreakStatus.OPEN, BreakStatus.INVESTIGATING):
            for kept in self._all(status=status, provider=provider):
                if now - kept.found_at >= age:
                    self.alerts.signal(break_aged(kept, now))
                    count += 1
        return count

    def _cleared(self, break_id: int, status: BreakStatus) -> None:
        if status not in UNRESOLVED:
            self.alerts.clear(BREAK_AGED, break_key(break_id), self.clock.now())

    # -- automatic resolution ----------------------------------------------------------

    def _all(self, **where: Any) -> Iterator[KeptBreak]:
        after = 0
        while page := self.store.breaks(after=after, limit=self.limits.page_max_size, **where):
            yield from page
            after = page[-1].id

    def _close_timing_pairs(self, run_id: int, provider: str, auditing: Auditing) -> None:
        """Rule (a): a line missing on one side at an earlier run's edge that this run
        finds on the other side closes both breaks as a timing difference, each with a
        note naming the other and its run, audited under the rule's name."""
        found = [k for k in self._all(run_id=run_id) if opposite(k.brk.kind) is not None]
        if not found:
            return
        earlier: dict[tuple[BreakKind, str], KeptBreak] = {}
        for kind in {opposite(k.brk.kind) for k in found} - {None}:
            assert kind is not None
            for status in UNRESOLVED:
                for k in self._all(kind=kind, status=status, provider=provider):
                    ident = transaction_of(k.brk)
                    if k.run_id != run_id and ident is not None:
                        earlier.setdefault((kind, ident), k)
        rule = Auditing(auditing.trail, TIMING_ACTOR, auditing.source)
        for later in found:
            ident = transaction_of(later.brk)
            kind = opposite(later.brk.kind)
            match_ = earlier.pop((kind, ident), None) if kind and ident else None
            if match_ is None or not is_timing_pair(match_.brk, later.brk):
                continue
            day = later.brk.tally_day or later.brk.day
            self._change(
                match_, BreakStatus.RESOLVED, match_.owner,
                f"timing: found by run {run_id} (break {later.id}, day {day})", rule,
                "reconciliation.break_resolved",
            )  # fmt: skip
            self._change(
                later, BreakStatus.RESOLVED, later.owner,
                f"timing: the other half of break {match_.id} of run {match_.run_id}", rule,
                "reconciliation.break_resolved",
            )  # fmt: skip

    def _adjust_fx_rounding(self, run_id: int, rules: MatchRules, auditing: Auditing) -> None:
        """Rule (b): an FX rounding break within the rules' tolerance is resolved by an
        adjustment transfer (see resolution.fx_adjustment), the transfer, the break's
        change and the audit record in the ledger's one transaction. A break the ledger
        refuses stays open for a person."""
        if self.ledger is None:
            return
        rule = Auditing(auditing.trail, FX_ACTOR, auditing.source)
        for kept in list(self._all(run_id=run_id, kind=BreakKind.FX_ROUNDING)):
            adjustment = fx_adjustment(kept.id, kept.brk, rules)
            if adjustment is None or kept.status not in UNRESOLVED:
                continue
            note = (
                f"fx rounding within tolerance ({rules.fx_rounding} minor units, rules "
                f"v{rules.version}): adjusted by transfer {adjustment.request.id}"
            )
            self._post(
                kept, adjustment, BreakStatus.RESOLVED, note, rule, "reconciliation.break_adjusted"
            )

    def _post(
        self,
        kept: KeptBreak,
        adjustment: Adjustment,
        status: BreakStatus,
        note: str,
        auditing: Auditing,
        action: str,
    ) -> Transition:
        """Post ``adjustment`` and move the break to ``status`` with its audit record, all
        in the ledger's one transaction: any of them failing leaves none of them."""
        assert self.ledger is not None
        now = self.clock.now()
        request = adjustment.request
        change = StatusChange(status, now, auditing.actor, note, kept.owner)
        before = {"status": kept.status.value, "owner": kept.owner, "adjustment": kept.adjustment}
        after = {
            "status": status.value, "owner": kept.owner, "note": note, "adjustment": request.id,
            "debit": request.debit_account_id, "credit": request.credit_account_id,
            "amount": request.amount, "currency": request.currency,
            "reason": request.metadata.get("reason", ""),
        }  # fmt: skip

        def within(
            tx: Transaction, created: list[AccountResult], moved: list[TransferResult]
        ) -> None:
            for account in created:
                if not account.code.ok:
                    raise _AdjustmentRefused(f"account {account.id}: {account.code.slug}")
            # EXISTS too: an adjustment that was posted before is not claimed again.
            if moved[0].code is not ResultCode.OK:
                raise _AdjustmentRefused(f"transfer {request.id}: {moved[0].code.slug}")
            if not self.store.change_break_in(tx, kept.id, kept.status, change, request.id):
                raise _AdjustmentRefused(f"break {kept.id} changed meanwhile")
            auditing.record_in(
                tx, action, f"recon_break:{kept.id}", now, before=before, after=after
            )

        try:
            self.ledger.write_audited(list(adjustment.accounts), [request], within)
        except _AdjustmentRefused:
            return Transition.NOT_ALLOWED
        self._cleared(kept.id, status)
        return Transition.OK

    def reopen(self, break_id: int, note: str, auditing: Auditing) -> Transition:
        """Undo a close, a person's or a rule's: the break is open again (audited). A
        break an FX rounding adjustment resolved gets the adjustment's reversal posted in
        the same transaction."""
        kept = self.store.get_break(break_id)
        if kept is None:
            return Transition.NOT_FOUND
        verdict = check_reopen(kept.status, note)
        if verdict is not Transition.OK:
            return verdict
        if kept.adjustment == adjustment_id(kept.id):
            reversal = fx_reversal(kept.id, kept.brk, kept.adjustment)
            if (
                reversal is None
                or self.ledger is None
                or len(note.strip()) > self.limits.text_max_length
            ):
                return Transition.NOT_ALLOWED
            return self._post(
                kept, reversal, BreakStatus.OPEN, note.strip(), auditing,
                "reconciliation.break_reopened",
            )  # fmt: skip
        return self._change(
            kept, BreakStatus.OPEN, kept.owner, note, auditing, "reconciliation.break_reopened",
            reopen=True,
        )  # fmt: skip

    # -- breaks ------------------------------------------------------------------------

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
        limit = max(1, min(limit, self.limits.page_max_size))
        return self.store.breaks(
            status=status, kind=kind, run_id=run_id, provider=provider, after=after, limit=limit
        )

    def break_page(
        self,
        *,
        status: BreakStatus | None = None,
        kind: BreakKind | None = None,
        run_id: int | None = None,
        provider: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[KeptBreak]:
        """One page of breaks by the kernel's keyset rule (an invalid cursor raises
        InvalidCursor, never reads as the first page)."""
        limit = max(1, min(limit, self.limits.page_max_size))
        rows = self.store.breaks(
            status=status, kind=kind, run_id=run_id, provider=provider,
            after=decode_cursor(cursor), limit=fetch_size(limit),
        )  # fmt: skip
        return page_from_rows(rows, limit, key=lambda k: k.id, item=lambda k: k)

    def run_page(
        self, *, provider: str | None = None, cursor: str | None = None, limit: int = 100
    ) -> Page[Run]:
        limit = max(1, min(limit, self.limits.page_max_size))
        after = decode_cursor(cursor)
        rows = self.store.runs(provider=provider, after=after, limit=fetch_size(limit))
        return page_from_rows(rows, limit, key=lambda r: r.id, item=lambda r: r)

    def unresolved(
        self, provider: str, operator: str, start: datetime, end: datetime
    ) -> dict[str, tuple[int, int]]:
        """Settlement's OpenBreaks: the unresolved breaks on the report days (in the
        provider's zone) that the window [start, end) touches."""
        rules = self.rules.get(provider)
        zone = zone_of(rules.zone if rules is not None else "UTC")
        first = day_of(start, zone)
        last = day_of(max(start, end - timedelta(microseconds=1)), zone)
        return self.store.unresolved(provider, operator, first, last)

    def get_run(self, run_id: int) -> Run | None:
        return self.store.run(run_id)

    def get(self, break_id: int) -> KeptBreak | None:
        return self.store.get_break(break_id)

    def report(self, run_id: int, fmt: str) -> tuple[bytes, str] | None:
        body = self.store.report(run_id, fmt)
        return None if body is None else (body, hashlib.sha256(body).hexdigest())

    def assign(self, break_id: int, owner: str, auditing: Auditing, note: str = "") -> Transition:
        """Give a break an owner; an open one is then being investigated."""
        kept = self.store.get_break(break_id)
        if kept is None:
            return Transition.NOT_FOUND
        status = BreakStatus.INVESTIGATING if kept.status is BreakStatus.OPEN else kept.status
        return self._change(kept, status, owner, note, auditing, "reconciliation.break_assigned")

    def set_status(
        self, break_id: int, status: BreakStatus, note: str, auditing: Auditing
    ) -> Transition:
        kept = self.store.get_break(break_id)
        if kept is None:
            return Transition.NOT_FOUND
        return self._change(
            kept, status, kept.owner, note, auditing, f"reconciliation.break_{status.value}"
        )

    def redrive(
        self, break_id: int, game_type: str, auditing: Auditing, note: str = ""
    ) -> Redriven:
        """Rule (c), a person's action: a line missing in Tally appended to the event log
        as the event it describes, through ``tally import``'s translation, its provenance
        (report file and line) in the event's ``raw``; the break is then resolved with a
        note naming the event's key (audited). The log deduplicates by key, so re-driving
        again appends nothing again."""
        kept = self.store.get_break(break_id)
        if kept is None:
            return Redriven(Transition.NOT_FOUND)
        if kept.status not in UNRESOLVED:
            return Redriven(Transition.CLOSED)
        line = kept.brk.line
        if kept.brk.kind is not BreakKind.MISSING_IN_TALLY or line is None:
            return Redriven(
                Transition.NOT_ALLOWED, detail=f"break {break_id} is not one line missing in Tally"
            )
        if self.log is None:
            return Redriven(Transition.NOT_ALLOWED, detail="no event log to re-drive into")
        game_type = game_type.strip()
        if not game_type or len(game_type) > self.limits.text_max_length:
            return Redriven(Transition.NOT_ALLOWED, detail="a game type names the line's game")
        event = redrive_event(kept.id, kept.run_id, line, game_type, self.clock.now())
        if isinstance(event, str):
            return Redriven(Transition.NOT_ALLOWED, detail=event)
        (appended,) = self.log.append([event])
        if appended.outcome is Appended.CONFLICT:
            why = f"{event.key} was logged before with another {appended.differs_in}"
            return Redriven(Transition.NOT_ALLOWED, key=event.key, detail=why)
        where = f"{line.source}:{line.line}"
        text = f"re-driven as event {event.key} from {where}" + (
            f": {note.strip()}" if note.strip() else ""
        )
        extra = {"event": event.key, "report": line.source, "line": line.line,
                 "appended": appended.outcome.value, "position": appended.position}  # fmt: skip
        verdict = self._change(
            kept, BreakStatus.RESOLVED, kept.owner, text, auditing, "reconciliation.break_redriven",
            extra=extra,
        )  # fmt: skip
        return Redriven(verdict, key=event.key, detail=appended.outcome.value)

    def _change(
        self,
        kept: KeptBreak,
        status: BreakStatus,
        owner: str,
        note: str,
        auditing: Auditing,
        action: str,
        *,
        reopen: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> Transition:
        owner, note = owner.strip(), note.strip()
        if len(owner) > self.limits.text_max_length or len(note) > self.limits.text_max_length:
            return Transition.NOT_ALLOWED
        verdict = Transition.OK if reopen else check_transition(kept.status, status, note)
        if verdict is not Transition.OK:
            return verdict
        now = self.clock.now()
        change = StatusChange(status, now, auditing.actor, note, owner)
        before = {"status": kept.status.value, "owner": kept.owner}
        after = {"status": status.value, "owner": owner, "note": note, **(extra or {})}
        moved = self.store.change_break(
            kept.id,
            kept.status,
            change,
            lambda tx: auditing.record_in(
                tx, action, f"recon_break:{kept.id}", now, before=before, after=after
            ),
        )
        if not moved:
            return Transition.NOT_ALLOWED
        self._cleared(kept.id, status)
        return Transition.OK
