"""The reconciliation store contract, on every store: runs, lines sorted by day, breaks
kept with their status and history, each change committed with its audit callback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tally.reconciliation.model import (
    Break,
    BreakKind,
    BreakStatus,
    MatchRules,
    ReportLine,
    StatusChange,
)
from tally.reconciliation.ports import Finished, ReconciliationStore, RunStatus
from tests.conftest import PG_DSN

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
RULES = MatchRules("acme", version=3, amount_tolerance=2, zone="Europe/Malta")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReconciliationStore]:
    if request.param == "memory":
        from tally.adapters.memory.reconciliation import MemoryReconciliationStore

        yield MemoryReconciliationStore()
        return
    if request.param == "sqlite":
        from tally.adapters.sqlite.reconciliation import SqliteReconciliationStore

        s = SqliteReconciliationStore(tmp_path / "tally.sqlite")
        yield s
        s.close()
        return
    from tally.adapters.postgres.reconciliation import PostgresReconciliationStore

    pg = PostgresReconciliationStore(PG_DSN, schema=request.getfixturevalue("pg_schema"))
    yield pg
    pg.close()


def line(n: int, day_offset: int) -> tuple[date, ReportLine]:
    at = T + timedelta(days=day_offset, seconds=n)
    r = ReportLine("acme", "r.csv", n, f"t{n}", "bet", "op1", "p1", "r1", "EUR", 100 + n, at, "")
    return at.date(), r


def brk(n: int) -> Break:
    return Break(
        BreakKind.AMOUNT_MISMATCH, "acme", "op1", "EUR", date(2026, 3, 2), f"t{n}:bet",
        f"acme:t{n}:bet", 1001, 1000, date(2026, 3, 2),
    )  # fmt: skip


def finish(store: ReconciliationStore, run_id: int, n_breaks: int = 2) -> list[Any]:
    calls: list[Any] = []
    done = Finished(
        lines=5, refused=1, json_report=b'{"a":1}\n', json_sha256="j" * 64,
        csv_report=b"id\n", csv_sha256="c" * 64,
        breaks=[(brk(n), f"r.csv:{n}") for n in range(n_breaks)], at=T,
    )  # fmt: skip
    store.finish_run(run_id, done, calls.append)
    return calls


def test_report_lines_come_back_sorted_by_day_as_they_were_stored(
    store: ReconciliationStore,
) -> None:
    run_id = store.start_run("acme", "r.csv", "f" * 64, RULES, T)
    store.add_lines(run_id, [line(1, 2), line(2, 0), line(3, 1)])
    store.add_lines(run_id, [line(4, 0)])
    got = list(store.report_lines(run_id))
    assert [x.occurred_at.date() for x in got] == sorted(x.occurred_at.date() for x in got)
    assert {x.tx_id for x in got} == {"t1", "t2", "t3", "t4"}
    assert got[-1] == line(1, 2)[1]
    run = store.run(run_id)
    assert run is not None and run.status == RunStatus.READING and run.rules == RULES


def test_a_finished_run_keeps_its_breaks_and_report_and_calls_within_once(
    store: ReconciliationStore,
) -> None:
    run_id = store.start_run("acme", "r.csv", "f" * 64, RULES, T)
    assert store.run_of_file("acme", "f" * 64) is None
    assert len(finish(store, run_id)) == 1
    run = store.run(run_id)
    assert run is not None
    assert (run.status, run.lines, run.refused, run.breaks) == (RunStatus.DONE, 5, 1, 2)
    assert store.run_of_file("acme", "f" * 64) == run_id
    assert store.report(run_id, "json") == b'{"a":1}\n'
    assert store.report(run_id, "csv") == b"id\n"
    kept = store.breaks(run_id=run_id)
    assert [k.brk for k in kept] == [brk(0), brk(1)]
    assert [k.source for k in kept] == ["r.csv:0", "r.csv:1"]
    assert all(k.status is BreakStatus.OPEN and k.found_at == T for k in kept)


def test_an_unfinished_run_of_the_same_file_is_replaced_and_finished_runs_stay(
    store: ReconciliationStore,
) -> None:
    done = store.start_run("acme", "a.csv", "a" * 64, RULES, T)
    finish(store, done)
    stale = store.start_run("acme", "b.csv", "b" * 64, RULES, T)
    store.add_lines(stale, [line(1, 0)])
    fresh = store.start_run("acme", "b.csv", "b" * 64, RULES, T)
    assert store.run(stale) is None and store.run(done) is not None
    assert list(store.report_lines(fresh)) == []


def test_a_status_change_is_kept_with_its_history_only_from_the_expected_status(
    store: ReconciliationStore,
) -> None:
    finish(store, store.start_run("acme", "r.csv", "f" * 64, RULES, T))
    first = store.breaks()[0]
    calls: list[Any] = []
    assign = StatusChange(BreakStatus.INVESTIGATING, T, "user:1", "", "ana")
    assert store.change_break(first.id, BreakStatus.OPEN, assign, calls.append)
    close = StatusChange(BreakStatus.RESOLVED, T + timedelta(hours=1), "user:2", "fixed", "ana")
    # Someone else moved it meanwhile: nothing changes, nothing is audited.
    assert not store.change_break(first.id, BreakStatus.OPEN, close, calls.append)
    assert store.change_break(first.id, BreakStatus.INVESTIGATING, close, calls.append)
    assert len(calls) == 2
    got = store.get_break(first.id)
    assert got is not None
    assert (got.status, got.owner, got.history) == (BreakStatus.RESOLVED, "ana", (assign, close))
    assert [b.id for b in store.breaks(status=BreakStatus.OPEN)] == [store.breaks()[1].id]
    assert store.breaks(kind=BreakKind.TIMING) == []
    assert [b.id for b in store.breaks(after=first.id, limit=5)] == [store.breaks()[1].id]


def test_a_failing_audit_callback_leaves_the_break_unchanged(store: ReconciliationStore) -> None:
    if type(store).__name__.startswith("Memory"):
        pytest.skip("memory has no transactions (its audit store appends at once)")
    finish(store, store.start_run("acme", "r.csv", "f" * 64, RULES, T))
    first = store.breaks()[0]

    def fail(tx: object) -> None:
        raise RuntimeError("audit store down")

    change = StatusChange(BreakStatus.INVESTIGATING, T, "user:1", "", "ana")
    with pytest.raises(RuntimeError):
        store.change_break(first.id, BreakStatus.OPEN, change, fail)
    got = store.get_break(first.id)
    assert got is not None and got.status is BreakStatus.OPEN and got.history == ()


@contextmanager
def foreign_tx(
    store: ReconciliationStore, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Any]:
    """A transaction another store (the ledger) opened on the store's own database."""
    name = type(store).__name__
    if name.startswith("Memory"):
        yield None
    elif name.startswith("Sqlite"):
        from tally.adapters.sqlite.connection import connect, immediate

        conn = connect(tmp_path / "tally.sqlite")
        try:
            with immediate(conn) as tx:
                yield tx
        finally:
            conn.close()
    else:
        import psycopg

        from tally.adapters.postgres.connection import connect_kwargs

        schema = request.getfixturevalue("pg_schema")
        with psycopg.connect(PG_DSN, **connect_kwargs(schema)) as conn, conn.transaction():
            yield conn


