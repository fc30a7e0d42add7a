"""Batch files: every line accepted or refused with its reason, resumable after a crash."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally.adapters.memory.ingest import MemoryImportProgress
from tally.adapters.memory.quarantine import MemoryInputQuarantine
from tally.adapters.sqlite.events import SqliteEventLog
from tally.events.model import Event, EventKind
from tally.events.ports import AppendResult
from tally.ingest.files import FileImporter, ImportLimits, ReportRefused
from tally.ingest.lines import ReportFormat
from tally.kernel.clock import FixedClock
from tally.quarantine.inputs import Reason

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TOKYO = ReportFormat("acme", ZoneInfo("Asia/Tokyo"), "JPY")
HEADER = "tx_id,kind,round_id,operator,player,game,game_type,amount,currency,occurred_at,ref\n"
GOOD = [
    "b1,bet,r1,op1,p1,slot-1,slots,500,JPY,2026-03-02 21:30:00,",
    "w1,win,r1,op1,p1,slot-1,slots,1200,,2026-03-02T21:30:05,",
    "b2,bet,r2,op1,p2,slot-1,slots,300,JPY,2026-03-02T12:30:00+00:00,",
    "rb2,rollback,r2,op1,p2,slot-1,slots,300,JPY,2026-03-02 21:31:00,b2",
]
BAD = [
    "b3,bet,r3,op1,p1,slot-1,slots,1.5,JPY,2026-03-02 21:30:00,",  # JPY has no decimals
    "b4,bet,r4,op1,p1,slot-1,slots,100,XYZ,2026-03-02 21:30:00,",  # unknown currency
    "b5,deposit,r5,op1,p1,slot-1,slots,100,JPY,2026-03-02 21:30:00,",  # not an event kind
    "b6,bet,r6,op1,,slot-1,slots,100,JPY,2026-03-02 21:30:00,",  # no player
    "b7,bet,r7,op1,p1,slot-1,slots,100,JPY,yesterday,",  # not a time
    "b8,bet,only,four",  # wrong number of fields
]


def importer(
    tmp_path: Path, limits: ImportLimits | None = None
) -> tuple[FileImporter, SqliteEventLog, MemoryInputQuarantine, MemoryImportProgress]:
    log = SqliteEventLog(tmp_path / "tally.sqlite")
    quarantine = MemoryInputQuarantine()
    progress = MemoryImportProgress()
    return (
        FileImporter(log, quarantine, progress, FixedClock(T0), limits),
        log,
        quarantine,
        progress,
    )


def logged(log: SqliteEventLog) -> list[Event]:
    return [e for _, e in log.read(0, 100_000)]


def test_a_csv_report_in_the_providers_zone_is_accepted_line_by_line(tmp_path: Path) -> None:
    run, log, quarantine, _ = importer(tmp_path)
    data = (HEADER + "\n".join(GOOD[:2] + BAD + GOOD[2:]) + "\n").encode()
    report = run.run("acme-2026-03-02.csv", data, TOKYO)
    assert report.counts.as_dict() == {
        "lines": 10,
        "accepted": 4,
        "duplicate": 0,
        "conflict": 0,
        "rejected": 6,
    }
    events = logged(log)
    assert [e.key for e in events] == [
        "acme:b1:bet",
        "acme:w1:win",
        "acme:b2:bet",
        "acme:rb2:rollback",
    ]
    bet = events[0]
    assert bet.occurred_at == datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
    assert bet.occurred_at.utcoffset() == timedelta(hours=9)  # the provider's offset kept
    assert bet.amount == 500 and events[1].currency == "JPY"  # the report's currency
    assert events[3].ref == "acme:b2:*"  # a bare ref names the transaction, any kind
    assert bet.raw == GOOD[0]
    kept = quarantine.entries().items
    assert [(q.refused.reason, q.refused.detail.split(":")[0]) for q in kept] == [
        (Reason.OUT_OF_RANGE, "line 4"),
        (Reason.OUT_OF_RANGE, "line 5"),
        (Reason.MALFORMED, "line 6"),
        (Reason.MALFORMED, "line 7"),
        (Reason.MALFORMED, "line 8"),
        (Reason.MALFORMED, "line 9"),
    ]
    assert kept[0].refused.payload == BAD[0]
    assert "excess" in kept[0].refused.detail or "decimal" in kept[0].refused.detail


def test_json_lines_work_the_same_and_a_second_import_counts_duplicates(tmp_path: Path) -> None:
    run, log, _, _ = importer(tmp_path)
    lines = [
        '{"tx_id": "b1", "kind": "bet", "operator": "op1", "player": "p1", "game_type": '
        '"slots", "amount": "5.25", "currency": "EUR", "occurred_at": "2026-03-02 13:00"}',
        '{"tx_id": "b1", "kind": "bet", "operator": "op1", "player": "p1", "game_type": '
        '"slots", "amount": "5.26", "currency": "EUR", "occurred_at": "2026-03-02 13:00"}',
        "[1, 2]",
    ]
    report = run.run("acme.jsonl", "\n".join(lines).encode(), TOKYO)
    assert (report.counts.accepted, report.counts.conflict, report.counts.rejected) == (1, 1, 1)
    again = run.run("acme-copy.jsonl", lines[0].encode(), TOKYO)
    assert (again.counts.accepted, again.counts.duplicate) == (0, 1)
    assert len(logged(log)) == 1


class CrashingLog:
    """The real log, which dies (like a killed process) on the n-th append."""

    def __init__(self, log: SqliteEventLog, crash_on: int) -> None:
        self.log = log
        self.crash_on = crash_on
        self.appends = 0

    def append(self, events: Sequence[Event]) -> list[AppendResult]:
        self.appends += 1
        results = self.log.append(events)
        if self.appends == self.crash_on:
            raise SystemExit("killed after the append, before the progress was recorded")
        return results

    def __getattr__(self, name: str) -> object:
        return getattr(self.log, name)


@pytest.mark.parametrize("crash_on", [1, 2, 4])
def test_an_import_killed_midway_resumes_and_every_line_counts_once(
    tmp_path: Path, crash_on: int
) -> None:
    rows = [
        f"t{i},bet,r{i},op1,p{i % 7},slot-1,slots,{100 + i},JPY,2026-03-02 21:30:00,"
        for i in range(230)
    ]
    rows[17] = "broken,bet"
    rows[150] = "t150,bet,r150,op1,p1,slot-1,slots,1.5,JPY,2026-03-02 21:30:00,"
    data = (HEADER + "\n".join(rows) + "\n").encode()
    log = SqliteEventLog(tmp_path / "tally.sqlite")
    quarantine = MemoryInputQuarantine()
    progress = MemoryImportProgress()
    limits = ImportLimits(batch_lines=50)
    crashing = FileImporter(
        CrashingLog(log, crash_on),
        quarantine,
        progress,
        FixedClock(T0),
        limits,  # type: ignore[arg-type]
    )
    with pytest.raises(SystemExit):
        crashing.run("big.csv", data, TOKYO)
    resumed = FileImporter(log, quarantine, progress, FixedClock(T0), limits).run(
        "big.csv", data, TOKYO
    )
    # Whole batches of 50 lines after the header were recorded before the crash.
    assert resumed.resumed_after == (1 + 50 * (crash_on - 1) if crash_on > 1 else 0)
    keys = [e.key for e in logged(log)]
    assert len(keys) == len(set(keys)) == 228
    assert sorted(keys) == sorted(f"acme:t{i}:bet" for i in range(230) if i not in (17, 150))
    assert len(quarantine.entries().items) == 2  # each refused line kept once
    assert (
        FileImporter(log, quarantine, progress, FixedClock(T0), limits)
        .run("big.csv", data, TOKYO)
        .counts.lines
        == 0
    )  # a finished file is not read again


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.one_of(
        st.binary(max_size=600),
        st.binary(max_size=200).map(lambda b: b"#" + b),
        st.lists(
            st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=80),
            max_size=8,
        ).map(lambda rows: (HEADER + "\n".join(rows)).encode()),
    ),
    name=st.sampled_from(["r.csv", "r.jsonl"]),
)
def test_any_bytes_are_answered_line_by_line_and_never_half_written(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, name: str
) -> None:
    run, log, quarantine, progress = importer(tmp_path_factory.mktemp("fuzz"))
    try:
        report = run.run(name, data, TOKYO)
    except ReportRefused:
        # Refused whole (its own "#" header is wrong): nothing of it was taken.
        assert data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"#")
        assert (logged(log), quarantine.entries().items) == ([], [])
        assert progress.committed(hashlib.sha256(data).hexdigest()) == 0
        return
    c = report.counts
    assert c.lines == c.accepted + c.duplicate + c.conflict + c.rejected
    assert len(logged(log)) == c.accepted
    assert len(quarantine.entries(limit=1_000).items) == c.rejected + c.conflict
    assert all(e.kind in EventKind for e in logged(log))


def test_a_line_nested_too_deeply_is_refused_and_the_rest_of_the_file_goes_on(
    tmp_path: Path,
) -> None:
    run, log, quarantine, _ = importer(tmp_path)
    good = (
        '{"tx_id":"j1","kind":"bet","operator":"op1","player":"p1","game_type":"slots",'
        '"amount":"100","occurred_at":"2026-03-02 21:30:00"}'
    )
    data = ("[" * 5_000 + "\n" + good + "\n").encode()
    counts = run.run("deep.jsonl", data, TOKYO).counts
    assert (counts.lines, counts.accepted, counts.rejected) == (2, 1, 1)
    (kept,) = quarantine.entries().items
    assert kept.refused.detail == "line 1: not JSON: nested too deeply"
    assert [e.key for e in logged(log)] == ["acme:j1:bet"]


def test_a_byte_order_mark_before_the_csv_header_is_not_part_of_the_first_column(
    tmp_path: Path,
) -> None:
    run, log, _, _ = importer(tmp_path)
    data = b"\xef\xbb\xbf" + (HEADER + GOOD[0] + "\n").encode()
    counts = run.run("excel.csv", data, TOKYO).counts
    assert (counts.accepted, counts.rejected) == (1, 0)
    assert [e.key for e in logged(log)] == ["acme:b1:bet"]


def test_a_time_in_a_year_settlement_could_not_place_is_refused_as_out_of_range(
    tmp_path: Path,
) -> None:
    run, log, quarantine, _ = importer(tmp_path)
    data = (HEADER + GOOD[0].replace("2026-03-02", "9999-12-31") + "\n").encode()
    counts = run.run("far.csv", data, TOKYO).counts
    assert (counts.accepted, counts.rejected) == (0, 1)
    (kept,) = quarantine.entries().items
    assert kept.refused.reason is Reason.OUT_OF_RANGE
    assert "1970 to 8999" in kept.refused.detail
    assert logged(log) == []


def test_a_report_stating_its_own_zone_and_currency_is_read_in_them(tmp_path: Path) -> None:
    run, log, quarantine, _ = importer(tmp_path)
    utc_no_currency = ReportFormat("acme", UTC)
    rows = [GOOD[0], GOOD[1], BAD[0]]
    data = ("# tz=Asia/Tokyo currency=JPY\n" + HEADER + "\n".join(rows) + "\n").encode()
    report = run.run("stated.csv", data, utc_no_currency)
    assert (report.counts.accepted, report.counts.rejected) == (2, 1)
    bet, win = logged(log)
    assert bet.occurred_at.isoformat() == "2026-03-02T21:30:00+09:00"
    assert (bet.currency, win.currency) == ("JPY", "JPY")  # the win's line names none
    (kept,) = quarantine.entries().items
    assert kept.refused.detail.startswith("line 5:")  # the header lines are counted
    assert kept.refused.headers["x-tally-zone"] == "Asia/Tokyo"  # re-driven in it too


def test_a_json_lines_report_may_state_its_zone_too(tmp_path: Path) -> None:
    run, log, _, _ = importer(tmp_path)
    line = (
        '{"tx_id":"z1","kind":"bet","operator":"op1","player":"p1","game_type":"slots",'
        '"amount":"1.25","occurred_at":"2026-03-02 09:00:00"}'
    )
    data = ("#tz=America/New_York, currency=usd\n" + line + "\n").encode()
    run.run("stated.jsonl", data, TOKYO)
    (event,) = logged(log)
    assert (event.occurred_at.isoformat(), event.currency, event.amount) == (
        "2026-03-02T09:00:00-05:00",
        "USD",
        125,
    )


@pytest.mark.parametrize(
    "header", ["# tz=Mars/Olympus", "# zone=Asia/Tokyo", "# tz", "# hello world"]
)
def test_a_report_with_a_wrong_header_is_refused_whole_and_nothing_is_taken(
    tmp_path: Path, header: str
) -> None:
    run, log, quarantine, progress = importer(tmp_path)
    data = (header + "\n" + HEADER + GOOD[0] + "\n").encode()
    with pytest.raises(ReportRefused):
        run.run("wrong.csv", data, TOKYO)
    assert (logged(log), quarantine.entries().items) == ([], [])
    assert progress.committed(hashlib.sha256(data).hexdigest()) == 0


def test_a_field_name_no_database_can_hold_is_named_in_the_refusal_escaped(
    tmp_path: Path,
) -> None:
    from tally.adapters.sqlite.quarantine import SqliteInputQuarantine

    log = SqliteEventLog(tmp_path / "tally.sqlite")
    quarantine = SqliteInputQuarantine(tmp_path / "tally.sqlite")
    run = FileImporter(log, quarantine, MemoryImportProgress(), FixedClock(T0))
    data = b'{"\\u0000": 1, "\\ud800": 2}\n'  # JSON escapes for a NUL and a lone surrogate
    counts = run.run("odd.jsonl", data, TOKYO).counts
    assert (counts.lines, counts.rejected) == (1, 1)
    (kept,) = quarantine.entries().items
    assert kept.refused.detail.startswith("line 1: missing tx_id")
    assert kept.refused.payload == data.decode().strip()


def test_a_line_with_a_nul_or_a_lone_surrogate_in_a_field_is_refused(tmp_path: Path) -> None:
    run, log, quarantine, _ = importer(tmp_path)
    base = (
        '{"tx_id":"%s","kind":"bet","operator":"op1","player":"%s","game_type":"slots",'
        '"amount":"100","occurred_at":"2026-03-02 21:30:00"}'
    )
    data = "\n".join([base % ("u1", "p\\u0000"), base % ("u2", "\\udc00"), base % ("u3", "Ö")])
    counts = run.run("odd.jsonl", data.encode(), TOKYO).counts
    assert (counts.accepted, counts.rejected) == (1, 2)
    assert [e.player for e in logged(log)] == ["Ö"]
    details = [q.refused.detail for q in quarantine.entries().items]
    assert details == [f"line {n}: player holds a NUL or a lone surrogate" for n in (1, 2)]
