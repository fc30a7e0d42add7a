"""Retention of the embedded store (ADR 0023): closed periods older than the horizon go
to per-period archives, and leave the live file only after their archive verifies."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tally.adapters.archive_dir import ArchiveDirReading, ArchiveDirShelf
from tally.adapters.sqlite.connection import connect, immediate
from tally.adapters.sqlite.ledger import migrate
from tally.adapters.sqlite.lifecycle import (
    SqlitePartitionSource,
    SqliteRestoreTarget,
    SqliteRetention,
    ledger_problems,
)
from tally.events.model import EventKind
from tally.kernel.alerts import AlertSignal
from tally.kernel.clock import FixedClock
from tally.lifecycle.service import ALERT_ARCHIVE_FAILED, ArchiveService, RetentionService
from tally.security.signing import Signer, new_private_key_pem
from tally.wallet.model import CallKind, WalletCall, WalletOp
from tests.support.providers import gateway_world

JAN = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
MAR = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
JUNE = datetime(2026, 6, 1, tzinfo=UTC)


@dataclass
class Alerts:
    raised: list[AlertSignal] = field(default_factory=list)
    cleared: list[tuple[str, str]] = field(default_factory=list)

    def signal(self, alert: AlertSignal) -> None:
        self.raised.append(alert)

    def clear(self, kind: str, key: str, at: datetime) -> None:
        self.cleared.append((kind, key))


def _calls(clock: FixedClock, w: object, prefix: str, n: int) -> None:
    for i in range(n):
        ops = (
            WalletOp(EventKind.BET, f"{prefix}{i}-b", 10 + i),
            WalletOp(EventKind.WIN, f"{prefix}{i}-w", 5),
        )
        answer = w.wallet.handle(  # type: ignore[attr-defined]
            "acme", WalletCall(CallKind.TRANSACT, f"p{i % 3}", "EUR", ops=ops), "{}"
        )
        assert answer.error is None


def _balances(path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT d.id, b.debits_posted, b.credits_posted FROM account_definitions d"
            " JOIN account_balances b ON b.num = d.num ORDER BY d.id"
        ).fetchall()
    finally:
        conn.close()


def _count(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def live(tmp_path: Path) -> Path:
    clock = FixedClock(JAN)
    with gateway_world(tmp_path, clock, {}, {"acme": "softswiss"}) as w:
        for p in ("p0", "p1", "p2"):
            w.open_player(p, "EUR", 100_000)
        _calls(clock, w, "jan", 12)
        clock.set(MAR)
        _calls(clock, w, "mar", 5)
    return tmp_path / "tally.sqlite"


def _service(live: Path, root: Path, alerts: Alerts) -> tuple[RetentionService, ArchiveService]:
    signer = Signer(new_private_key_pem())
    clock = FixedClock(JUNE)
    archives = ArchiveService(signer.sign, signer.public_pem(), clock)
    service = RetentionService(
        archives,
        SqlitePartitionSource(live),
        SqliteRetention(live),
        ArchiveDirShelf(root),
        alerts,
        clock,
    )
    return service, archives


def test_old_periods_are_archived_verified_then_dropped_and_the_ledger_still_adds_up(
    tmp_path: Path, live: Path
) -> None:
    before = _balances(live)
    transfers, events = _count(live, "transfers"), _count(live, "event_log")
    alerts = Alerts()
    service, archives = _service(live, tmp_path / "archives", alerts)
    done = {r.partition: r for r in service.run(timedelta(days=90))}
    # January ends before March 3rd (June 1st less 90 days); March does not.
    assert set(done) == {"transfers/2026-01", "event_log/2026-01"}
    # 3 deposits + 12 bets + 12 wins in January.
    assert (done["transfers/2026-01"].outcome, done["transfers/2026-01"].rows) == ("dropped", 27)
    # Settlement has consumed nothing: the events stay, with the reason.
    assert done["event_log/2026-01"].outcome == "kept"
    assert "settlement has not consumed" in done["event_log/2026-01"].detail
    assert _count(live, "transfers") == transfers - 27
    assert _count(live, "event_log") == events
    # Balances untouched, and still what the transfers left plus the carried totals make.
    assert _balances(live) == before
    assert ledger_problems(live) == []
    shelf = tmp_path / "archives" / "transfers" / "2026-01"
    check = archives.verify(ArchiveDirReading(shelf))
    assert check.ok and check.found is not None and check.found.rows == 27
    target = SqliteRestoreTarget(tmp_path / "jan.sqlite")
    try:
        assert archives.restore(ArchiveDirReading(shelf), target).ok
    finally:
        target.close()
    assert alerts.raised == []

    # Once settlement has consumed the log, January's events go too (and only them).
    conn = connect(live)
    try:
        migrate(conn, "settlement")
        with immediate(conn):
            conn.execute("INSERT INTO settlement_positions VALUES ('settlement', ?)", (events,))
    finally:
        conn.close()
    again = {r.partition: r for r in service.run(timedelta(days=90))}
    assert again["event_log/2026-01"].outcome == "dropped"
    assert again["event_log/2026-01"].rows == 24
    assert _count(live, "event_log") == events - 24
    # A second run finds nothing left to move.
    assert service.run(timedelta(days=90)) == []


def test_a_period_whose_archive_does_not_verify_stays_live_and_is_alerted(
    tmp_path: Path, live: Path
) -> None:
    alerts = Alerts()
    root = tmp_path / "archives"
    service, _ = _service(live, root, alerts)
    transfers = _count(live, "transfers")
    # An archive already at the shelf's place, but not a good one.
    bad = root / "transfers" / "2026-01"
    bad.mkdir(parents=True)
    (bad / "manifest.json").write_text("{}")
    done = {r.partition: r for r in service.run(timedelta(days=90))}
    assert done["transfers/2026-01"].outcome == "failed"
    assert _count(live, "transfers") == transfers
    assert [a.kind for a in alerts.raised] == [ALERT_ARCHIVE_FAILED]
    assert alerts.raised[0].key == "transfers/2026-01"


def test_a_period_with_pending_transfers_is_kept(tmp_path: Path, live: Path) -> None:
    conn = connect(live)
    try:
        with immediate(conn):
            conn.execute(
                "UPDATE transfers SET kind = 'pending', status = 'pending' WHERE seq = "
                "(SELECT MIN(seq) FROM transfers)"
            )
    finally:
        conn.close()
    service, _ = _service(live, tmp_path / "archives", Alerts())
    done = {r.partition: r for r in service.run(timedelta(days=90))}
    assert done["transfers/2026-01"].outcome == "kept"
    assert "1 transfers of transfers/2026-01 are still pending" in done["transfers/2026-01"].detail


def test_the_event_log_stays_append_only_outside_retention(live: Path) -> None:
    SqliteRetention(live)  # its migration replaced the delete trigger
    conn = connect(live)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"), immediate(conn):
            conn.execute("DELETE FROM event_log WHERE position = 1")
    finally:
        conn.close()
