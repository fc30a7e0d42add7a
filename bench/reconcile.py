"""The reconciliation benchmark: a provider's report matched against the event log.

A seeded world of two providers plays for as many days as the report needs (about
DAY_LINES lines of the reconciled provider a day); every play goes to the event log (the
other provider's too: Tally's side skips them), and the reconciled provider's plays are
written as its report (CSV, Tally's column names, local times in its zone), a few lines
dropped and a few amounts changed so the run has breaks to keep. Each size is measured
in child processes of its own:

- build: the log and the report file (not timed);
- run: the real ``ReconciliationService.run`` as the product wires it: embedded, the
  SQLite event log and reconciliation store in one file; scaled, the JetStream event log
  (Tally's side is read from it, ADR 0019) and the PostgreSQL reconciliation store.
  Lines per second and resident memory sampled through the run;
- naive: for a sample of the report's lines, one query of Tally's side per line (the
  transaction by its key: SQLite by its unique index, JetStream by its subject) and a
  comparison of the facts; its lines/s are extrapolated to the whole report.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import orjson

from bench import common
from bench.common import rss_mb
from tally.events.ports import EventLog
from tally.kernel.alerts import AlertSignal
from tally.kernel.clock import FixedClock
from tally.kernel.money import format_amount, parse_amount
from tally.reconciliation.model import Break, MatchRules
from tally.simulation.activity import Play, generate
from tally.simulation.direct import event_key, to_events
from tally.simulation.world import build_world

if TYPE_CHECKING:
    from tally.adapters.nats.events import StreamNames
    from tally.audit.service import Auditing
    from tally.reconciliation.ports import ReconciliationStore

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
TARGETS = {"sqlite": 50_000, "postgres": 30_000}  # report lines/s, on the 2-core machine
SCORE_TARGET = 0.99  # precision and recall on the injected breaks
START = datetime(2026, 3, 2, tzinfo=UTC)
ZONE = "Europe/Malta"
PROVIDER = "prov1"  # the reconciled provider; "prov2"'s events are in the log too
DAY_LINES = 100_000  # the reconciled provider's lines a simulated day, at every size
DROP_EVERY = 1_000  # every Nth play is left out of the report (missing in the report)
CHANGE_EVERY = 1_009  # every Nth play's amount is one minor unit more in the report
APPEND_CHUNK = 5_000
RSS_EVERY_S = 0.05
COLUMNS = "tx_id,kind,round_id,operator,player,game,game_type,amount,currency,occurred_at,ref"
RULES = MatchRules(PROVIDER, version=1, amount_tolerance=0, time_tolerance_s=60, zone=ZONE)


@dataclass(frozen=True, slots=True)
class Config:
    store: str = "sqlite"
    lines: int = 1_000_000
    naive_sample: int = 5_000
    seed: int = 1
    pg_dsn: str = DEFAULT_PG_DSN
    nats_url: str = DEFAULT_NATS_URL
    workdir: str = ""  # the build's report (and, embedded, its SQLite file)
    tag: str = ""  # scaled: the JetStream streams' and the PostgreSQL schema's name


def _plays(config: Config) -> Iterator[Play]:
    """The world's plays until the reconciled provider has ``config.lines`` of them."""
    world = build_world(config.seed, START, providers=2, players=5_000)
    days = max(1, -(-config.lines // DAY_LINES))
    # Two providers, about 1.6 plays a round: the reconciled one's share is ~0.8 a round.
    per_minute = min(config.lines, DAY_LINES) / (24 * 60) / 0.8
    mine = 0
    for play in generate(world, minutes=(days + 30) * 24 * 60, rounds_per_minute=per_minute):
        if play.provider == PROVIDER:
            if mine >= config.lines:
                return
            mine += 1
        yield play


def _fault(play: Play, index: int) -> dict[str, str] | None:
    """The break an injected fault must give: the play's key, its kind, and for a
    rollback left out the transaction it voids (its pair is a rollback mismatch too)."""
    key = event_key(PROVIDER, play.tx_id, play.kind)
    if index % DROP_EVERY == DROP_EVERY - 1:
        if play.kind == "rollback":
            return {"key": key, "kind": "rollback_mismatch", "voids": play.ref}
        return {"key": key, "kind": "missing_in_report", "voids": ""}
    if index % CHANGE_EVERY == CHANGE_EVERY - 1:
        return {"key": key, "kind": "amount_mismatch", "voids": ""}
    return None


def _report_line(play: Play, index: int, zone: ZoneInfo) -> str | None:
    if index % DROP_EVERY == DROP_EVERY - 1:
        return None
    amount = play.amount + (1 if index % CHANGE_EVERY == CHANGE_EVERY - 1 else 0)
    local = play.occurred_at.astimezone(zone).replace(tzinfo=None)
    return (
        f"{play.tx_id},{play.kind},{play.round_id},{play.operator},{play.player},{play.game},"
        f"{play.game_type},{format_amount(amount, play.currency)},{play.currency},"
        f"{local.isoformat()},{play.ref}"
    )


def _stream_names(tag: str) -> StreamNames:
    from tally.adapters.nats.events import StreamNames

    return StreamNames(f"BENCH_{tag.upper()}", f"bench{tag}.events", f"BENCH_{tag.upper()}_C")


def _open_log(config: Config) -> EventLog:
    if config.store == "sqlite":
        from tally.adapters.sqlite.events import SqliteEventLog

        return SqliteEventLog(Path(config.workdir) / "bench.sqlite")
    from tally.adapters.nats.events import JetStreamEventLog

    return JetStreamEventLog(config.nats_url, _stream_names(config.tag))


def run_build(config: Config, report: Callable[[int], None]) -> dict[str, Any]:
    """The event log and the report file, streamed: neither is held whole in memory."""
    zone = ZoneInfo(ZONE)
    log = _open_log(config)
    logged = reported = mine = 0
    plays = _plays(config)
    workdir = Path(config.workdir)
    try:
        with (
            open(workdir / "report.csv", "w", encoding="utf-8") as out,
            open(workdir / "faults.jsonl", "wb") as faults,
        ):
            out.write(COLUMNS + "\n")
            while chunk := list(islice(plays, APPEND_CHUNK)):
                # A rollback carries the amount it voids, as the provider's line does (the
                # simulator's provider view logs it so: tally.simulation.reports).
                events = [
                    replace(e, amount=p.amount) if p.kind == "rollback" else e
                    for e, p in zip(to_events(chunk, START), chunk, strict=True)
                ]
                log.append(events)
                logged += len(chunk)
                for play in chunk:
                    if play.provider != PROVIDER:
                        continue
                    fault = _fault(play, mine)
                    if fault is not None:
                        faults.write(orjson.dumps(fault) + b"\n")
                    line = _report_line(play, mine, zone)
                    mine += 1
                    if line is not None:
                        out.write(line + "\n")
                        reported += 1
                report(mine)
    finally:
        log.close()
    return {"events_logged": logged, "provider_events": mine, "report_lines": reported}


class _CountedAlerts:
    """The run's alert signals, counted: the benchmark times reconciliation, not the
    alerts service (``python -m bench alerts`` times that)."""

    def __init__(self) -> None:
        self.signals = 0
        self.clears = 0

    def signal(self, alert: AlertSignal) -> None:
        self.signals += 1

    def clear(self, kind: str, key: str, at: datetime) -> None:
        self.clears += 1


@contextmanager
def _service(config: Config) -> Iterator[tuple[Any, Auditing, ReconciliationStore]]:
    """The service as the deployment mode wires it (bootstrap.build_reconciliation), on
    the build's log and a fresh reconciliation store."""
    from tally.adapters.memory.quarantine import MemoryInputQuarantine
    from tally.audit.chain import Sealer
    from tally.audit.service import Auditing
    from tally.reconciliation.service import ReconciliationService
    from tally.reconciliation.tally_side import LogTallySide

    log = _open_log(config)
    sealer = Sealer(bytes(32))
    store: Any
    backoffice: Any
    if config.store == "sqlite":
        from tally.adapters.sqlite.backoffice import SqliteBackofficeStore
        from tally.adapters.sqlite.reconciliation import SqliteReconciliationStore

        path = Path(config.workdir) / "bench.sqlite"
        store, backoffice = SqliteReconciliationStore(path), SqliteBackofficeStore(path, sealer)
    else:
        from tally.adapters.postgres.backoffice import PostgresBackofficeStore
        from tally.adapters.postgres.reconciliation import PostgresReconciliationStore

        schema = f"bench_{config.tag}"
        store = PostgresReconciliationStore(config.pg_dsn, schema=schema)
        backoffice = PostgresBackofficeStore(config.pg_dsn, sealer, schema=schema)
    service = ReconciliationService(
        store, LogTallySide(log), MemoryInputQuarantine(), FixedClock(START), {PROVIDER: RULES},
        alerts=_CountedAlerts(),
    )  # fmt: skip
    try:
        yield service, Auditing(backoffice, "system:bench", "bench"), store
    finally:
        store.close()
        backoffice.close()
        log.close()


def run_run(config: Config, report: Callable[[int], None]) -> dict[str, Any]:
    data = (Path(config.workdir) / "report.csv").read_bytes()
    with _service(config) as (service, auditing, _):
        samples: list[float] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append(rss_mb())
                done.wait(RSS_EVERY_S)

        before = rss_mb()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        outcome = service.run("report.csv", data, PROVIDER, auditing)
        elapsed = time.perf_counter() - started
        done.set()
        sampler.join()
    lines = outcome.run.lines
    report(lines)
    peak = max([before, *samples])
    return {
        **_scores(outcome.result.breaks, Path(config.workdir) / "faults.jsonl"),
        "lines": lines,
        "refused": outcome.run.refused,
        "breaks": outcome.run.breaks,
        "report_mb": len(data) / 2**20,
        "seconds": elapsed,
        "lines_per_s": lines / elapsed,
        "rss_before_mb": before,
        "rss_peak_mb": peak,
        "rss_growth_mb": peak - before,
    }


def _scores(breaks: Sequence[Break], faults_path: Path) -> dict[str, Any]:
    """Precision (breaks that name an injected fault with the kind it must give, over all
    breaks) and recall (injected faults so named, over all of them)."""
    faults = [orjson.loads(line) for line in faults_path.read_bytes().splitlines()]
    expected = {f["key"]: f["kind"] for f in faults}
    voided = {f["voids"]: f["key"] for f in faults if f["voids"]}
    named: set[str] = set()
    correct = 0
    for b in breaks:
        found = False
        for key in filter(None, b.tally_key.split(",")):
            if expected.get(key) == b.kind.code:
                found = True
                named.add(key)
            elif b.kind.code == "rollback_mismatch" and key.split(":")[1] in voided:
                found = True  # the pair a left-out rollback no longer voids
        correct += found
    return {
        "injected": len(expected),
        "precision": correct / len(breaks) if breaks else 1.0,
        "recall": len(named) / len(expected) if expected else 1.0,
    }


def _lookup(config: Config, log: EventLog) -> Callable[[str, str], str | bytes | None]:
    """One query of Tally's side for one transaction, by its key (and operator)."""
    if config.store == "sqlite":
        import sqlite3

        db = sqlite3.connect(Path(config.workdir) / "bench.sqlite")

        def by_key(key: str, _operator: str) -> str | bytes | None:
            row = db.execute("SELECT body FROM event_log WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

        return by_key
    from nats.js.errors import NotFoundError

    from tally.adapters.nats.events import JetStreamEventLog, _key_hash, operator_token

    assert isinstance(log, JetStreamEventLog)
    names = log.names

    async def get(subject: str) -> bytes | None:
        try:
            found = await log._js.get_last_msg(names.stream, subject)
        except NotFoundError:
            return None
        return found.data

    def by_subject(key: str, operator: str) -> str | bytes | None:
        subject = f"{names.subjects}.{operator_token(operator)}.{_key_hash(key)}"
        return log._loop.call(get(subject), "lookup")

    return by_subject


def run_naive(config: Config, report: Callable[[int], None]) -> dict[str, Any]:
    """Line by line: each sampled report line's transaction fetched from Tally's side and
    its facts compared (no day, no round netting: only the cost of the lookups)."""
    text = (Path(config.workdir) / "report.csv").read_text(encoding="utf-8").splitlines()
    header, rows = text[0].split(","), text[1:]
    step = max(1, len(rows) // config.naive_sample)
    sample = rows[::step][: config.naive_sample]
    log = _open_log(config)
    lookup = _lookup(config, log)
    same = differ = missing = 0
    started = time.perf_counter()
    for i, row in enumerate(sample):
        f = dict(zip(header, row.split(","), strict=True))
        body = lookup(event_key(PROVIDER, f["tx_id"], f["kind"]), f["operator"])
        if body is None:
            missing += 1
            continue
        d = orjson.loads(body)
        amount = parse_amount(f["amount"], f["currency"])
        if d["kind"] == "rollback" or amount == parse_amount(d["amount"], d["currency"]):
            same += 1
        else:
            differ += 1
        if i % 1_000 == 0:
            report(i)
    elapsed = time.perf_counter() - started
    log.close()
    return {
        "lines": len(sample),
        "matched": same,
        "differ": differ,
        "missing": missing,
        "seconds": elapsed,
        "lines_per_s": len(sample) / elapsed,
    }


RUNS: dict[str, Callable[[Config, Callable[[int], None]], dict[str, Any]]] = {
    "build": run_build,
    "run": run_run,
    "naive": run_naive,
}


@contextmanager
def world(config: Config) -> Iterator[Config]:
    """A fresh place for one size's build: a temporary folder, and for the scaled mode
    JetStream streams and a PostgreSQL schema of its own, dropped afterwards."""
    with tempfile.TemporaryDirectory(prefix="tally-bench-recon-") as tmp:
        if config.store == "sqlite":
            yield replace(config, workdir=tmp)
            return
        import psycopg

        from tally.adapters.nats.events import JetStreamEventLog

        tag = uuid.uuid4().hex[:10]
        with psycopg.connect(config.pg_dsn, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA bench_{tag}")
        try:
            yield replace(config, workdir=tmp, tag=tag)
        finally:
            log = JetStreamEventLog(config.nats_url, _stream_names(tag))
            log.drop()
            log.close()
            with psycopg.connect(config.pg_dsn, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA bench_{tag} CASCADE")


def run_child(run: str, config: Config, on_progress: Callable[[int], None]) -> dict[str, Any]:
    return common.run_child("bench.reconcile", run, config, on_progress)


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stores = results["stores"]
    fig, (rate, memory) = plt.subplots(1, 2, figsize=(12, 4.5))
    for s in stores:
        sizes = [r["lines"] for r in s["sizes"]]
        rate.plot(sizes, [r["run"]["lines_per_s"] for r in s["sizes"]], marker="o",
                  label=f"{s['store']}")  # fmt: skip
        rate.plot(sizes, [s["naive"]["lines_per_s"]] * len(sizes), linestyle="dotted",
                  label=f"{s['store']} naive (line by line)")  # fmt: skip
        rate.axhline(TARGETS[s["store"]], color="red", linestyle="dashed", linewidth=0.8)
        memory.plot(sizes, [r["run"]["rss_peak_mb"] for r in s["sizes"]], marker="o",
                    label=f"{s['store']} peak")  # fmt: skip
        memory.plot(sizes, [r["run"]["report_mb"] for r in s["sizes"]], linestyle="dotted",
                    label=f"{s['store']} the report file")  # fmt: skip
    for axis in (rate, memory):
        axis.set_xscale("log")
        axis.set_xlabel("report lines")
        axis.legend(fontsize=8)
    rate.set_ylabel("lines per second")
    rate.set_title("Reconciliation rate; red: target")
    memory.set_ylabel("resident memory (MB)")
    memory.set_title("Peak memory by report size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    common.child_main(sys.argv[1:], RUNS, Config)
