"""How the embedded stores open a SQLite connection and run a write transaction on it.

Every SQLite connection of the adapters is opened here (:func:`connect`), with the same
settings: WAL, the durability asked for, the page cache, the busy timeout, and the one
lock of this process for each file's writers (:func:`file_lock`, taken by
:func:`immediate`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from tally.kernel.clock import from_micros, to_micros
from tally.kernel.errors import RetryableError

BUSY_TIMEOUT_S = 30.0
_file_locks: dict[str, threading.RLock] = {}
_file_locks_guard = threading.Lock()


class FileConnection(sqlite3.Connection):
    """A connection that knows the lock its file's write transactions take in this process."""

    file_lock: threading.RLock | None = None


def file_lock(path: Path | str) -> threading.RLock | None:
    """The one lock of this process for write transactions on the file at ``path``
    (None for an in-memory database, which no other connection shares).

    SQLite makes a writer that finds the file locked sleep and look again (1, 2, 5, 10,
    ... ms), so two connections of one process that write the same file (the ledger, the
    event log, the wallet marks) kept each other waiting several milliseconds past the
    other's commit. Waiting on this lock instead, the next writer starts the moment the
    last one ends; other processes still meet SQLite's own lock.
    """
    if str(path) == ":memory:" or str(path).startswith("file::memory:"):
        return None
    key = str(Path(path).resolve())
    with _file_locks_guard:
        lock = _file_locks.get(key)
        if lock is None:
            lock = _file_locks[key] = threading.RLock()
        return lock


def connect(path: Path | str, *, synchronous: str = "FULL") -> sqlite3.Connection:
    conn = sqlite3.connect(
        str(path),
        isolation_level=None,
        check_same_thread=False,
        timeout=BUSY_TIMEOUT_S,
        factory=FileConnection,
    )
    conn.file_lock = file_lock(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache per connection
    conn.execute("PRAGMA temp_store=MEMORY")
    # Checkpoint the WAL every ~64 MiB rather than every 4 MiB: fewer database fsyncs.
    conn.execute("PRAGMA wal_autocheckpoint=16384")
    conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    return conn


def connect_read_only(path: Path | str) -> sqlite3.Connection:
    """A reader that cannot write (``mode=ro``): backups and archives of a live file."""
    conn = sqlite3.connect(
        f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=BUSY_TIMEOUT_S
    )
    conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    return conn


def connect_copy(path: Path | str) -> sqlite3.Connection:
    """A stand-alone copy's connection (a backup's target): no WAL, no writer lock."""
    return sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)


@contextmanager
def immediate(conn: sqlite3.Connection, *, busy: str | None = None) -> Iterator[sqlite3.Connection]:
    """One write transaction on ``conn``: committed if the block ends, else rolled back
    (also when the commit itself fails, unless SQLite has already rolled it back). It
    holds the file's lock of this process (``file_lock``) from begin to end.

    With ``busy`` (what to call the database), a file another writer holds past the busy
    timeout is a :class:`RetryableError`; without, SQLite's own error."""
    lock = getattr(conn, "file_lock", None)
    if lock is not None and not lock.acquire(timeout=BUSY_TIMEOUT_S):
        message = "database is locked (by another writer of this process)"
        if busy is None:
            raise sqlite3.OperationalError(message)
        raise RetryableError(f"{busy} is busy: {message}")
    try:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if busy is None:
                raise
            raise RetryableError(f"{busy} is busy: {exc}") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        if lock is not None:
            lock.release()


class FileStore:
    """The plumbing of a store over one connection to the embedded file, used under a
    lock: a statement at a time (``_run``), a write transaction (``_transaction``), times
    as integer microseconds, and ``close`` (the SQLite twin of PostgreSQL's
    ``LinkedStore``). The SQL stores above it supply the statements."""

    # Named in the error when the file stays busy past the timeout.
    busy_label = "store"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conn = connect(path)
        self._lock = threading.RLock()

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            rows: list[tuple[Any, ...]] = self._conn.execute(sql, tuple(params)).fetchall()
        return rows

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate(self._conn, busy=self.busy_label) as conn:
            yield conn

    def _time_in(self, when: datetime) -> Any:
        return to_micros(when)

    def _time_out(self, value: Any) -> datetime:
        return from_micros(value)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
