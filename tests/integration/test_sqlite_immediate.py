"""``immediate``: the embedded stores' write transaction (migrations, the event log, the
ledger's writer and history indexer, the back-office store)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tally.adapters.sqlite.ledger import connect, immediate
from tally.kernel.errors import RetryableError


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    conn = connect(tmp_path / "t.sqlite")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    conn.execute(
        "CREATE TABLE child (parent_id INTEGER REFERENCES parent (id) "
        "DEFERRABLE INITIALLY DEFERRED)"
    )
    return conn


def _count(conn: sqlite3.Connection, table: str) -> int:
    (n,) = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    return int(n)


def test_a_block_that_ends_is_committed(conn: sqlite3.Connection) -> None:
    with immediate(conn):
        conn.execute("INSERT INTO parent VALUES (1)")
    assert not conn.in_transaction
    assert _count(conn, "parent") == 1


def test_a_block_that_raises_is_rolled_back_and_its_error_kept(conn: sqlite3.Connection) -> None:
    with pytest.raises(KeyError), immediate(conn):
        conn.execute("INSERT INTO parent VALUES (1)")
        raise KeyError("boom")
    assert not conn.in_transaction
    assert _count(conn, "parent") == 0


def test_a_commit_that_fails_is_rolled_back_so_the_next_transaction_can_begin(
    conn: sqlite3.Connection,
) -> None:
    # A deferred foreign key is checked at COMMIT, which fails and leaves it open.
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"), immediate(conn):
        conn.execute("INSERT INTO child VALUES (7)")
    assert not conn.in_transaction
    with immediate(conn):
        conn.execute("INSERT INTO parent VALUES (7)")
    assert (_count(conn, "parent"), _count(conn, "child")) == (1, 0)


def test_a_file_held_by_another_writer_is_retryable_when_named_else_sqlites_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.sqlite"
    holder = connect(path)
    waiter = connect(path)
    waiter.execute("PRAGMA busy_timeout=50")
    holder.execute("BEGIN IMMEDIATE")
    try:
        with (
            pytest.raises(RetryableError, match="ledger database is busy"),
            immediate(waiter, busy="ledger database"),
        ):
            pass
        with pytest.raises(sqlite3.OperationalError, match="locked"), immediate(waiter):
            pass
        assert not waiter.in_transaction
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        waiter.close()
