"""Shared fixtures: stores for every adapter, and the PostgreSQL policy.

PostgreSQL tests are mandatory under CI=true (they fail if the server is missing)
and skip with a clear message elsewhere. Each test gets a fresh schema.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tally.adapters.postgres.ledger import PostgresLedgerStore
from tally.adapters.sqlite.ledger import SqliteLedgerStore
from tally.kernel.clock import FixedClock
from tally.ledger.model import TransferRequest, TransferResult

PG_DSN = os.environ.get("TALLY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("TALLY_TEST_NATS_URL", "nats://127.0.0.1:4222")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _pg_problem() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"{type(exc).__name__}: {exc}"
    return None


_PG_CHECKED: list[str | None] = []


def require_postgres() -> None:
    """Skip (laptop) or fail (CI) when PostgreSQL is not reachable."""
    if not _PG_CHECKED:
        _PG_CHECKED.append(_pg_problem())
    problem = _PG_CHECKED[0]
    if problem is None:
        return
    message = f"PostgreSQL at {PG_DSN} is not reachable ({problem})"
    if IN_CI:
        pytest.fail(f"{message}; PostgreSQL tests are mandatory under CI=true", pytrace=False)
    pytest.skip(f"{message}; set TALLY_TEST_PG_DSN or start PostgreSQL to run these tests")


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema for one test; dropped afterwards."""
    require_postgres()
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield name
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


StoreFactory = Callable[[], object]


class IndexedOften(SqliteLedgerStore):
    """The embedded store, waiting for its history indexer after each batch so that
    reads find what it took in (the indexer runs in its own thread, ADR 0013)."""

    def apply(
        self, submissions: Sequence[Sequence[TransferRequest]], now: datetime
    ) -> list[list[TransferResult]]:
        results = super().apply(submissions, now)
        assert self.wait_for_history_index(10)
        return results


class Pipelined(SqliteLedgerStore):
    """The embedded store as the ledger writer uses it: each batch decided, then
    committed (ADR 0015); ``apply`` alone decides and writes in one transaction."""

    def apply(
        self, submissions: Sequence[Sequence[TransferRequest]], now: datetime
    ) -> list[list[TransferResult]]:
        return self.commit(self.decide(submissions, now))


class PipelinedPostgres(PostgresLedgerStore):
    """The PostgreSQL store as the ledger writer uses it: decided on its caches, then
    committed with compare-and-set (ADR 0016)."""

    def apply(
        self, submissions: Sequence[Sequence[TransferRequest]], now: datetime
    ) -> list[list[TransferResult]]:
        return self.commit(self.decide(submissions, now))


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        "sqlite-indexed-often",
        "postgres",
        "postgres-one-step",
        "postgres-partitioned",
    ]
)
def ledger_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """The same ledger contract, run against every adapter. The embedded store runs twice:
    as its writer drives it, deciding then committing (history reads mostly scan the tail
    its history index has not taken in yet), and in one step, taking a transfer in every
    other one into that index (reads mostly go through it). PostgreSQL runs both ways
    too: decided then committed with compare-and-set, and in one step under row locks,
    and once more on the schema the data lifecycle partitions (ADR 0023), with monthly
    partitions made for the months the tests' clocks visit (December 2025 to January 2027)."""
    kind = request.param
    if kind == "memory":
        from tally.adapters.memory.ledger import MemoryLedgerStore

        store: object = MemoryLedgerStore()
    elif kind.startswith("sqlite"):
        from tally.kernel.limits import LedgerLimits

        path = tmp_path / "ledger.sqlite"
        if kind == "sqlite-indexed-often":
            store = IndexedOften(path, LedgerLimits(history_index_lag=2))
        else:
            store = Pipelined(path)
    else:
        schema = request.getfixturevalue("pg_schema")
        if kind == "postgres-partitioned":
            from tally.adapters.postgres.lifecycle import PostgresPartitions
            from tally.lifecycle.seal import Period

            parts = PostgresPartitions(PG_DSN, schema=schema)
            parts.install()
            months = [Period.parse("2025-12")]
            while len(months) < 14:
                months.append(months[-1].next())
            for table in ("transfers", "transfer_rejections"):
                parts.ensure(table, ["global"], months)
            store = PipelinedPostgres(PG_DSN, schema=schema)
        elif kind == "postgres-one-step":
            store = PostgresLedgerStore(PG_DSN, schema=schema)
        else:
            store = PipelinedPostgres(PG_DSN, schema=schema)
    try:
        yield store
    finally:
        store.close()  # type: ignore[attr-defined]


def _nats_problem() -> str | None:
    import socket
    from urllib.parse import urlparse

    where = urlparse(NATS_URL)
    try:
        with socket.create_connection((where.hostname or "", where.port or 4222), timeout=3):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def require_nats() -> None:
    """Skip (laptop) or fail (CI) when NATS with JetStream is not reachable."""
    problem = _nats_problem()
    if problem is None:
        return
    message = f"NATS at {NATS_URL} is not reachable ({problem})"
    if IN_CI:
        pytest.fail(f"{message}; NATS tests are mandatory under CI=true", pytrace=False)
    pytest.skip(f"{message}; set TALLY_TEST_NATS_URL or start nats-server -js to run these tests")


def stream_names() -> Any:
    """Throwaway JetStream stream names for one test (requires NATS)."""
    require_nats()
    from tally.adapters.nats.events import StreamNames

    tag = uuid.uuid4().hex[:10].upper()
    return StreamNames(
        stream=f"T_{tag}", subjects=f"t{tag.lower()}.events", conflicts=f"T_{tag}_CONFLICTS"
    )
