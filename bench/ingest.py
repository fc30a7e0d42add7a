"""The import benchmark: a provider's batch report into the event log, lines per second.

A report of N lines (CSV, the provider's zone, decimal amounts) is generated from a
seeded world and imported into a fresh embedded store; the naive baseline imports a
sample one line per log transaction.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.common import peak_rss_mb
from tally.ingest.files import ImportLimits
from tally.ingest.lines import ReportFormat
from tally.kernel.clock import SystemClock
from tally.kernel.money import format_amount
from tally.simulation.activity import generate
from tally.simulation.world import build_world

TARGET_EVENTS_PER_S = 30_000
START = datetime(2026, 3, 2, tzinfo=UTC)
ZONE = "Europe/Malta"
COLUMNS = "tx_id,kind,round_id,operator,player,game,game_type,amount,currency,occurred_at,ref"


def report(lines: int, seed: int = 1) -> bytes:
    """A CSV report with ``lines`` lines (rollbacks name their bet by its id)."""
    world = build_world(seed, START, players=2_000)
    zone = ZoneInfo(ZONE)
    out = [COLUMNS]
    per_minute = max(1.0, lines / (24 * 60) / 1.6)
    for p in generate(world, minutes=10 * 24 * 60, rounds_per_minute=per_minute):
        local = p.occurred_at.astimezone(zone).replace(tzinfo=None)
        amount = format_amount(p.amount, p.currency)
        out.append(
            f"{p.tx_id},{p.kind},{p.round_id},{p.operator},{p.player},{p.game},"
            f"{p.game_type},{amount},{p.currency},{local.isoformat()},{p.ref}"
        )
        if len(out) > lines:
            break
    return ("\n".join(out) + "\n").encode()


def run(lines: int, batch_lines: int, progress: Callable[[int], None]) -> dict[str, Any]:
    from tally.adapters.memory.quarantine import MemoryInputQuarantine
    from tally.adapters.sqlite.events import SqliteEventLog
    from tally.adapters.sqlite.quarantine import SqliteImportProgress
    from tally.ingest.files import FileImporter

    data = report(lines)
    with tempfile.TemporaryDirectory(prefix="tally-bench-import-") as tmp:
        path = Path(tmp) / "bench.sqlite"
        log = SqliteEventLog(path)
        done = SqliteImportProgress(path)
        importer = FileImporter(
            log, MemoryInputQuarantine(), done, SystemClock(), ImportLimits(batch_lines)
        )
        started = time.perf_counter()
        result = importer.run("bench.csv", data, ReportFormat("acme", ZoneInfo(ZONE)), progress)
        elapsed = time.perf_counter() - started
        logged = log.head()
        log.close()
        done.close()
    counts = result.counts.as_dict()
    return {
        "lines": counts["lines"],
        "counts": counts,
        "seconds": elapsed,
        "events_per_s": counts["lines"] / elapsed,
        "events_logged": logged,
        "peak_rss_mb": peak_rss_mb(),
    }
