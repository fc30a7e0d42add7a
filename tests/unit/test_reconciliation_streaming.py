"""Reconciliation streams: Tally's side read by the SQLite log's index of providers and
times (not the whole log), matching holding one day, the report read line by line."""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.adapters.memory.events import MemoryEventLog
from tally.adapters.sqlite.events import SqliteEventLog
from tally.events.model import Channel, Event, EventKind
from tally.ingest.files import BOM, read_line
from tally.reconciliation import matching
from tally.reconciliation.layouts import layout_for
from tally.reconciliation.matching import match
from tally.reconciliation.model import MatchRules, ReportLine, TallyLine
from tally.reconciliation.reading import column_plan, row_to_report_line, to_report_line
from tally.reconciliation.service import _read
from tally.reconciliation.tally_side import LogTallySide

T = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TOKYO = timezone(timedelta(hours=9))


def ev(tx: str, at: datetime, provider: str = "acme", **kw: Any) -> Event:
    base = Event(
        provider=provider, provider_tx_id=tx, kind=EventKind.BET, round_id=f"r-{tx}",
        operator="op1", player="p1", game="g", game_type="slots", amount=100,
        currency="EUR", occurred_at=at, recorded_at=T, channel=Channel.MOBILE, region="mt",
        raw="",
    )  # fmt: skip
    return replace(base, **kw)


def _events() -> list[Event]:
    return [
        ev("late", T + timedelta(hours=5)),
        ev("early", (T + timedelta(hours=1)).astimezone(TOKYO)),  # another offset
        ev("other", T + timedelta(hours=2), provider="zeta"),
        ev("before", T - timedelta(days=3)),
        ev("edge", T + timedelta(days=1)),  # the window's end: outside
        ev("first", T),
        # A rollback far outside the window still voids the bet it names.
        ev("rb", T + timedelta(days=9), kind=EventKind.ROLLBACK, ref="acme:late:bet"),
    ]


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqliteEventLog]:
    sqlite = SqliteEventLog(tmp_path / "tally.sqlite")
    sqlite.append(_events())
    yield sqlite
    sqlite.close()


def _txs(bodies: Iterator[str | bytes]) -> list[str]:
    import orjson

    return [orjson.loads(b)["provider_tx_id"] for b in bodies]


def test_the_sqlite_log_reads_one_providers_window_in_time_order(log: SqliteEventLog) -> None:
    found = _txs(log.provider_window("acme", T, T + timedelta(days=1)))
    assert found == ["first", "early", "late"]
    assert _txs(log.provider_rollbacks("acme")) == ["rb"]
    assert _txs(log.provider_rollbacks("zeta")) == []


def test_a_window_larger_than_a_page_is_read_whole_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tally.adapters.sqlite.events.WINDOW_PAGE", 3)
    sqlite = SqliteEventLog(tmp_path / "tally.sqlite")
    # Ten events at one instant (ties broken by position) and three later.
    sqlite.append([ev(f"t{i}", T) for i in range(10)])
    sqlite.append([ev(f"u{i}", T + timedelta(seconds=3 - i)) for i in range(3)])
    found = _txs(sqlite.provider_window("acme", T, T + timedelta(hours=1)))
    sqlite.close()
    assert found == [f"t{i}" for i in range(10)] + ["u2", "u1", "u0"]


def test_events_logged_before_the_index_existed_are_indexed_when_the_log_opens(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tally.sqlite"
    SqliteEventLog(path).append(_events())
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM event_times")  # as a log written before the migration
    conn.close()
    reopened = SqliteEventLog(path)
    found = _txs(reopened.provider_window("acme", T, T + timedelta(days=1)))
    reopened.close()
    assert found == ["first", "early", "late"]


def test_tallys_side_on_the_sqlite_log_reads_its_index_not_the_whole_log(
    log: SqliteEventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = MemoryEventLog()
    memory.append(_events())
    start, end = T - timedelta(days=5), T + timedelta(days=2)
    scanned = list(LogTallySide(memory).lines("acme", start, end, "Europe/Malta"))

    def no_scan(*_: object) -> list[tuple[int, str | bytes]]:
        raise AssertionError("the whole log was read")

    monkeypatch.setattr(log, "read_stored", no_scan)
    # Only a log read in time order may be read without an end (a run in day order).
    assert LogTallySide(log).in_time_order and not LogTallySide(memory).in_time_order
    windowed = list(LogTallySide(log).lines("acme", start, end, "Europe/Malta"))
    assert list(LogTallySide(log).lines("acme", start, None, "Europe/Malta"))[: len(windowed)] == (
        windowed
    )
    # The same lines (by day; within a day in any order), the voided bet marked.
    assert sorted(windowed, key=lambda t: t.key) == sorted(scanned, key=lambda t: t.key)
    assert [t.occurred_at for t in windowed] == sorted(t.occurred_at for t in windowed)
    assert {t.tx_id for t in windowed if t.rolled_back} == {"late"}


def _report(day: int, n: int) -> list[ReportLine]:
    at = T + timedelta(days=day)
    return [
        ReportLine("acme", "f", i, f"d{day}-{i}", "bet", "op1", "p1", "", "EUR", 1, at)
        for i in range(n)
    ]


def test_matching_holds_one_day_and_never_reads_the_next_day_ahead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read = {"report": 0, "tally": 0}
    seen: list[tuple[int, int]] = []

    def counted(items: list[Any], side: str) -> Iterator[Any]:
        for item in items:
            read[side] += 1
            yield item

    report = [r for d in range(3) for r in _report(d, 5)]
    tally = [
        TallyLine("acme", f"acme:{r.tx_id}:bet", r.tx_id, "bet", "op1", "p1", "", "EUR", 1,
                  r.occurred_at)
        for r in report
    ]  # fmt: skip
    window = matching._Matcher.window

    def spy(self: Any, reps: Any, tals: Any, end: Any) -> Any:
        seen.append((read["report"], read["tally"]))
        return window(self, reps, tals, end)

    monkeypatch.setattr(matching._Matcher, "window", spy)
    rules = MatchRules("acme", 1, 0, 60, zone="UTC")
    result = match(counted(report, "report"), counted(tally, "tally"), rules)
    assert result.matched == 15
    # At each day's matching: that day's lines and the next day's first, nothing more.
    assert seen == [(6, 6), (11, 11), (15, 15)]


LINE = st.text(alphabet='ab,"\r\n\t #\\é', max_size=12)


def _reference(data: bytes, name: str) -> list[tuple[int, str, Any]]:
    """The report read as before: split whole, each line through ``read_line``."""
    out: list[tuple[int, str, Any]] = []
    header: str | None = None
    started = False
    for number, chunk in enumerate(data.removeprefix(BOM).splitlines(), start=1):
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError:
            out.append((number, "", "line is not UTF-8"))
            continue
        if not text.strip() or (not started and text.lstrip().startswith("#")):
            continue
        started = True
        if header is None:
            header = text
            out.append((number, text, {"": header}))
            continue
        out.append((number, text, read_line(text, {"x-tally-columns": header})))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, max_size=8), st.sampled_from(["\n", "\r\n", "\r"]))
