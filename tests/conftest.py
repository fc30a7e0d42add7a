"""Shared fixtures: stores for every adapter, and the PostgreSQL policy.

PostgreSQL tests are mandatory under CI=true (they fail if the server is missing)
and skip with a clear message elsewhere. Each test gets a fresh schema.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tally.kernel.clock import FixedClock

PG_DSN = os.environ.get("TALLY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
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


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def ledger_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """The same ledger contract, run against every adapter."""
    kind = request.param
    if kind == "memory":
        from tally.adapters.memory.ledger import MemoryLedgerStore

        store: object = MemoryLedgerStore()
    elif kind == "sqlite":
        from tally.adapters.sqlite.ledger import SqliteLedgerStore

        store = SqliteLedgerStore(tmp_path / "ledger.sqlite")
    else:
        from tally.adapters.postgres.ledger import PostgresLedgerStore

        schema = request.getfixturevalue("pg_schema")
        store = PostgresLedgerStore(PG_DSN, schema=schema)
    try:
        yield store
    finally:
        store.close()  # type: ignore[attr-defined]
