"""A reconciliation run end to end on the embedded stores: a report file read with its
provider's layout, matched against the event log, breaks kept and audited; bad input
named by file and line, quarantined, and earlier runs left as they were."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tally.adapters.sqlite.backoffice import SqliteBackofficeStore
from tally.adapters.sqlite.events import SqliteEventLog
from tally.adapters.sqlite.quarantine import SqliteInputQuarantine
from tally.adapters.sqlite.reconciliation import SqliteReconciliationStore
from tally.audit.chain import Sealer
from tally.audit.service import Auditing
from tally.ingest.lines import ReportFormat, to_event
from tally.kernel.clock import FixedClock
from tally.reconciliation.model import BreakKind, BreakStatus, Transition, rules_from_document
from tally.reconciliation.service import ReconciliationService, ReportRefused
from tally.reconciliation.tally_side import LogTallySide
from tests.support.alerts import RecordingAlertSink

T = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)
SOFTSWISS = (
    "action_id,action,casino_id,user_id,game_id,currency,amount,created_at,original_action_id\n"
    "a1,bet,op1,p1,g1,EUR,10.00,2026-03-02T10:00:00,\n"
    "a2,win,op1,p1,g1,EUR,4.01,2026-03-02T10:00:01,\n"
    "a3,bet,op1,p2,g2,EUR,5.00,2026-03-02T11:00:00,\n"
)


@dataclass
class World:
    service: ReconciliationService
    log: SqliteEventLog
    audit: SqliteBackofficeStore
    quarantine: SqliteInputQuarantine
    auditing: Auditing


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    path = tmp_path / "tally.sqlite"
    log = SqliteEventLog(path)
    audit = SqliteBackofficeStore(path, Sealer(b"k" * 32))
    quarantine = SqliteInputQuarantine(path)
    store = SqliteReconciliationStore(path)
    service = ReconciliationService(
        store, LogTallySide(log), quarantine, FixedClock(T), alerts=RecordingAlertSink()
    )
    fmt = ReportFormat("softswiss", UTC, "EUR")
    events: list[Any] = []
    for tx, kind, amount, at in (
        ("a1", "bet", "10.00", "2026-03-02T10:00:00"),
        ("a2", "win", "4.00", "2026-03-02T10:00:01"),
        ("a4", "bet", "2.00", "2026-03-02T12:00:00"),
    ):
        data = {
            "tx_id": tx, "kind": kind, "operator": "op1", "player": "p1", "game_type": "slots",
            "amount": amount, "occurred_at": at, "round_id": "g1",
        }  # fmt: skip
        events.append(to_event(fmt, data, "", T))
    log.append(events)
    yield World(service, log, audit, quarantine, Auditing(audit, "user:ana", "cli"))
    for s in (store, quarantine, audit, log):
        s.close()


def test_a_run_keeps_its_breaks_report_and_audit_record_and_names_each_break(world: World) -> None:
    out = world.service.run("ss-0302.csv", SOFTSWISS.encode(), "softswiss", world.auditing)
    kinds = {(b.kind, b.report_ref, b.tally_key) for b in out.result.breaks}
    assert kinds == {
        (BreakKind.AMOUNT_MISMATCH, "a2:win", "softswiss:a2:win"),
        (BreakKind.MISSING_IN_TALLY, "a3:bet", ""),
        (BreakKind.MISSING_IN_REPORT, "", "softswiss:a4:bet"),
    }
    assert (out.run.lines, out.run.refused, out.run.breaks) == (3, 0, 3)
    kept = world.service.breaks(run_id=out.run.id)
    assert {k.source for k in kept} == {"ss-0302.csv:3", "ss-0302.csv:4", ""}
    body, sha = world.service.report(out.run.id, "json") or (b"", "")
    assert sha == out.run.json_sha256 and b"amount_mismatch" in body
    actions = [r.entry.action for r in world.audit.iter_audit()]
    assert actions == ["reconciliation.run"]


def test_the_same_inputs_and_rules_give_the_same_report_bytes(world: World, tmp_path: Path) -> None:
    first = world.service.run("a.csv", SOFTSWISS.encode(), "softswiss", world.auditing)
    # The same lines in another order, as another file: the same report.
    head, *rows = SOFTSWISS.splitlines()
    other = "\n".join([head, *reversed(rows)]) + "\n"
    second = world.service.run("b.csv", other.encode(), "softswiss", world.auditing)
    assert second.run.json_sha256 == first.run.json_sha256
    assert second.run.csv_sha256 == first.run.csv_sha256


def test_bad_lines_are_named_by_file_and_line_and_quarantined(world: World) -> None:
    bad = SOFTSWISS + "a5,bet,op1,p1,g1,XXX,1.00,2026-03-02T10:00:00,\n"
    bad += "a6,bet,op1,p1,g1,EUR,1.001,2026-03-02T10:00:00,\n"
    out = world.service.run("bad.csv", bad.encode(), "softswiss", world.auditing)
    assert out.refused_lines == (
        "bad.csv line 5: currency 'XXX' is unknown",
        "bad.csv line 6: amount '1.001': 1.001 has more than 2 decimal places for EUR",
    )
    kept = world.quarantine.entries(source="reconciliation").items
    assert [e.refused.detail for e in kept] == list(out.refused_lines)
    assert out.run.lines == 3 and out.run.refused == 2


@pytest.mark.parametrize(
    ("name", "body", "provider", "error"),
    [
        ("x.csv", SOFTSWISS, "nobody", "x.csv: provider 'nobody' is unknown"),
        ("x.csv", SOFTSWISS.replace("casino_id", "casino"), "softswiss",
         "x.csv line 1: unknown column casino"),
    ],
)  # fmt: skip
def test_a_report_refused_whole_names_the_file_and_is_quarantined(
    world: World, name: str, body: str, provider: str, error: str
) -> None:
    with pytest.raises(ReportRefused) as refused:
        world.service.run(name, body.encode(), provider, world.auditing)
    assert str(refused.value).startswith(error)
    assert (
        world.quarantine.entries(source="reconciliation").items[0].refused.detail.startswith(error)
    )
    assert world.service.breaks() == []


def test_a_file_sent_twice_is_refused_and_the_first_run_is_untouched(world: World) -> None:
    first = world.service.run("a.csv", SOFTSWISS.encode(), "softswiss", world.auditing)
    before = world.service.breaks()
    with pytest.raises(ReportRefused, match=f"reconciled before \\(run {first.run.id}\\)"):
        world.service.run("again.csv", SOFTSWISS.encode(), "softswiss", world.auditing)
    assert world.service.breaks() == before
    assert world.service.store.run(first.run.id) == first.run


def test_every_status_change_is_kept_in_the_breaks_history_and_audited(world: World) -> None:
    world.service.run("a.csv", SOFTSWISS.encode(), "softswiss", world.auditing)
    brk = world.service.breaks()[0]
    assert world.service.assign(brk.id, "bob", world.auditing) is Transition.OK
    assert (
        world.service.set_status(brk.id, BreakStatus.RESOLVED, "", world.auditing)
        is Transition.NOTE_REQUIRED
    )
    assert (
        world.service.set_status(brk.id, BreakStatus.WRITTEN_OFF, "1 cent", world.auditing)
        is Transition.OK
    )
    assert (
        world.service.set_status(brk.id, BreakStatus.RESOLVED, "late", world.auditing)
        is Transition.CLOSED
    )
    got = world.service.get(brk.id)
    assert got is not None
    assert [(h.status, h.owner, h.by) for h in got.history] == [
        (BreakStatus.INVESTIGATING, "bob", "user:ana"),
        (BreakStatus.WRITTEN_OFF, "bob", "user:ana"),
    ]
    actions = [r.entry.action for r in world.audit.iter_audit()]
    assert actions == [
        "reconciliation.run",
        "reconciliation.break_assigned",
        "reconciliation.break_written_off",
    ]


def test_a_json_lines_report_is_read_with_the_providers_kind_words(world: World) -> None:
    lines = [
        '{"reference":"a1","type":"bet","casinoId":"op1","userId":"p1","roundId":"g1",'
        '"currency":"EUR","amount":"10.00","timestamp":"2026-03-02T10:00:00Z"}',
        '{"reference":"a2","type":"result","casinoId":"op1","userId":"p1","roundId":"g1",'
        '"currency":"EUR","amount":"4.00","timestamp":"2026-03-02T10:00:01Z"}',
        '{"reference":"a9","type":"spin","casinoId":"op1","userId":"p1","roundId":"g1",'
        '"currency":"EUR","amount":"4.00","timestamp":"2026-03-02T10:00:01Z"}',
    ]
    service = world.service
    service.rules["pragmatic"] = replace(service.rules["softswiss"], provider="pragmatic")
    out = service.run("pp.jsonl", "\n".join(lines).encode(), "pragmatic", world.auditing)
    assert out.refused_lines == ("pp.jsonl line 3: kind 'spin' is not a kind pragmatic uses",)
    # Tally holds softswiss's events only: both of pragmatic's lines are missing there.
    assert [b.kind for b in out.result.breaks] == [BreakKind.MISSING_IN_TALLY] * 2


def test_match_rules_come_from_a_document_that_is_checked() -> None:
    rules = rules_from_document({"hub88": {"version": 2, "zone": "Europe/Malta"}})
    assert rules["hub88"].version == 2 and rules["hub88"].zone == "Europe/Malta"
    with pytest.raises(ValueError, match="unknown tolerance"):
        rules_from_document({"hub88": {"tolerance": 1}})
    with pytest.raises(ValueError, match="amount_tolerance must be int"):
        rules_from_document({"hub88": {"amount_tolerance": "1"}})


def test_a_json_escape_that_makes_a_nul_is_refused_though_short_lines_skip_checks(
    world: World,
) -> None:
    line = (
        '{"tx_id":"a\\u0000","kind":"bet","operator":"op1","player":"p1","currency":"EUR",'
        '"amount":"1.00","occurred_at":"2026-03-02T10:00:00Z"}'
    )
    world.service.rules["acme"] = replace(world.service.rules["softswiss"], provider="acme")
    out = world.service.run("g.jsonl", line.encode(), "acme", world.auditing)
    assert out.refused_lines == ("g.jsonl line 1: tx_id is too long or not clean text",)


# Rule (a): the report of the 2nd has a3 at 23:59:50; Tally recorded it at 00:00:10 the 3rd.
EDGE_REPORT = (
    "action_id,action,casino_id,user_id,game_id,currency,amount,created_at,original_action_id\n"
    "a1,bet,op1,p1,g1,EUR,10.00,2026-03-02T10:00:00,\n"
    "a2,win,op1,p1,g1,EUR,4.00,2026-03-02T10:00:01,\n"
    "a4,bet,op1,p1,g1,EUR,2.00,2026-03-02T12:00:00,\n"
    "a3,bet,op1,p2,g2,EUR,5.00,2026-03-02T23:59:50,\n"
)
NEXT_REPORT = (
    "action_id,action,casino_id,user_id,game_id,currency,amount,created_at,original_action_id\n"
    "b1,bet,op1,p1,g1,EUR,1.00,2026-03-03T09:00:00,\n"
)


def _log(world: World, *lines: tuple[str, str, str, str]) -> None:
    fmt = ReportFormat("softswiss", UTC, "EUR")
    world.log.append(
        [
            to_event(
                fmt,
                {
                    "tx_id": tx,
                    "kind": kind,
                    "operator": "op1",
                    "player": "p2",
                    "game_type": "slots",
                    "amount": amount,
                    "occurred_at": at,
                    "round_id": "g2",
                },
                "",
                T,
            )
            for tx, kind, amount, at in lines
        ]
    )


def test_a_line_missing_at_a_reports_edge_closes_itself_when_the_next_days_run_finds_it(
    world: World,
) -> None:
    _log(world, ("a3", "bet", "5.00", "2026-03-03T00:00:10"), ("b1", "bet", "1.00",
         "2026-03-03T09:00:00"))  # fmt: skip
    first = world.service.run("ss-0302.csv", EDGE_REPORT.encode(), "softswiss", world.auditing)
    (edge,) = world.service.breaks(run_id=first.run.id)
    assert (edge.brk.kind, edge.status) == (BreakKind.MISSING_IN_TALLY, BreakStatus.OPEN)
    second = world.service.run("ss-0303.csv", NEXT_REPORT.encode(), "softswiss", world.auditing)
    (other,) = world.service.breaks(run_id=second.run.id)
    assert other.brk.kind is BreakKind.MISSING_IN_REPORT
    edge, other = world.service.get(edge.id), world.service.get(other.id)  # type: ignore[assignment]
    assert edge is not None and other is not None
    assert edge.status is other.status is BreakStatus.RESOLVED
    assert (
        edge.history[-1].note
        == f"timing: found by run {second.run.id} (break {other.id}, day 2026-03-03)"
    )
    assert edge.history[-1].by == "rule:reconciliation.timing"
    records = [
        r.entry for r in world.audit.iter_audit() if r.entry.target == f"recon_break:{edge.id}"
    ]
    assert [(e.actor, e.action) for e in records] == [
        ("rule:reconciliation.timing", "reconciliation.break_resolved")
    ]
    # Reversible: reopening is audited, and the break is open again.
    assert world.service.reopen(edge.id, "", world.auditing) is Transition.NOTE_REQUIRED
    assert world.service.reopen(edge.id, "a3 was a different bet", world.auditing) is Transition.OK
    again = world.service.get(edge.id)
    assert again is not None and again.status is BreakStatus.OPEN
    actions = [
        r.entry.action
        for r in world.audit.iter_audit()
        if r.entry.target == f"recon_break:{edge.id}"
    ]
    assert actions[-1] == "reconciliation.break_reopened"


def test_an_unrelated_break_of_a_later_run_closes_nothing(world: World) -> None:
    _log(world, ("b1", "bet", "1.00", "2026-03-03T09:00:00"), ("c9", "bet", "5.00",
         "2026-03-03T00:00:10"))  # fmt: skip
    first = world.service.run("ss-0302.csv", EDGE_REPORT.encode(), "softswiss", world.auditing)
    world.service.run("ss-0303.csv", NEXT_REPORT.encode(), "softswiss", world.auditing)
    (edge,) = world.service.breaks(run_id=first.run.id)
    assert edge.status is BreakStatus.OPEN


def test_a_report_out_of_day_order_is_sorted_through_the_store_with_the_same_result(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    head, a1, a2, a3 = SOFTSWISS.splitlines()
    bad = "a5,bet,op1,p1,g1,XXX,1.00,2026-03-02T10:00:00,"
    next_day = "a7,bet,op1,p3,g7,EUR,1.00,2026-03-03T10:00:00,"
    # A line of the next day (past the hour of slack) before lines of the day before.
    unsorted = "\n".join([head, a1, bad, next_day, a2, a3, bad.replace("a5", "a6")]) + "\n"
    in_order = "\n".join([head, a1, bad, a2, a3, bad.replace("a5", "a6"), next_day]) + "\n"
    stored: list[int] = []
    add_lines = world.service.store.add_lines

    def spy(run_id: int, lines: Any) -> None:
        stored.append(len(lines))
        add_lines(run_id, lines)

    monkeypatch.setattr(world.service.store, "add_lines", spy)
    first = world.service.run("sorted.csv", in_order.encode(), "softswiss", world.auditing)
    assert stored == []  # matched as read: nothing stored
    second = world.service.run("unsorted.csv", unsorted.encode(), "softswiss", world.auditing)
    assert sum(stored) == 4  # sorted through the store
    assert second.run.json_sha256 == first.run.json_sha256
    assert second.run.csv_sha256 == first.run.csv_sha256
    assert (second.run.lines, second.run.refused) == (4, 2)
    assert second.refused_lines == (
        "unsorted.csv line 3: currency 'XXX' is unknown",
        "unsorted.csv line 7: currency 'XXX' is unknown",
    )
    # Each refused line is kept once, though the file was read twice.
    kept = world.quarantine.entries(source="reconciliation").items
    assert sorted(e.refused.detail for e in kept if "unsorted" in e.refused.detail) == list(
        second.refused_lines
    )
