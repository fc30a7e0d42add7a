"""Reconciliation's alerts: a balance difference no break explains, a break open past its
age (cleared when it is closed), a report file refused whole; the logging stand-in sink."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
from tally.kernel.alerts import AlertSignal, Severity
from tally.kernel.clock import FixedClock
from tally.kernel.limits import ReconciliationLimits
from tally.reconciliation.alerts import BALANCE_UNEXPLAINED, BREAK_AGED, REPORT_REFUSED
from tally.reconciliation.model import BreakStatus, MatchRules, Transition
from tally.reconciliation.service import ReconciliationService, ReportRefused
from tally.reconciliation.tally_side import LogTallySide
from tests.support.alerts import RecordingAlertSink

T = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)
AGE = timedelta(days=2)
HEADER = (
    "action_id,action,casino_id,user_id,game_id,currency,amount,created_at,original_action_id\n"
)
# Against Tally's a1 bet 10.00 and a2 win 4.00 (and a4 bet 2.00, which the report lacks):
# a2 one cent more, a3 not in Tally.
REPORT = HEADER + (
    "a1,bet,op1,p1,g1,EUR,10.00,2026-03-02T10:00:00,\n"
    "a2,win,op1,p1,g1,EUR,4.01,2026-03-02T10:00:01,\n"
    "a3,bet,op1,p2,g2,EUR,5.00,2026-03-02T11:00:00,\n"
)
ROW = "softswiss:op1:EUR:2026-03-02"


@dataclass
class World:
    service: ReconciliationService
    sink: RecordingAlertSink
    clock: FixedClock
    auditing: Auditing


def _world(tmp_path: Path, amount_tolerance: int) -> Iterator[World]:
    path = tmp_path / "tally.sqlite"
    log = SqliteEventLog(path)
    audit = SqliteBackofficeStore(path, Sealer(b"k" * 32))
    quarantine = SqliteInputQuarantine(path)
    store = SqliteReconciliationStore(path)
    clock = FixedClock(T)
    sink = RecordingAlertSink()
    rules = {"softswiss": MatchRules("softswiss", 1, amount_tolerance, 60)}
    limits = ReconciliationLimits(break_alert_age_s=int(AGE.total_seconds()))
    service = ReconciliationService(
        store, LogTallySide(log), quarantine, clock, rules, limits=limits, alerts=sink
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
    yield World(service, sink, clock, Auditing(audit, "user:ana", "cli"))
    for s in (store, quarantine, audit, log):
        s.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from _world(tmp_path, amount_tolerance=0)


@pytest.fixture
def tolerant(tmp_path: Path) -> Iterator[World]:
    """A cent of difference is accepted line by line: no break names it."""
    yield from _world(tmp_path, amount_tolerance=1)


def test_a_balance_that_every_break_explains_raises_nothing_and_clears_its_row(
    world: World,
) -> None:
    world.service.run("a.csv", REPORT.encode(), "softswiss", world.auditing)
    assert [s for s in world.sink.signals if s.kind == BALANCE_UNEXPLAINED] == []
    assert (BALANCE_UNEXPLAINED, ROW, T) in world.sink.clears


def test_a_balance_difference_no_break_explains_is_signalled_and_a_corrected_run_clears_it(
    tolerant: World,
) -> None:
    out = tolerant.service.run("a.csv", REPORT.encode(), "softswiss", tolerant.auditing)
    # Report net 1000 - 401 + 500 = 1099; Tally's 1000 - 400 + 200 = 800. Breaks explain
    # a3 (+500) and a4 (-200): 300 of the 299; the cent a2 was let through is not.
    alert = tolerant.sink.open[(BALANCE_UNEXPLAINED, ROW)]
    assert alert.severity is Severity.CRITICAL
    assert (alert.money_at_risk, alert.currency, alert.operator) == (1, "EUR", "op1")
    assert alert.evidence["difference"] == "299" and alert.evidence["explained"] == "300"
    assert alert.evidence["unexplained"] == "-1"
    assert alert.refs == (f"recon_run:{out.run.id}",)
    # The provider sends the report again with the win corrected: the row adds up.
    fixed = REPORT.replace("4.01", "4.00")
    tolerant.service.run("b.csv", fixed.encode(), "softswiss", tolerant.auditing)
    assert (BALANCE_UNEXPLAINED, ROW) not in tolerant.sink.open
    assert tolerant.sink.clears[-1][:2] == (BALANCE_UNEXPLAINED, ROW)


def _aged(world: World) -> dict[str, AlertSignal]:
    return {key: s for (kind, key), s in world.sink.open.items() if kind == BREAK_AGED}


def test_a_break_open_past_its_age_is_signalled_and_cleared_when_it_is_closed(
    world: World,
) -> None:
    out = world.service.run("a.csv", REPORT.encode(), "softswiss", world.auditing)
    ids = sorted(k.id for k in world.service.breaks(run_id=out.run.id))
    assert len(ids) == 3 and _aged(world) == {}
    world.clock.advance(AGE - timedelta(seconds=1))
    assert world.service.signal_aged() == 0  # younger than the age: nothing
    world.clock.advance(timedelta(seconds=1))
    assert world.service.signal_aged("softswiss") == 3
    assert world.service.signal_aged("pragmatic") == 0  # another provider's: none
    assert sorted(_aged(world)) == [f"break:{i}" for i in ids]
    first = _aged(world)[f"break:{ids[0]}"]
    assert first.severity is Severity.WARNING and first.provider == "softswiss"
    assert first.evidence["age_hours"] == "48" and first.refs[0] == f"break:{ids[0]}"
    # Being investigated is still open: the alert stays; resolved and written off clear.
    assert world.service.assign(ids[0], "ana", world.auditing) is Transition.OK
    assert world.service.set_status(ids[1], BreakStatus.RESOLVED, "fixed", world.auditing) is (
        Transition.OK
    )
    assert world.service.set_status(
        ids[2], BreakStatus.WRITTEN_OFF, "too small", world.auditing
    ) is Transition.OK  # fmt: skip
    assert sorted(_aged(world)) == [f"break:{ids[0]}"]
    # A refused change clears nothing.
    assert world.service.set_status(ids[0], BreakStatus.RESOLVED, "", world.auditing) is (
        Transition.NOTE_REQUIRED
    )
    assert sorted(_aged(world)) == [f"break:{ids[0]}"]
    # The next check signals the one still investigated, with its owner.
    world.clock.advance(timedelta(hours=1))
    assert world.service.signal_aged() == 1
    assert "owner ana" in _aged(world)[f"break:{ids[0]}"].cause


def test_each_run_ends_by_signalling_its_providers_aged_breaks(world: World) -> None:
    world.service.run("a.csv", REPORT.encode(), "softswiss", world.auditing)
    world.clock.advance(AGE)
    other = HEADER + "a9,bet,op1,p1,g9,EUR,1.00,2026-03-04T10:00:00,\n"
    out = world.service.run("b.csv", other.encode(), "softswiss", world.auditing)
    older = {f"break:{k.id}" for k in world.service.breaks() if k.run_id != out.run.id}
    # The first run's three breaks are two days old; the new run's are not.
    assert set(_aged(world)) == older and len(older) == 3


@pytest.mark.parametrize(
    ("provider", "reason", "detail"),
    [
        ("nobody", "unknown_provider", "x.csv: provider 'nobody' is unknown"),
        ("softswiss", "malformed", "x.csv line 1: unknown column casino"),
    ],
)
def test_a_report_refused_whole_is_signalled(
    world: World, provider: str, reason: str, detail: str
) -> None:
    body = REPORT.replace("casino_id", "casino") if reason == "malformed" else REPORT
    with pytest.raises(ReportRefused):
        world.service.run("x.csv", body.encode(), provider, world.auditing)
    sha = hashlib.sha256(body.encode()).hexdigest()
    (alert,) = world.sink.signals
    assert (alert.kind, alert.key, alert.provider) == (
        REPORT_REFUSED,
        f"{provider}:{sha}",
        provider,
    )
    assert alert.evidence["reason"] == reason and alert.evidence["detail"].startswith(detail)
    assert alert.evidence["file"] == "x.csv"


def test_a_file_sent_twice_is_signalled_as_refused(world: World) -> None:
    world.service.run("a.csv", REPORT.encode(), "softswiss", world.auditing)
    assert [s for s in world.sink.signals if s.kind == REPORT_REFUSED] == []
    with pytest.raises(ReportRefused):
        world.service.run("again.csv", REPORT.encode(), "softswiss", world.auditing)
    (alert,) = [s for s in world.sink.signals if s.kind == REPORT_REFUSED]
    assert alert.evidence["reason"] == "conflict" and "reconciled before" in alert.cause
