"""Importing a provider's batch report: every line accepted, or refused with its reason.

Lines are read in batches of a named size; each batch's events go to the event log
(deduplicated by key) and its refused lines to the input quarantine, then the file's
progress (its SHA-256 and the last line committed) is recorded. After a crash the import
resumes after that line; a batch that was half done is done again, which the log's
deduplication and the quarantine's one-entry-per-file-line make harmless.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from tally.events.model import Event
from tally.events.ports import Appended, EventLog
from tally.ingest.lines import LineRefusal, ReportFormat, to_event
from tally.kernel.clock import Clock
from tally.kernel.limits import json_too_deep
from tally.quarantine.inputs import InputQuarantine, Quarantined, Reason, Refused
from tally.quarantine.redrive import RedriveOutcome

LINE_MAX_BYTES = 16 * 1024  # a longer line is refused whole
HEADERS_CACHED = 16  # parsed CSV header rows kept (one per file being read)
BOM = b"\xef\xbb\xbf"  # spreadsheet exports often start with one; it is not content


class ReportRefused(ValueError):
    """The report as a whole cannot be read (nothing of it was taken)."""


DIRECTIVES = ("tz", "currency")  # what a report's own "#" header lines may set
HEADER_MAX_BYTES = 64 * 1024  # where a report's "#" header must end


def directives(data: bytes) -> dict[str, str]:
    """The settings a report states about itself on "#" lines before its first line of
    content, e.g. ``# tz=Asia/Tokyo currency=JPY``: they win over the importer's defaults,
    because the provider knows its own zone best."""
    found: dict[str, str] = {}
    head = data.removeprefix(BOM)[:HEADER_MAX_BYTES]
    for chunk in head.splitlines():
        line = chunk.decode("utf-8", errors="replace").strip()
        if not line:
            continue
        if not line.startswith("#"):
            break
        for word in line[1:].replace(",", " ").split():
            name, sep, value = word.partition("=")
            if not sep or name.lower() not in DIRECTIVES or not value:
                raise ReportRefused(
                    f"header {line!r}: say {' '.join(f'{d}=...' for d in DIRECTIVES)}"
                )
            found[name.lower()] = value
    else:
        if len(data) > HEADER_MAX_BYTES:
            raise ReportRefused(f"the report's # header is longer than {HEADER_MAX_BYTES} bytes")
    return found


def stated_format(fmt: ReportFormat, data: bytes) -> ReportFormat:
    """``fmt`` with what the report states about itself applied."""
    stated = directives(data)
    zone = fmt.zone
    if "tz" in stated:
        try:
            zone = ZoneInfo(stated["tz"])
        except (ValueError, KeyError):
            raise ReportRefused(f"tz={stated['tz']} is not a time zone") from None
    currency = stated.get("currency", fmt.currency).upper()
    return ReportFormat(fmt.provider, zone, currency)


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):
        return UTC


@dataclass(frozen=True, slots=True)
class ImportLimits:
    batch_lines: int = 5_000  # lines per event-log append and progress record


@dataclass(slots=True)
class ImportCounts:
    lines: int = 0
    accepted: int = 0
    duplicate: int = 0
    conflict: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "lines": self.lines,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "conflict": self.conflict,
            "rejected": self.rejected,
        }


@dataclass(frozen=True, slots=True)
class ImportReport:
    file_id: str  # the file's SHA-256
    name: str
    resumed_after: int  # lines already committed by an earlier, interrupted run
    counts: ImportCounts = field(default_factory=ImportCounts)
    # What a refused line needs to be read again on its own (kept with it).
    context: dict[str, str] = field(default_factory=dict)


class ImportProgress(Protocol):
    def committed(self, file_id: str) -> int:
        """How many lines of the file were committed (0 for a file never seen)."""
        ...

    def record(
        self,
        file_id: str,
        name: str,
        provider: str,
        lines: int,
        counts: dict[str, int],
        at: datetime,
        *,
        finished: bool,
    ) -> None: ...

    def close(self) -> None:
        """Release what the store holds (connections); one that holds nothing does nothing."""
        ...


def _lines(data: bytes, name: str) -> Iterator[tuple[int, str | None, dict[str, Any] | str]]:
    """(line number, the line as text or None, its fields or why it cannot be read)."""
    is_csv = not name.lower().endswith((".jsonl", ".ndjson", ".json"))
    header: str | None = None
    started = False
    data = data.removeprefix(BOM)
    for number, chunk in enumerate(data.splitlines(), start=1):
        if len(chunk) > LINE_MAX_BYTES:
            yield number, None, f"line longer than {LINE_MAX_BYTES} bytes"
            continue
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError:
            yield number, None, "line is not UTF-8"
            continue
        if not text.strip():
            continue
        if not started and text.lstrip().startswith("#"):
            continue  # the report's own header (see directives)
        started = True
        if is_csv and header is None:
            header = text
            continue
        context = {} if header is None else {"x-tally-columns": header}
        yield number, text, read_line(text, context)


def _context(name: str, data: bytes, fmt: ReportFormat) -> dict[str, str]:
    context = {
        "x-tally-provider": fmt.provider,
        "x-tally-zone": str(fmt.zone),
        "x-tally-currency": fmt.currency,
    }
    if not name.lower().endswith((".jsonl", ".ndjson", ".json")):
        head = data.removeprefix(BOM)[:LINE_MAX_BYTES]
        first = next(
            (
                line
                for line in head.splitlines()
                if line.strip() and not line.lstrip().startswith(b"#")
            ),
            b"",
        )
        context["x-tally-columns"] = first.decode("utf-8", errors="replace")
    return context


@lru_cache(maxsize=HEADERS_CACHED)
def _header(columns: str) -> tuple[str, ...]:
    return tuple(h.strip() for h in next(csv.reader([columns]), []))


def read_line(payload: str, context: dict[str, str]) -> dict[str, Any] | str:
    """A kept line's fields again (with its file's header), or why they cannot be read."""
    columns = context.get("x-tally-columns")
    if columns is None:
        if json_too_deep(payload):
            return "not JSON: nested too deeply"
        try:
            value = json.loads(payload)
        except ValueError as exc:
            return f"not JSON: {exc}"
        except RecursionError:
            # json recurses once per level; an event line is flat, so this is malformed.
            return "not JSON: nested too deeply"
        return value if isinstance(value, dict) else "each line must be a JSON object"
    header = _header(columns)
    row = next(csv.reader([payload]), [])
    if len(row) != len(header):
        return f"{len(row)} fields where the header has {len(header)}"
    return dict(zip(header, row, strict=True))


class FileImporter:
    def __init__(
        self,
        log: EventLog,
        quarantine: InputQuarantine,
        progress: ImportProgress,
        clock: Clock,
        limits: ImportLimits | None = None,
    ) -> None:
        self.log = log
        self.quarantine = quarantine
        self.progress = progress
        self.clock = clock
        self.limits = limits or ImportLimits()

    def run(
        self,
        name: str,
        data: bytes,
        fmt: ReportFormat,
        on_progress: Callable[[int], None] | None = None,
    ) -> ImportReport:
        fmt = stated_format(fmt, data)  # before anything is written: a bad header refuses all
        file_id = hashlib.sha256(data).hexdigest()
        done = self.progress.committed(file_id)
        report = ImportReport(file_id, name, done, context=_context(name, data, fmt))
        counts = report.counts
        batch: list[tuple[int, str | None, Event | LineRefusal]] = []
        last = done
        for number, text, fields in _lines(data, name):
            if number <= done:
                continue
            now = self.clock.now()
            parsed: Event | LineRefusal = (
                LineRefusal(Reason.MALFORMED, fields)
                if isinstance(fields, str)
                else to_event(fmt, fields, text or "", now)
            )
            batch.append((number, text, parsed))
            last = number
            if len(batch) >= self.limits.batch_lines:
                self._commit(report, fmt, batch, last, finished=False)
                batch = []
                if on_progress is not None:
                    on_progress(counts.lines)
        self._commit(report, fmt, batch, max(last, done), finished=True)
        if on_progress is not None:
            on_progress(counts.lines)
        return report

    def _commit(
        self,
        report: ImportReport,
        fmt: ReportFormat,
        batch: list[tuple[int, str | None, Event | LineRefusal]],
        last: int,
        *,
        finished: bool,
    ) -> None:
        counts = report.counts
        now = self.clock.now()
        events = [(n, t, p) for n, t, p in batch if isinstance(p, Event)]
        results = self.log.append([p for _, _, p in events]) if events else []
        for (number, text, event), result in zip(events, results, strict=True):
            if result.outcome is Appended.ACCEPTED:
                counts.accepted += 1
            elif result.outcome is Appended.DUPLICATE:
                counts.duplicate += 1
            else:
                counts.conflict += 1
                detail = f"line {number}: {event.key} was logged before with another "
                self._keep(report, number, text, Reason.CONFLICT, detail + result.differs_in, now)
        for number, text, parsed in batch:
            if isinstance(parsed, LineRefusal):
                counts.rejected += 1
                self._keep(
                    report, number, text, parsed.reason, f"line {number}: {parsed.detail}", now
                )
        counts.lines += len(batch)
        self.progress.record(
            report.file_id,
            report.name,
            fmt.provider,
            last,
            counts.as_dict(),
            now,
            finished=finished,
        )

    def redrive(self, entry: Quarantined) -> RedriveOutcome:
        """A kept file line read and appended again (after a fix elsewhere, e.g. a
        currency added or an operator registered)."""
        context = dict(entry.refused.headers)
        zone = context.get("x-tally-zone", "UTC")
        fmt = ReportFormat(
            context.get("x-tally-provider", ""), _zone(zone), context.get("x-tally-currency", "")
        )
        fields = read_line(entry.refused.payload, context)
        now = self.clock.now()
        parsed = (
            LineRefusal(Reason.MALFORMED, fields)
            if isinstance(fields, str)
            else to_event(fmt, fields, entry.refused.payload, now)
        )
        if isinstance(parsed, LineRefusal):
            return RedriveOutcome(False, f"{parsed.reason.value}: {parsed.detail}")
        (result,) = self.log.append([parsed])
        if result.outcome is Appended.CONFLICT:
            return RedriveOutcome(False, f"conflict: {parsed.key} differs in {result.differs_in}")
        return RedriveOutcome(True, f"{result.outcome.value} at position {result.position}")

    def _keep(
        self,
        report: ImportReport,
        number: int,
        text: str | None,
        reason: Reason,
        detail: str,
        now: datetime,
    ) -> None:
        self.quarantine.put(
            Refused(
                source="file",
                channel=report.name,
                reason=reason,
                detail=detail,
                payload=text if text is not None else "(line could not be read as text)",
                received_at=now,
                headers=report.context,
                key=f"file:{report.file_id}:{number}",
            )
        )
