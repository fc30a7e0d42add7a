"""``immediate``: the embedded stores' write transaction (migrations, the event log, the
ledger's writer and history indexer, the back-office store), and the lock of this
process that the writers of one file take turns on."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from tally.adapters.sqlite import connection as connection_module
from tally.adapters.sqlite.connection import FileConnection, connect, file_lock, immediate
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


def _refused_as_busy(waiter: sqlite3.Connection) -> None:
    """A transaction on ``waiter`` while another writer holds the file: retryable when
    the database is named, else SQLite's own error."""
    with (
        pytest.raises(RetryableError, match="ledger database is busy"),
        immediate(waiter, busy="ledger database"),
    ):
        pass
    with pytest.raises(sqlite3.OperationalError, match="locked"), immediate(waiter):
        pass


def test_a_file_held_by_another_writer_is_retryable_when_named_else_sqlites_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.sqlite"
    holder = connect(path)
    waiter = connect(path)
    waiter.execute("PRAGMA busy_timeout=50")
    holder.execute("BEGIN IMMEDIATE")
    try:
        _refused_as_busy(waiter)
        assert not waiter.in_transaction
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        waiter.close()


def _hold(conn: sqlite3.Connection, held: threading.Event, release: threading.Event) -> None:
    with immediate(conn):
        conn.execute("INSERT INTO parent VALUES (NULL)")  # the next id
        held.set()
        release.wait(10)


def test_writers_of_one_file_in_this_process_wait_on_its_lock_not_on_sqlites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer of the file in this process waits for the lock (and starts when it
    is free), not for SQLite's busy handler: here SQLite would give up at once."""
    monkeypatch.chdir(tmp_path)
    holder = connect(tmp_path / "t.sqlite")
    waiter = connect("t.sqlite")  # the same file, named otherwise
    assert isinstance(holder, FileConnection) and isinstance(waiter, FileConnection)
    assert holder.file_lock is not None and holder.file_lock is waiter.file_lock
    assert file_lock(":memory:") is None
    holder.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    waiter.execute("PRAGMA busy_timeout=0")
    held, release = threading.Event(), threading.Event()
    holding = threading.Thread(target=_hold, args=(holder, held, release))
    holding.start()
    try:
        assert held.wait(10)
        released = threading.Timer(0.2, release.set)
        released.start()
        with immediate(waiter, busy="ledger database"):  # waits for the holder's commit
            waiter.execute("INSERT INTO parent VALUES (2)")
        assert waiter.execute("SELECT id FROM parent ORDER BY id").fetchall() == [(1,), (2,)]
        # Past the busy timeout, the lock's wait fails as SQLite's would.
        monkeypatch.setattr(connection_module, "BUSY_TIMEOUT_S", 0.05)
        held.clear()
        release.clear()
        holding = threading.Thread(target=_hold, args=(holder, held, release))
        holding.start()
        assert held.wait(10)
        _refused_as_busy(waiter)
    finally:
        release.set()
        holding.join(10)
        holder.close()
        waiter.close()
