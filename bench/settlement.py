"""The settlement benchmark: replay from the event log to statements, and live latency.

Each run is a child process on a fresh store:
- replay: N canonical events of a seeded world are appended to the event log (timed on
  its own), then the settlement worker replays the whole log and closes the periods that
  ended; events/s, resident memory through the replay (sampled), the statements' hashes.
  Embedded: SQLite log and store. Scaled: a JetStream log and PostgreSQL.
- naive: the same replay of a sample with one event per transaction; its statements must
  hash the same as the fast replay of the same sample, or the run is refused.
- latency: a producer appends at a steady rate in small batches while the worker settles
  in the background; for each event, from its append being accepted to the commit that
  makes its accruals visible.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import common
from bench.common import percentile, rss_mb
from tally.adapters.memory.backoffice import scratch_auditing
from tally.app.runtime import settle_heap
from tally.events.model import Event
from tally.events.ports import EventLog
from tally.kernel.clock import FixedClock
from tally.settlement.config import SettlementConfig
from tally.settlement.engine import PeriodCloseError
from tally.settlement.ports import SettlementStore
from tally.settlement.service import SettlementLimits, SettlementWorker
from tally.settlement.source import LogSource
from tally.simulation.activity import generate
from tally.simulation.direct import to_events
from tally.simulation.run import install_world
from tally.simulation.world import World, build_world

# Benchmarks set up configuration and close periods nobody audits.
BENCH_AUDITING = scratch_auditing("system:bench", "bench")

if TYPE_CHECKING:
    from tally.adapters.nats.events import StreamNames

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
TARGETS = {"sqlite": 20_000, "postgres": 15_000}  # events/s replayed, on the 2-core machine
TARGET_P99_MS = 100.0
START = datetime(2026, 3, 30, 0, 0, tzinfo=UTC)
APPEND_CHUNK = 5_000
RSS_EVERY = 50_000  # events between memory samples


@dataclass(frozen=True, slots=True)
class Config:
    store: str = "sqlite"
    events: int = 1_000_000
    naive_sample: int = 20_000
    rate: float = 2_000.0  # the latency run's steady events/s
    seconds: float = 30.0
    batch_max_events: int = SettlementLimits().batch_max_events
    seed: int = 1
    pg_dsn: str = DEFAULT_PG_DSN
    nats_url: str = DEFAULT_NATS_URL
    log_address: str = ""  # for the latency run's producer: the log the worker reads


def world_events(config: Config, count: int) -> tuple[World, list[Event]]:
    """``count`` events of a seeded world, over as many simulated days as they need."""
    world = build_world(config.seed, START, players=5_000)
    per_minute = max(1.0, count / (3 * 24 * 60) / 1.6)
    events = to_events(generate(world, minutes=3 * 24 * 60, rounds_per_minute=per_minute), START)
    while len(events) < count:  # a little short: draw more days
        per_minute *= 1.2
        events = to_events(
            generate(world, minutes=3 * 24 * 60, rounds_per_minute=per_minute), START
        )
    return world, events[:count]


@dataclass
class Stores:
    log: EventLog
    store: SettlementStore
    config: SettlementConfig
    clock: FixedClock
    address: str  # how another process opens the same log: a SQLite path or a stream tag


def open_log(config: Config) -> EventLog:
    """The log at ``config.log_address``, opened anew (by the latency run's producer)."""
    if config.store == "sqlite":
        from tally.adapters.sqlite.events import SqliteEventLog

        return SqliteEventLog(config.log_address)
    from tally.adapters.nats.events import JetStreamEventLog

    return JetStreamEventLog(config.nats_url, _stream_names(config.log_address))


def _stream_names(tag: str) -> StreamNames:
    from tally.adapters.nats.events import StreamNames

    return StreamNames(f"BENCH_{tag.upper()}", f"bench{tag}.events", f"BENCH_{tag.upper()}_C")


@contextmanager
def fresh_stores(config: Config) -> Iterator[Stores]:
    clock = FixedClock(START)
    if config.store == "sqlite":
        from tally.adapters.sqlite.events import SqliteEventLog
        from tally.adapters.sqlite.ledger import SqliteLedgerStore
        from tally.adapters.sqlite.settlement import SqliteConfigDocuments, SqliteSettlementStore

        with tempfile.TemporaryDirectory(prefix="tally-bench-settle-") as tmp:
            path = Path(tmp) / "bench.sqlite"
            ledger = SqliteLedgerStore(path)
            log = SqliteEventLog(path)
            sqlite_docs = SqliteConfigDocuments(path)
            sqlite_store = SqliteSettlementStore(ledger)
            try:
                yield Stores(log, sqlite_store, SettlementConfig(sqlite_docs), clock, str(path))
            finally:
                sqlite_store.close()
                sqlite_docs.close()
                log.close()
                ledger.close()
        return
    import psycopg

    from tally.adapters.nats.events import JetStreamEventLog
    from tally.adapters.postgres.ledger import PostgresLedgerStore
    from tally.adapters.postgres.settlement import PostgresConfigDocuments, PostgresSettlementStore

    tag = uuid.uuid4().hex[:10]
    schema = f"bench_{tag}"
    with psycopg.connect(config.pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    jetstream = JetStreamEventLog(config.nats_url, _stream_names(tag))
    pg = PostgresLedgerStore(config.pg_dsn, schema=schema)
    docs = PostgresConfigDocuments(config.pg_dsn, schema=schema)
    store = PostgresSettlementStore(pg, config.pg_dsn, schema=schema)
    try:
        yield Stores(jetstream, store, SettlementConfig(docs), clock, tag)
    finally:
        jetstream.drop()
        jetstream.close()
        store.close()
        docs.close()
        pg.close()
        with psycopg.connect(config.pg_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _append(log: EventLog, events: list[Event]) -> float:
    started = time.perf_counter()
    for start in range(0, len(events), APPEND_CHUNK):
        log.append(events[start : start + APPEND_CHUNK])
    return len(events) / (time.perf_counter() - started)


def _close_all(worker: SettlementWorker, world: World, clock: FixedClock) -> list[str]:
    clock.set(max(clock.now(), START + timedelta(days=40)))
    hashes: list[str] = []
    labels = sorted({b.period for b in worker.book.figures.totals})
    for terms in world.contracts:
        for operator in world.operators:
            for label in labels:
                try:
                    hashes.append(worker.close_period(terms.contract_id, operator.id, label).sha256)
                except PeriodCloseError:
                    break
    return hashes


def _replay(
    config: Config, count: int, batch: int, report: Callable[[int], None]
) -> dict[str, Any]:
    world, events = world_events(config, count)
    with fresh_stores(config) as s:
        install_world(world, s.config, START, BENCH_AUDITING)
        append_rate = _append(s.log, events)
        s.clock.set(max(e.occurred_at for e in events))
        worker = SettlementWorker(
            LogSource(s.log),
            s.store,
            s.config,
            s.clock,
            SettlementLimits(batch_max_events=batch),
            by=BENCH_AUDITING,
        )
        rss: list[tuple[int, float]] = [(0, rss_mb())]
        started = time.perf_counter()
        next_sample = RSS_EVERY
        while worker.step() > 0:
            if worker.position >= next_sample:
                rss.append((worker.position, rss_mb()))
                next_sample += RSS_EVERY
                report(worker.position)
        settled_s = time.perf_counter() - started
        hashes = _close_all(worker, world, s.clock)
        total_s = time.perf_counter() - started
        rss.append((worker.position, rss_mb()))
        report(worker.position)
    half = [mb for at, mb in rss if at >= count // 2]
    return {
        "events": count,
        "append_events_per_s": append_rate,
        "settle_s": settled_s,
        "replay_s": total_s,
        "events_per_s": count / total_s,
        "statements": len(hashes),
        "statement_sha256": hashes,
        "rss_mb_by_progress": rss,
        "rss_start_mb": rss[0][1],
        "rss_peak_mb": max(mb for _, mb in rss),
        "rss_end_mb": rss[-1][1],
        "rss_growth_second_half_mb": (max(half) - min(half)) if half else 0.0,
    }


def run_replay(config: Config, report: Callable[[int], None]) -> dict[str, Any]:
    return _replay(config, config.events, config.batch_max_events, report)


def run_naive(config: Config, report: Callable[[int], None]) -> dict[str, Any]:
    """One event per transaction on a sample, and the fast replay of the same sample."""
    naive = _replay(config, config.naive_sample, 1, report)
    fast = _replay(config, config.naive_sample, config.batch_max_events, lambda _: None)
    if naive["statement_sha256"] != fast["statement_sha256"]:
        raise RuntimeError("naive and batched replays produced different statements")
    naive["same_statements_as_batched"] = True
    return naive


def run_latency(config: Config, report: Callable[[int], None]) -> dict[str, Any]:
    """A producer in a process of its own (as a gateway or an importer is) appends at a
    steady rate while the worker here settles; per event, from its append being accepted
    to the commit that makes its accruals visible (both read ``time.monotonic``, which is
    one clock for every process of the machine)."""
    count = int(config.rate * config.seconds)
    world, events = world_events(config, count)
    latest = max(e.occurred_at for e in events)
    del events  # the producer has its own copy; this process is the worker only
    with fresh_stores(config) as s:
        install_world(world, s.config, START, BENCH_AUDITING)
        s.clock.set(latest)
        worker = SettlementWorker(
            LogSource(s.log),
            s.store,
            s.config,
            s.clock,
            SettlementLimits(batch_max_events=config.batch_max_events, idle_wait_s=0.002),
            by=BENCH_AUDITING,
        )
        settle_heap()  # as `tally settlement run` does once started
        committed: dict[int, float] = {}
        done = threading.Event()
        last = [count]

        def settle() -> None:
            while not (done.is_set() and worker.position >= last[0]):
                before = worker.position
                if worker.step() == 0:
                    time.sleep(worker.limits.idle_wait_s)
                    continue
                now = time.monotonic()
                for position in range(before + 1, worker.position + 1):
                    committed[position] = now

        consumer = threading.Thread(target=settle, daemon=True)
        consumer.start()
        produced: dict[str, Any] = {"accepted": [], "achieved_rate": 0.0}
        try:
            produced = common.run_child(
                "bench.settlement",
                "produce",
                replace(config, log_address=s.address),
                report,
            )
        finally:
            accepted = {int(p): t for p, t in produced["accepted"]}
            last[0] = max(accepted, default=0)
            done.set()
            consumer.join()
    ms = sorted((committed[p] - t) * 1000 for p, t in accepted.items())
    return {
        "events": len(accepted),
        "rate": config.rate,
        "achieved_rate": produced["achieved_rate"],
        "producer": "its own process",
        "latency_ms": {
            "p50": percentile(ms, 0.5),
            "p95": percentile(ms, 0.95),
            "p99": percentile(ms, 0.99),
            "max": ms[-1] if ms else 0.0,
        },
    }


def run_produce(config: Config, report: Callable[[int], None]) -> dict[str, Any]:
    """The latency run's producer: the same events, appended in chunks every 10 ms."""
    count = int(config.rate * config.seconds)
    _, events = world_events(config, count)
    log = open_log(config)
    accepted: list[tuple[int, float]] = []
    chunk = max(1, int(config.rate / 100))
    started = time.monotonic()
    try:
        for i in range(0, len(events), chunk):
            due = started + i / config.rate
            if (delay := due - time.monotonic()) > 0:
                time.sleep(delay)
            results = log.append([replace(e) for e in events[i : i + chunk]])
            now = time.monotonic()
            accepted.extend((r.position, now) for r in results)
            if i % (chunk * 100) == 0:
                report(i)
        elapsed = time.monotonic() - started
    finally:
        close = getattr(log, "close", None)
        if close is not None:
            close()
    return {"accepted": accepted, "achieved_rate": len(events) / elapsed}


RUNS: dict[str, Callable[[Config, Callable[[int], None]], dict[str, Any]]] = {
    "replay": run_replay,
    "naive": run_naive,
    "latency": run_latency,
    "produce": run_produce,
}


def run_child(run: str, config: Config, on_progress: Callable[[int], None]) -> dict[str, Any]:
    return common.run_child("bench.settlement", run, config, on_progress)


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stores = results["stores"]
    fig, (bars, memory, lat) = plt.subplots(1, 3, figsize=(15, 4.5))
    for i, s in enumerate(stores):
        values = [s["naive"]["events_per_s"], s["replay"]["events_per_s"]]
        for j, v in enumerate(values):
            bars.bar(i + (j - 0.5) * 0.35, v, 0.35, color=("#bbb", "#2a7")[j])
            bars.text(i + (j - 0.5) * 0.35, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
        bars.hlines(TARGETS[s["store"]], i - 0.4, i + 0.4, colors="red", linestyles="dashed")
        points = s["replay"]["rss_mb_by_progress"]
        memory.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=s["store"])
        lat.bar(
            [f"{s['store']} {q}" for q in ("p50", "p95", "p99")],
            [s["latency"]["latency_ms"][q] for q in ("p50", "p95", "p99")],
        )
    bars.set_xticks(range(len(stores)), [s["store"] for s in stores])
    bars.set_ylabel("events per second")
    bars.set_title("Replay to statements: naive (grey) vs batched; red: target")
    memory.set_xlabel("events settled")
    memory.set_ylabel("resident memory (MB)")
    memory.set_title("Memory through the replay")
    memory.legend()
    lat.axhline(TARGET_P99_MS, color="red", linestyle="dashed")
    lat.set_ylabel("ms from append to accruals visible")
    lat.set_title("Latency at a steady rate")
    lat.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    common.child_main(sys.argv[1:], RUNS, Config)