def test_a_missing_lines_report_line_is_kept_with_its_break(store: ReconciliationStore) -> None:
    run_id = store.start_run("acme", "r.csv", "f" * 64, RULES, T)
    _, kept_line = line(4, 0)
    missing = Break(
        BreakKind.MISSING_IN_TALLY, "acme", "op1", "EUR", date(2026, 3, 2), "t4:bet", "", 104,
        0, line=kept_line,
    )  # fmt: skip
    done = Finished(
        lines=1, refused=0, json_report=b"{}", json_sha256="j" * 64, csv_report=b"",
        csv_sha256="c" * 64, breaks=[(missing, "r.csv:4"), (brk(1), "r.csv:1")], at=T,
    )  # fmt: skip
    store.finish_run(run_id, done, lambda tx: None)
    first, second = store.breaks()
    assert first.brk.line == kept_line and first.adjustment == ""
    assert second.brk.line is None


def test_a_change_in_another_stores_transaction_commits_with_it_and_keeps_the_transfer_id(
    store: ReconciliationStore, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    finish(store, store.start_run("acme", "r.csv", "f" * 64, RULES, T))
    first = store.breaks()[0]
    close = StatusChange(BreakStatus.RESOLVED, T, "rule:x", "adjusted", "")
    with foreign_tx(store, request, tmp_path) as tx:
        assert store.change_break_in(tx, first.id, BreakStatus.OPEN, close, "recon:fx:1")
        # Moved already: the second change from the same status is refused.
        assert not store.change_break_in(tx, first.id, BreakStatus.OPEN, close, "recon:fx:9")
    got = store.get_break(first.id)
    assert got is not None
    assert (got.status, got.adjustment, got.history) == (
        BreakStatus.RESOLVED,
        "recon:fx:1",
        (close,),
    )
    reopen = StatusChange(BreakStatus.OPEN, T, "user:1", "wrong", "")
    with foreign_tx(store, request, tmp_path) as tx:
        # Without an adjustment the one kept stays.
        assert store.change_break_in(tx, first.id, BreakStatus.RESOLVED, reopen)
    got = store.get_break(first.id)
    assert got is not None and (got.status, got.adjustment) == (BreakStatus.OPEN, "recon:fx:1")


def test_a_change_in_another_stores_transaction_that_rolls_back_leaves_the_break(
    store: ReconciliationStore, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if type(store).__name__.startswith("Memory"):
        pytest.skip("memory has no transactions")
    finish(store, store.start_run("acme", "r.csv", "f" * 64, RULES, T))
    first = store.breaks()[0]
    close = StatusChange(BreakStatus.RESOLVED, T, "rule:x", "adjusted", "")
    with pytest.raises(RuntimeError), foreign_tx(store, request, tmp_path) as tx:
        assert store.change_break_in(tx, first.id, BreakStatus.OPEN, close, "recon:fx:1")
        raise RuntimeError("the ledger refused the transfer")
    got = store.get_break(first.id)
    assert got is not None
    assert (got.status, got.adjustment, got.history) == (BreakStatus.OPEN, "", ())


@pytest.fixture(params=["memory", "sqlite"])
def event_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        from tally.adapters.memory.events import MemoryEventLog

        yield MemoryEventLog()
        return
    from tally.adapters.sqlite.events import SqliteEventLog

    log = SqliteEventLog(tmp_path / "tally.sqlite")
    yield log
    log.close()


def test_tallys_side_is_the_providers_events_in_the_window_sorted_by_day_with_rollbacks(
    event_log: Any,
) -> None:
    from tally.ingest.lines import ReportFormat, to_event
    from tally.reconciliation.tally_side import LogTallySide

    def event(tx: str, kind: str, at: str, provider: str = "acme", ref: str = "") -> Any:
        data = {
            "tx_id": tx, "kind": kind, "operator": "op1", "player": "p1", "game_type": "slots",
            "amount": "0" if kind == "rollback" else "10.00", "occurred_at": at, "ref": ref,
            "round_id": "r1",
        }  # fmt: skip
        e = to_event(ReportFormat(provider, UTC, "EUR"), data, "", T)
        assert not hasattr(e, "reason"), e
        return e

    event_log.append(
        [
            event("b2", "bet", "2026-03-03T01:00:00Z"),
            event("b1", "bet", "2026-03-02T10:00:00Z"),
            event("w1", "win", "2026-03-02T11:00:00Z"),
            event("o1", "bet", "2026-03-02T10:00:00Z", provider="other"),
            event("b0", "bet", "2026-02-27T10:00:00Z"),  # before the window
            # The rollback of w1 comes after the window; w1 is rolled back all the same.
            event("x1", "rollback", "2026-03-09T10:00:00Z", ref="w1"),
        ]
    )
    side = LogTallySide(event_log, page=2)
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC)
    got = list(side.lines("acme", start, end, "UTC"))
    assert [(t.key, t.amount, t.rolled_back) for t in got[:2]] == [
        ("acme:b1:bet", 1000, False),
        ("acme:w1:win", 1000, True),
    ] or [(t.key, t.amount, t.rolled_back) for t in got[:2]] == [
        ("acme:w1:win", 1000, True),
        ("acme:b1:bet", 1000, False),
    ]
    assert got[2].key == "acme:b2:bet" and len(got) == 3
