"""Rules (b) and (c) on the embedded stores, all in one SQLite file: an FX rounding break
within tolerance is adjusted by a ledger transfer in the same transaction as its
resolution and audit record (and reversed the same way when reopened); a line missing in
Tally is re-driven into the event log with its provenance, once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tally.adapters.sqlite.backoffice import SqliteBackofficeStore
from tally.adapters.sqlite.events import SqliteEventLog
from tally.adapters.sqlite.ledger import SqliteLedgerStore
from tally.adapters.sqlite.quarantine import SqliteInputQuarantine
from tally.adapters.sqlite.reconciliation import SqliteReconciliationStore
from tally.audit.chain import AuditEntry, AuditRecord, Sealer
from tally.audit.service import Auditing
from tally.ingest.lines import ReportFormat, to_event
from tally.kernel.clock import FixedClock
from tally.ledger.service import LedgerService
from tally.reconciliation.model import BreakKind, BreakStatus, MatchRules, Transition
from tally.reconciliation.service import ReconciliationService
from tally.reconciliation.tally_side import LogTallySide
from tests.support.alerts import RecordingAlertSink

T = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)
REPORT = (
    "action_id,action,casino_id,user_id,game_id,currency,amount,created_at,original_action_id\n"
    "a1,bet,op1,p1,g1,EUR,10.00,2026-03-02T10:00:00,\n"
    "a2,win,op1,p1,g1,EUR,4.01,2026-03-02T10:00:01,\n"
    "a3,bet,op1,p2,g2,EUR,5.00,2026-03-02T11:00:00,\n"
)
RULES = MatchRules("softswiss", version=2, time_tolerance_s=60, fx_rounding=2)
CLEARING = "provider:softswiss:recon_clearing:EUR"
ROUNDING = "platform:fx_rounding:EUR"


class FailingTrail:
    """The audit trail, failing to append one action (an audit store that went away)."""

    def __init__(self, trail: SqliteBackofficeStore, action: str) -> None:
        self.trail, self.action = trail, action

    def append_in(self, tx: Any, entry: AuditEntry) -> AuditRecord:
        if entry.action == self.action:
            raise RuntimeError("audit store down")
        return self.trail.append_in(tx, entry)


@dataclass
class World:
    service: ReconciliationService
    ledger: LedgerService
    log: SqliteEventLog
    audit: SqliteBackofficeStore
    auditing: Auditing

    def actions(self, break_id: int) -> list[tuple[str, str]]:
        return [
            (r.entry.actor, r.entry.action)
            for r in self.audit.iter_audit()
            if r.entry.target == f"recon_break:{break_id}"
        ]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    path = tmp_path / "tally.sqlite"
    clock = FixedClock(T)
    log = SqliteEventLog(path)
    audit = SqliteBackofficeStore(path, Sealer(b"k" * 32))
    quarantine = SqliteInputQuarantine(path)
    store = SqliteReconciliationStore(path)
    ledger_store = SqliteLedgerStore(path)
    ledger = LedgerService(ledger_store, clock)
    service = ReconciliationService(
        store, LogTallySide(log), quarantine, clock, {"softswiss": RULES}, ledger=ledger, log=log,
        alerts=RecordingAlertSink(),
    )  # fmt: skip
    fmt = ReportFormat("softswiss", UTC, "EUR")
    events: list[Any] = []
    for tx, kind, player, amount, at in (
        ("a1", "bet", "p1", "10.00", "2026-03-02T10:00:00"),
        ("a2", "win", "p1", "4.00", "2026-03-02T10:00:01"),
    ):
        data = {
            "tx_id": tx, "kind": kind, "operator": "op1", "player": player,
            "game_type": "slots", "amount": amount, "occurred_at": at, "round_id": "g1",
        }  # fmt: skip
        events.append(to_event(fmt, data, "", T))
    log.append(events)
    yield World(service, ledger, log, audit, Auditing(audit, "user:ana", "cli"))
    for s in (store, quarantine, audit, log, ledger_store):
        s.close()


def _break(world: World, kind: BreakKind) -> Any:
    (found,) = world.service.breaks(kind=kind)
    return found


def test_an_fx_rounding_break_within_tolerance_is_adjusted_and_resolved_by_the_rule(
    world: World,
) -> None:
    world.service.run("ss-0302.csv", REPORT.encode(), "softswiss", world.auditing)
    fx = _break(world, BreakKind.FX_ROUNDING)
    assert (fx.status, fx.adjustment) == (BreakStatus.RESOLVED, f"recon:fx:{fx.id}")
    assert fx.history[-1].by == "rule:reconciliation.fx_rounding"
    assert f"adjusted by transfer recon:fx:{fx.id}" in fx.history[-1].note
    moved = world.ledger.get_transfer(f"recon:fx:{fx.id}")
    assert moved is not None
    # The report's win is a cent above Tally's: GGR one cent below; clearing gives it back.
    assert (moved.debit_account_id, moved.credit_account_id, moved.amount) == (
        CLEARING,
        ROUNDING,
        1,
    )
    assert moved.code == "recon_fx_rounding" and "FX rounding" in moved.metadata["reason"]
    assert world.actions(fx.id) == [
        ("rule:reconciliation.fx_rounding", "reconciliation.break_adjusted")
    ]
    # The missing line is not the FX rule's to close.
    assert _break(world, BreakKind.MISSING_IN_TALLY).status is BreakStatus.OPEN


def test_reopening_an_adjusted_break_posts_its_reversal_in_the_same_unit_of_work(
    world: World,
) -> None:
    world.service.run("ss-0302.csv", REPORT.encode(), "softswiss", world.auditing)
    fx = _break(world, BreakKind.FX_ROUNDING)
    assert world.service.reopen(fx.id, "the provider re-issued its report", world.auditing) is (
        Transition.OK
    )
    again = world.service.get(fx.id)
    assert again is not None
    assert (again.status, again.adjustment) == (BreakStatus.OPEN, f"recon:fx:{fx.id}:reversal")
    back = world.ledger.get_transfer(f"recon:fx:{fx.id}:reversal")
    assert back is not None and (back.debit_account_id, back.credit_account_id) == (
        ROUNDING,
        CLEARING,
    )
    balances = world.ledger.balances([CLEARING, ROUNDING])
    assert all(b.net_credit == 0 for b in balances.values())
    assert world.actions(fx.id)[-1] == ("user:ana", "reconciliation.break_reopened")
    # Closed by a person and reopened again: nothing more moves.
    world.service.set_status(fx.id, BreakStatus.RESOLVED, "checked by hand", world.auditing)
    assert world.service.reopen(fx.id, "once more", world.auditing) is Transition.OK
    page = world.ledger.account_transfers(CLEARING)
    assert [t.id for t in page.items] == [f"recon:fx:{fx.id}", f"recon:fx:{fx.id}:reversal"]


def test_a_failing_audit_append_leaves_neither_the_adjustment_nor_the_resolution(
    world: World,
) -> None:
    failing = Auditing(FailingTrail(world.audit, "reconciliation.break_adjusted"), "user:ana")
    with pytest.raises(RuntimeError, match="audit store down"):
        world.service.run("ss-0302.csv", REPORT.encode(), "softswiss", failing)
    fx = _break(world, BreakKind.FX_ROUNDING)
    assert (fx.status, fx.adjustment, fx.history) == (BreakStatus.OPEN, "", ())
    assert world.ledger.get_transfer(f"recon:fx:{fx.id}") is None
    assert world.ledger.account(CLEARING) is None and world.ledger.account(ROUNDING) is None
    assert world.actions(fx.id) == []


def test_a_failing_audit_append_on_reopening_leaves_no_reversal_and_the_break_resolved(
    world: World,
) -> None:
    world.service.run("ss-0302.csv", REPORT.encode(), "softswiss", world.auditing)
    fx = _break(world, BreakKind.FX_ROUNDING)
    failing = Auditing(FailingTrail(world.audit, "reconciliation.break_reopened"), "user:ana")
    with pytest.raises(RuntimeError):
        world.service.reopen(fx.id, "wrong", failing)
    kept = world.service.get(fx.id)
    assert kept is not None and kept.status is BreakStatus.RESOLVED
    assert world.ledger.get_transfer(f"recon:fx:{fx.id}:reversal") is None


def test_a_line_missing_in_tally_is_re_driven_once_with_its_provenance(world: World) -> None:
    world.service.run("ss-0302.csv", REPORT.encode(), "softswiss", world.auditing)
    missing = _break(world, BreakKind.MISSING_IN_TALLY)
    assert missing.brk.line is not None and missing.brk.line.line == 4
    got = world.service.redrive(missing.id, "slots", world.auditing)
    assert (got.verdict, got.key, got.detail) == (Transition.OK, "softswiss:a3:bet", "accepted")
    kept = world.service.get(missing.id)
    assert kept is not None and kept.status is BreakStatus.RESOLVED
    assert kept.history[-1].note == "re-driven as event softswiss:a3:bet from ss-0302.csv:4"
    events = [e for _, e in world.log.read(0, 100) if e.key == "softswiss:a3:bet"]
    assert len(events) == 1 and events[0].amount == 500
    assert json.loads(events[0].raw)["redriven_from"]["report"] == "ss-0302.csv"
    assert world.actions(missing.id) == [("user:ana", "reconciliation.break_redriven")]
    # Closed now; reopened and re-driven again, the log appends nothing twice.
    assert world.service.redrive(missing.id, "slots", world.auditing).verdict is (Transition.CLOSED)
    world.service.reopen(missing.id, "check again", world.auditing)
    again = world.service.redrive(missing.id, "slots", world.auditing)
    assert (again.verdict, again.detail) == (Transition.OK, "duplicate")
    assert len([e for _, e in world.log.read(0, 100) if e.key == "softswiss:a3:bet"]) == 1


def test_only_a_single_missing_line_can_be_re_driven(world: World) -> None:
    world.service.run("ss-0302.csv", REPORT.encode(), "softswiss", world.auditing)
    fx = _break(world, BreakKind.FX_ROUNDING)
    refused = world.service.redrive(fx.id, "slots", world.auditing)
    assert refused.verdict is Transition.CLOSED
    assert world.service.redrive(999, "slots", world.auditing).verdict is Transition.NOT_FOUND
    missing = _break(world, BreakKind.MISSING_IN_TALLY)
    no_game = world.service.redrive(missing.id, " ", world.auditing)
    assert no_game.verdict is Transition.NOT_ALLOWED and "game type" in no_game.detail
