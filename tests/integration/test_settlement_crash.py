"""kill -9 the settlement worker at random moments while it replays the event log.

The interrupted database must end with byte-identical statements, the same ledger
balances and its position at the head of the log, compared with an uninterrupted run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from tally.adapters.memory.backoffice import scratch_auditing
from tally.adapters.sqlite.events import SqliteEventLog
from tally.adapters.sqlite.ledger import SqliteLedgerStore
from tally.adapters.sqlite.settlement import SqliteConfigDocuments, SqliteSettlementStore
from tally.events.ports import Appended
from tally.kernel.clock import FixedClock
from tally.settlement.config import SettlementConfig
from tally.settlement.service import NoEvents, SettlementLimits, SettlementWorker
from tally.settlement.source import LogSource
from tally.simulation.activity import generate
from tally.simulation.direct import to_events
from tally.simulation.faults import Faults, deliver
from tally.simulation.run import install_world
from tally.simulation.world import build_world

START = datetime(2026, 3, 31, tzinfo=UTC)
CLOSE_AT = datetime(2026, 4, 2, tzinfo=UTC)
EVENTS = int(os.environ.get("TALLY_CRASH_EVENTS", "200000"))
KILLS = int(os.environ.get("TALLY_CRASH_KILLS", "20"))
# Well inside a kill's slice (below), so each life commits some batches and dies in one.
# Both runs use it: batch bounds decide how accruals split into postings, so the fee
# accounts' gross debits and credits (compared below, beside their net) depend on it.
BATCH = 2_000


def _prepare(path: Path, seed: int) -> tuple[int, list[tuple[str, str]]]:
    """A database with the world's configuration and its events in the log."""
    world = build_world(seed, START, players=1_000)
    minutes = 30 * 60
    rate = EVENTS / (minutes * 1.45)  # ~1.45 events per round
    events = to_events(generate(world, minutes=minutes, rounds_per_minute=rate), START)
    on_time, _ = deliver(
        events,
        Faults(duplicate=0.02, reorder_window=10, rollback_first=0.5),
        random.Random(seed),
        ref_of=lambda e: e.ref,
        key_of=lambda e: e.key,
    )
    ledger = SqliteLedgerStore(path)
    docs = SqliteConfigDocuments(path)
    install_world(world, SettlementConfig(docs), START, scratch_auditing("system:test"))
    log = SqliteEventLog(path)
    accepted = 0
    for i in range(0, len(on_time), 20_000):
        results = log.append(on_time[i : i + 20_000])
        accepted += sum(1 for r in results if r.outcome is Appended.ACCEPTED)
    log.close()
    docs.close()
    ledger.close()
    pairs = [(c.contract_id, o.id) for c in world.contracts for o in world.operators]
    return accepted, pairs


def _settle_and_close(path: Path, pairs: list[tuple[str, str]], *, drain: bool) -> dict[str, bytes]:
    ledger = SqliteLedgerStore(path)
    docs = SqliteConfigDocuments(path)
    store = SqliteSettlementStore(ledger)
    log = SqliteEventLog(path)
    config = SettlementConfig(docs)
    clock = FixedClock(CLOSE_AT)
    worker = SettlementWorker(
        LogSource(log) if drain else NoEvents(),
        store,
        config,
        clock,
        SettlementLimits(batch_max_events=BATCH),
        by=scratch_auditing("system:test"),
    )
    if drain:
        worker.drain()
    assert worker.position == log.head()
    statements = {}
    for contract_id, operator in pairs:
        s = worker.close_period(contract_id, operator, "2026-03")
        statements[f"{contract_id}/{operator}"] = s.to_json()
    fees = {
        f"{c}/{o}": ledger.balance(f"provider:{c.removesuffix('-std')}:fee_payable:{o}:EUR")
        for c, o in pairs
    }
    assert store.problems() == []
    totals = ledger.totals_by_currency()
    assert all(t.debits_posted == t.credits_posted for t in totals.values())
    for name in sorted(fees):
        statements[f"balance {name}"] = repr(fees[name]).encode()
    log.close()
    store.close()
    docs.close()
    ledger.close()
    return statements


def test_kill_minus_9_at_random_moments_changes_nothing_in_the_end(tmp_path: Path) -> None:
    seed = 5
    straight, crashed = tmp_path / "straight.sqlite", tmp_path / "crashed.sqlite"
    accepted, pairs = _prepare(straight, seed)
    assert _prepare(crashed, seed)[0] == accepted >= EVENTS * 0.8
    expected = _settle_and_close(straight, pairs, drain=True)

    env = {
        **os.environ,
        "TALLY_SQLITE_PATH": str(crashed),
        "TALLY_DATA_DIR": str(tmp_path),
        "TALLY_LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable,
        "-m",
        "tally.entrypoints.cli",
        "settlement",
        "run",
        "--until-drained",
        "--batch-max-events",
        str(BATCH),
    ]
    rng = random.Random(seed)
    kills = 0
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        before = _position(crashed)
        # Kill after a random 1.5-4.5% of the log has been settled (on any machine speed),
        # wherever in a batch, a commit or a checkpoint the worker happens to be.
        slice_ = max(1, int(accepted * rng.uniform(0.015, 0.045)))
        # As a context manager the process's stderr pipe is closed after each life, killed or not.
        with subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        ) as process:
            while process.poll() is None and _position(crashed) < before + slice_:
                time.sleep(rng.uniform(0.001, 0.02))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                continue
            stderr = process.stderr.read().decode() if process.stderr else ""
        assert process.returncode == 0, stderr
        break
    assert kills >= KILLS, f"only {kills} kills before the log drained"
    assert _position(crashed) == accepted
    assert _settle_and_close(crashed, pairs, drain=False) == expected


def _position(path: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        row = conn.execute(
            "SELECT position FROM settlement_positions WHERE consumer = 'settlement'"
        ).fetchone()
    except sqlite3.OperationalError:
        return 0  # the worker has not created its tables yet
    finally:
        conn.close()
    return int(row[0]) if row else 0