def test_a_csv_report_read_line_by_line_reads_as_if_split_whole(lines: list[str], end: str) -> None:
    data = ("a,b" + end + end.join(lines)).encode()
    # A plain line's fields come as its row, in the header's order.
    read = [
        (n, text, dict(zip(("a", "b"), f, strict=True)) if isinstance(f, list) else f)
        for n, text, f in _read(data, "r.csv")
    ]
    assert read == _reference(data, "r.csv")


def test_a_plain_csv_line_splits_as_the_csv_module_does() -> None:
    data = b'a,b,c\n1,,3\n"x,y",2,3\n1,2\n'
    rows = [f for _, _, f in _read(data, "r.csv")]
    assert rows[1] == next(csv.reader(["1,,3"]))
    assert rows[2] == {"a": "x,y", "b": "2", "c": "3"}
    assert rows[3] == "2 fields where the header has 3"


FIELD = st.one_of(
    st.sampled_from(["bet", "win", "EUR", "1.00", "-2.5", "2026-03-02T10:00:00", "op1", ""]),
    st.text(alphabet="ab1.-: \\é\0", max_size=6),
    st.text(alphabet="x", min_size=250, max_size=260),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(FIELD, min_size=9, max_size=9))
def test_a_csv_row_read_by_index_reads_as_the_same_row_as_a_dict(row: list[str]) -> None:
    layout = layout_for("softswiss")
    names = tuple(layout.columns)
    raw = ",".join(row)
    by_dict = to_report_line(
        layout, "softswiss", UTC, dict(zip(names, row, strict=True)), "f", 2,
        columns_checked=True, raw=raw,
    )  # fmt: skip
    plan = column_plan(layout, names)
    assert row_to_report_line(layout, plan, "softswiss", UTC, row, "f", 2, raw) == by_dict


SLACK = timedelta(hours=1)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=3 * 24 * 60), max_size=30))
def test_a_report_passes_in_day_order_when_no_line_comes_past_the_slack(
    minutes: list[int],
) -> None:
    """Passed on sorted by day (stable: the order read within a day); refused only if a
    line came the slack or more after a later line."""
    items = [
        ((T + timedelta(minutes=m)).date(), replace(_report(0, 1)[0], line=i,
                                                    occurred_at=T + timedelta(minutes=m)))
        for i, m in enumerate(minutes)
    ]  # fmt: skip
    late = any(
        items[i][1].occurred_at - items[j][1].occurred_at >= SLACK
        for j in range(len(items))
        for i in range(j)
    )
    stream = matching.InDayOrder(iter(items), UTC, SLACK)
    try:
        passed = list(stream.lines())
    except matching.NotInDayOrder:
        assert late
        return
    assert passed == sorted(items, key=lambda item: item[0])
    assert stream.done and stream.first == min((d for d, _ in items), default=None)


def test_a_report_in_day_order_reads_only_as_far_as_tallys_side_needs() -> None:
    days = [((T + timedelta(days=d)).date(), r) for d in range(3) for r in _report(d, 2)]
    read: list[int] = []

    def counted() -> Iterator[Any]:
        for n, item in enumerate(days, start=1):
            read.append(n)
            yield item

    stream = matching.InDayOrder(counted(), UTC, SLACK)
    # The first day opens once a line an hour (the slack) past its start is read.
    assert stream.start() == T.date() and read == [1]  # T is 10:00
    assert stream.reaches((T + timedelta(days=1)).date()) and read[-1] == 3
    assert not stream.reaches((T + timedelta(days=3)).date()) and stream.done
    # What was read for Tally's side is still passed on, in order.
    assert list(stream.lines()) == days
