"""The alerts benchmark: signals per second through the deployment's real sink.

A detector signals the same conditions over and over (every evaluation), so the load is
``signals`` spread over ``keys`` conditions in a seeded order, on the product's stores:
embedded, the SQLite alert store and audit trail in one file; scaled, PostgreSQL (a schema
of its own, dropped afterwards). Each signal is one transaction under its key's lock;
opening an alert also writes its audit record and outbox rows.

- sink: ``AlertService.signal`` as bootstrap wires it (repeats of an open alert counted
  in memory for up to ``ALERT_COALESCE_S``, silences and inhibitions read per change,
  the audit record on open), then ``flush``;
- sink, uncoalesced: the same with every repeat written (a process that sets
  ``coalesce_s`` 0), on the naive run's sample;
- naive: what a sink without deduplication does: every signal its own audited row (the
  alert inserted and an audit record appended, one transaction), on a sample;
- switches: the gateway's per-bet question (``RiskSwitches.suspended``) with its cache.
"""

from __future__ import annotations

import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tally.app.bootstrap import ALERT_COALESCE_S
from tally.audit.chain import AuditEntry, Sealer
from tally.audit.ports import AuditStore
from tally.kernel.alerts import AlertSignal, Severity
from tally.kernel.clock import FixedClock
from tally.risk.alerts import AlertService
from tally.risk.alerts_model import DEFAULT_RULES, Alert, Change, on_signal
from tally.risk.delivery import Sink, SinkKind, Sinks
from tally.risk.playbooks import RiskSwitches
from tally.risk.ports import AlertFilter, AlertStore

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
START = datetime(2026, 3, 2, tzinfo=UTC)
SEALER = Sealer(b"b" * 32)


@contextmanager
def stores(store: str, pg_dsn: str) -> Iterator[tuple[AlertStore, AuditStore, Callable[[], Any]]]:
    """A fresh alert store and audit trail in one database, and a closer."""
    if store == "sqlite":
        from tally.adapters.sqlite.backoffice import SqliteBackofficeStore
        from tally.adapters.sqlite.risk import SqliteAlertStore

        with tempfile.TemporaryDirectory(prefix="tally-bench-alerts-") as tmp:
            path = Path(tmp) / "tally.sqlite"
            alerts, trail = SqliteAlertStore(path), SqliteBackofficeStore(path, SEALER)
            try:
                yield alerts, trail, lambda: None
            finally:
                alerts.close()
                trail.close()
        return
    import psycopg

    from tally.adapters.postgres.backoffice import PostgresBackofficeStore
    from tally.adapters.postgres.risk import PostgresAlertStore

    schema = f"bench_alerts_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        pg_alerts = PostgresAlertStore(pg_dsn, schema=schema)
        pg_trail = PostgresBackofficeStore(pg_dsn, SEALER, schema=schema)
        try:
            yield pg_alerts, pg_trail, lambda: None
        finally:
            pg_alerts.close()
            pg_trail.close()
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _signals(count: int, keys: int, seed: int = 7) -> list[AlertSignal]:
    rng = random.Random(seed)
    out = []
    for n in range(count):
        k = rng.randrange(keys)
        out.append(
            AlertSignal(
                "risk.rtp_drift", f"prov{k % 20}/g{k}", Severity.CRITICAL, "RTP outside its band",
                START + timedelta(milliseconds=n), region=f"r{k % 3}", provider=f"prov{k % 20}",
                game=f"g{k}", money_at_risk=rng.randrange(1, 10**7), currency="EUR",
                confidence_permille=rng.randrange(500, 1000), evidence={"n": str(n)},
            )
        )  # fmt: skip
    return out


def _fresh(s: AlertSignal) -> Callable[[Alert | None], Change]:
    return lambda _current: on_signal(None, s, DEFAULT_RULES, 0)


def _audited(trail: AuditStore, at: datetime) -> Callable[[Any, Change], object]:
    def within(tx: Any, c: Change) -> object:
        assert c.after is not None
        return trail.append_in(
            tx, AuditEntry("system:bench", "alert.opened", f"alert:{c.after.id}", at)
        )

    return within


def run(store: str, signals: int, keys: int, naive_sample: int, pg_dsn: str) -> dict[str, Any]:
    load = _signals(signals, keys)
    result: dict[str, Any] = {"store": store, "signals": signals, "keys": keys}
    with stores(store, pg_dsn) as (alerts, trail, _):
        clock = FixedClock(START)
        hook = Sink("bench", SinkKind.WEBHOOK, "http://127.0.0.1:9/none", "s")
        service = AlertService(
            alerts, trail, clock, sinks=Sinks([hook]), coalesce_s=ALERT_COALESCE_S
        )
        started = time.perf_counter()
        for s in load:
            service.signal(s)
        service.flush()
        elapsed = time.perf_counter() - started
        kept = alerts.alerts(AlertFilter(), limit=keys + 1)
        result["sink"] = {
            "seconds": elapsed,
            "signals_per_s": signals / elapsed,
            "alerts": len(kept),
            "audited": sum(1 for _ in trail.iter_audit()),
            "outbox": len(alerts.deliveries(limit=keys * 2 + 1)),
        }
        switches = RiskSwitches(alerts)
        asks = 200_000
        started = time.perf_counter()
        for n in range(asks):
            switches.suspended(f"prov{n % 20}", f"g{n % keys}")
        elapsed = time.perf_counter() - started
        result["switches"] = {"asks": asks, "asks_per_s": asks / elapsed}
    with stores(store, pg_dsn) as (alerts, trail, _):
        sample = load[:naive_sample]
        started = time.perf_counter()
        for n, sig in enumerate(sample):
            # Every signal its own alert and audit record: no deduplication, no lock.
            alerts.change(sig.kind, f"{sig.key}#{n}", _fresh(sig), _audited(trail, sig.at))
        elapsed = time.perf_counter() - started
        result["naive"] = {"signals": len(sample), "signals_per_s": len(sample) / elapsed}
    with stores(store, pg_dsn) as (alerts, trail, _):
        plain = AlertService(alerts, trail, FixedClock(START))
        sample = load[:naive_sample]
        started = time.perf_counter()
        for sig in sample:
            plain.signal(sig)
        elapsed = time.perf_counter() - started
        result["uncoalesced"] = {"signals": len(sample), "signals_per_s": len(sample) / elapsed}
    result["ratio_to_naive"] = result["sink"]["signals_per_s"] / result["naive"]["signals_per_s"]
    return result
