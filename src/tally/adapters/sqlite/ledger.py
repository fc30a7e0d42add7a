"""The embedded ledger store: one SQLite file in WAL mode.

One write connection (guarded by a lock, used to commit the ledger writer's batches and
by the history indexer's thread), the writer's own read connection on which it decides a
batch before it takes that lock (ADR 0013), while the batch before may be committing
(ADR 0015), and a pool of read connections lent one per query; WAL lets readers run
beside the writer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import structlog

from tally.adapters.ahead import BatchesAhead, DecidedBatch
from tally.adapters.sql import rows
from tally.adapters.sql.ledger import AuditedWrites
from tally.adapters.sql.migrate import MIGRATIONS_TABLE, load_migrations
from tally.adapters.sqlite.connection import connect, immediate
from tally.kernel.clock import from_micros, to_micros
from tally.kernel.errors import StoreUnavailable
from tally.kernel.limits import LedgerLimits
from tally.kernel.page import Page, decode_cursor, fetch_size, page_from_rows
from tally.ledger import engine
from tally.ledger.codec import request_from_dict
from tally.ledger.model import (
    Account,
    AccountResult,
    Balance,
    OwnerKind,
    PendingStatus,
    Rejection,
    ResultCode,
    Transfer,
    TransferKind,
    TransferRequest,
    TransferResult,
)
from tally.ledger.ports import Decided

log = structlog.get_logger("tally.ledger")


def migrate(conn: sqlite3.Connection, component: str = "ledger") -> list[int]:
    """Apply a component's missing migrations; returns the versions applied now."""
    conn.execute(MIGRATIONS_TABLE)
    done = {
        v
        for (v,) in conn.execute(
            "SELECT version FROM schema_migrations WHERE component = ?", (component,)
        )
    }
    applied: list[int] = []
    for migration in load_migrations("tally.adapters.sqlite.migrations", component):
        if migration.version in done:
            continue
        # executescript would commit on its own; run statements inside one transaction.
        with immediate(conn):
            for statement in _statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                (component, migration.version, migration.name),
            )
        applied.append(migration.version)
    return applied


def _statements(script: str) -> Iterator[str]:
    buffer = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer.strip()
            buffer = ""
    if buffer.strip():
        yield buffer.strip()


_LOAD_TRANSFERS = (
    f"SELECT {rows.TRANSFER_COLUMNS} FROM transfers WHERE id IN (SELECT value FROM json_each(?))"
)
# ``accounts`` is a view of definitions and balances (migration ledger_004); the writer
# also keeps each account's number, which keys its row in account_balances.
_LOAD_ACCOUNTS = (
    f"SELECT num, {rows.ACCOUNT_COLUMNS} FROM accounts WHERE id IN (SELECT value FROM json_each(?))"
)

# Every write transaction of a ledger store counts (migration ledger_005).
_GENERATION = "SELECT n FROM ledger_generation"
_NEXT_GENERATION = "UPDATE ledger_generation SET n = n + 1"


# A batch's writes are statements over one JSON array of rows each (``json_each``): SQLite
# inserts or updates every row in one step, without the interpreter lock, so the
# committer writes a batch while the writer decides the next (ADR 0015). executemany
# would take the lock back for every row, and wait for it behind the deciding writer.
def _from_json(columns: str) -> str:
    """The columns' values, in order, from each row (an array) of a JSON parameter."""
    values = ", ".join(f"value ->> {i}" for i in range(len(columns.split(","))))
    return f"{values} FROM json_each(?)"


def _insert(columns: str, *, single: bool = False) -> str:
    if single:  # the kind is written in the statement, not sent
        return f"INSERT INTO transfers (kind, {columns}) SELECT 'single', {_from_json(columns)}"
    return f"INSERT INTO transfers ({columns}) SELECT {_from_json(columns)}"


# Each value in the JSON costs SQLite a parse, so a transfer is sent with the columns it
# fills: most are single transfers with nothing optional (``_PLAIN``), or with an event
# reference or metadata (``_NOTED``); the rest send all.
_PLAIN_COLUMNS = (
    "id, debit_account_id, credit_account_id, amount, currency, code, occurred_at, recorded_at"
)
_INSERT_PLAIN = _insert(_PLAIN_COLUMNS, single=True)
_INSERT_NOTED = _insert(f"{_PLAIN_COLUMNS}, event_ref, metadata", single=True)
_INSERT_TRANSFER = _insert(rows.TRANSFER_COLUMNS)
_RESOLVE = (
    "UPDATE transfers SET status = j.value ->> 0, resolved_at = j.value ->> 1 "
    "FROM json_each(?) AS j WHERE transfers.id = j.value ->> 2"
)
_SET_BALANCES = (
    "UPDATE account_balances SET debits_pending = j.value ->> 0, "
    "debits_posted = j.value ->> 1, credits_pending = j.value ->> 2, "
    "credits_posted = j.value ->> 3 FROM json_each(?) AS j WHERE num = j.value ->> 4"
)
_INSERT_REJECTIONS = (
    "INSERT INTO transfer_rejections (transfer_id, code, reason, request, rejected_at) "
    "SELECT " + _from_json("transfer_id, code, reason, request, rejected_at")
)
Writes = list[tuple[str, str]]  # statements, each with its JSON parameter


def _rejection(row: Sequence[Any]) -> Rejection:
    _, tid, code, req, at = row
    return Rejection(tid, ResultCode(code), request_from_dict(json.loads(req)), from_micros(at))


def json_array(values: Sequence[Any]) -> str:
    """Values as the text of a JSON array, for ``json_each(?)`` (a blob would be read as
    SQLite's binary JSON)."""
    return orjson.dumps(values).decode()


_T_COLUMNS = ", ".join(f"t.{c.strip()}" for c in rows.TRANSFER_COLUMNS.split(","))
_MARK = "(SELECT indexed_through FROM account_postings_mark)"
# An account's transfers: those account_postings already holds, and the tail after its
# mark, which is short (at most ``LedgerLimits.history_index_lag`` transfers). One
# statement, so both parts come from one snapshot and nothing is missed or seen twice.
_ACCOUNT_TRANSFERS = f"""
SELECT * FROM (
  SELECT t.seq, {_T_COLUMNS} FROM account_postings AS p JOIN transfers AS t ON t.seq = p.seq
  WHERE p.account_id = :a AND p.seq > :s AND p.seq <= {_MARK} ORDER BY p.seq LIMIT :n)
UNION ALL
SELECT * FROM (
  SELECT seq, {rows.TRANSFER_COLUMNS} FROM transfers
  WHERE seq > MAX(:s, {_MARK}) AND (debit_account_id = :a OR credit_account_id = :a)
  ORDER BY seq LIMIT :n)
ORDER BY seq LIMIT :n
"""
_BALANCE_AT = f"""
SELECT
  SUM(CASE WHEN debit_account_id = :a AND kind = 'pending'
           AND (resolved_at IS NULL OR resolved_at > :t) THEN amount END),
  SUM(CASE WHEN debit_account_id = :a AND kind IN ('single', 'post') THEN amount END),
  SUM(CASE WHEN credit_account_id = :a AND kind = 'pending'
           AND (resolved_at IS NULL OR resolved_at > :t) THEN amount END),
  SUM(CASE WHEN credit_account_id = :a AND kind IN ('single', 'post') THEN amount END)
FROM (
  SELECT t.kind, t.debit_account_id, t.credit_account_id, t.amount, t.resolved_at,
         t.recorded_at
  FROM account_postings AS p JOIN transfers AS t ON t.seq = p.seq
  WHERE p.account_id = :a AND p.seq <= {_MARK}
  UNION ALL
  SELECT kind, debit_account_id, credit_account_id, amount, resolved_at, recorded_at
  FROM transfers
  WHERE seq > {_MARK} AND (debit_account_id = :a OR credit_account_id = :a)
)
WHERE recorded_at <= :t
"""
_INDEX_MARK = "SELECT indexed_through FROM account_postings_mark"
_SET_INDEX_MARK = "UPDATE account_postings_mark SET indexed_through = ?"


# Both sides of each transfer after the mark :m up to :last.
_TAIL_ENTRIES = """
SELECT debit_account_id AS a, seq FROM transfers WHERE seq > :m AND seq <= :last
UNION ALL
SELECT credit_account_id, seq FROM transfers WHERE seq > :m AND seq <= :last
"""


# Both sides of every transfer after the mark, sorted, so the insert walks the B-tree
# once in order and dirties each page once, however many entries land on it.
_INDEX_HISTORY = f"""
INSERT OR IGNORE INTO account_postings (account_id, seq)
  SELECT a, seq FROM ({_TAIL_ENTRIES}) ORDER BY 1, 2
"""
# The indexer's rounds (ADR 0009 amended) take the tail in by pieces, ranges of key
# (account, seq) of about as many entries each, each a transaction of its own. The
# tail's entries are first copied, sorted, into a table in memory of the indexer's own
# connection: that holds no write lock (a temporary table is not the file), and each
# piece then reads only its own entries from it in key order, not the whole tail of
# transfers again. Entries of a piece written before a crash, with the mark not yet
# moved, are there already (and unread: readers stop at the mark).
_TAIL_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS tail_entries "
    "(a TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (a, seq)) WITHOUT ROWID"
)
_COPY_TAIL = (
    f"INSERT OR IGNORE INTO temp.tail_entries SELECT a, seq FROM ({_TAIL_ENTRIES}) ORDER BY 1, 2"
)
# Where a piece after the first starts: the key :at entries into the sorted tail.
_PIECE_START = "SELECT a, seq FROM temp.tail_entries ORDER BY a, seq LIMIT 1 OFFSET :at"
_INDEX_PIECE = """
INSERT OR IGNORE INTO account_postings (account_id, seq)
  SELECT a, seq FROM temp.tail_entries
  WHERE (a, seq) >= (:lo, :lo_seq) AND (:hi IS NULL OR (a, seq) < (:hi, :hi_seq))
  ORDER BY 1, 2
"""
Key = tuple[str, int]  # an account_postings key: (account_id, seq)
_FIRST_KEY: Key = ("", 0)


def transfer_writes(created: Sequence[Transfer], time_in: rows.TimeIn) -> Writes:
    """Inserts of new transfers in their order (their seq), each run of one shape at once."""
    writes: Writes = []
    run: list[tuple[Any, ...]] = []
    run_sql = _INSERT_PLAIN
    for t in created:
        single = t.kind is TransferKind.SINGLE and t.status is None
        if not single or t.timeout_s or t.pending_id:
            sql, row = _INSERT_TRANSFER, rows.transfer_row(t, time_in)
        else:
            row = (
                t.id,
                t.debit_account_id,
                t.credit_account_id,
                t.amount,
                t.currency,
                t.code,
                time_in(t.occurred_at),
                time_in(t.recorded_at),
            )
            if t.event_ref or t.metadata:
                sql = _INSERT_NOTED
                row += (t.event_ref or None, rows.metadata_out(t.metadata))
            else:
                sql = _INSERT_PLAIN
        if sql is not run_sql:
            if run:
                writes.append((run_sql, json_array(run)))
            run, run_sql = [], sql
        run.append(row)
    if run:
        writes.append((run_sql, json_array(run)))
    return writes


def write(conn: sqlite3.Connection, writes: Writes) -> None:
    for sql, values in writes:
        conn.execute(sql, (values,))


_Decided = DecidedBatch[Writes]


class _HistoryIndexer:
    """The thread that brings the history index up behind the writer (ADR 0013).

    The writer asks after each commit that created transfers; a round runs when the tail
    after the mark is ``history_index_lag`` long or longer. Its pieces hold the file's
    write lock, not the cache lock, so the writer decides its next batch meanwhile. A
    failed round is logged and tried again at the next request: reads are right
    whatever the tail's length (they scan it), only slower.
    """

    def __init__(self, store: SqliteLedgerStore) -> None:
        self._store = store
        self._cond = threading.Condition()
        self._asked = 0
        self._done = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="ledger-history-index", daemon=True)
        self._thread.start()

    def wanted(self) -> None:
        with self._cond:
            self._asked += 1
            self._cond.notify_all()

    def wait(self, timeout: float | None) -> bool:
        with self._cond:
            target = self._asked
            return self._cond.wait_for(lambda: self._done >= target or self._stopping, timeout)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._asked > self._done or self._stopping)
                if self._stopping:
                    return
                target = self._asked
            try:
                self._store._index_round()
            except Exception as exc:  # noqa: BLE001 - the next request tries again
                log.error("history_index_failed", error=str(exc))
            with self._cond:
                self._done = target
                self._cond.notify_all()


class SqliteLedgerStore(AuditedWrites):
    commit_lanes = 1  # one write connection: batches commit one at a time

    def __init__(
        self,
        path: Path | str,
        limits: LedgerLimits | None = None,
        *,
        synchronous: str = "FULL",
    ) -> None:
        self.path = Path(path)
        self.limits = limits or LedgerLimits()
        self._synchronous = synchronous
        try:
            self._write = connect(self.path, synchronous=synchronous)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._write_lock = threading.Lock()
        # Read connections, lent one per query. Not one per thread: a server's worker
        # threads come and go, and each would have kept a connection open for good.
        self._idle: deque[sqlite3.Connection] = deque()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        # The writer's view of the accounts it has met, four dicts with the same keys:
        # definitions, balances as last committed by this writer, balance rules, and
        # numbers (the key of an account's balances row).
        # Valid while no other ledger store has written the file (PRAGMA data_version
        # tells that some connection has, ledger_generation whether it was a ledger
        # store) and no transaction of ours failed; else all four are dropped.
        self._accounts: dict[str, Account] = {}
        self._balances: dict[str, Balance] = {}
        self._rules: dict[str, int] = {}
        self._nums: dict[str, int] = {}
        self._data_version = -1
        self._generation = -1  # the file's ledger generation as of the caches
        # Held by whoever reads or changes the caches. The writer decides a batch under
        # this lock alone, on its own read connection, so the history indexer and the
        # committer can hold the write lock meanwhile. Whoever needs both takes the write
        # lock first.
        self._cache_lock = threading.RLock()
        # Batches decided ahead and not yet committed (ADR 0015).
        self._ahead: BatchesAhead[Writes] = BatchesAhead()
        with self._write_lock:
            migrate(self._write)
        try:
            self._decider = connect(self.path, synchronous=synchronous)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._checkpointed_at = 0.0  # time.monotonic() of the indexer's last checkpoint
        try:
            # The indexer's own: its table in memory, its transactions (see _index_round).
            self._index_conn = connect(self.path, synchronous=synchronous)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._indexer = _HistoryIndexer(self)

    # -- connections --------------------------------------------------------------------
    def _all(self, sql: str, params: Any = ()) -> list[Any]:
        """A read query's rows, on a read connection of the pool (made if none is idle)."""
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = connect(self.path, synchronous=self._synchronous)
            with self._readers_lock:
                self._readers.append(conn)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            self._idle.append(conn)

    def _one(self, sql: str, params: Any = ()) -> Any:
        found = self._all(sql, params)
        return found[0] if found else None

    @contextmanager
    def unit_of_work(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the ledger's file, for components that write beside
        the ledger atomically (settlement commits its state and log position here)."""
        with self._transaction() as conn:
            yield conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, which counts in the file's ledger generation."""
        with self._write_lock:
            try:
                with immediate(self._write, busy="ledger database") as conn:
                    (version,) = conn.execute("PRAGMA data_version").fetchone()
                    if version != self._data_version:
                        # Another connection committed to the file. Only if it was a
                        # ledger store (the generation moved) may the caches be stale.
                        (generation,) = conn.execute(_GENERATION).fetchone()
                        if generation != self._generation:
                            self._forget_accounts()
                            self._generation = generation
                        self._data_version = version
                    yield conn
                    conn.execute(_NEXT_GENERATION)
                self._generation += 1
            except BaseException:
                # Rolled back: the engine may have changed cached balances in place.
                self._forget_accounts()
                raise

    def _forget_accounts(self) -> None:
        """Drop the caches; every batch decided ahead on them is decided again when its
        turn to commit comes."""
        with self._cache_lock:
            self._accounts.clear()
            self._balances.clear()
            self._rules.clear()
            self._nums.clear()
            self._ahead.void_all()

    # -- writes -------------------------------------------------------------------------
    def create_accounts(self, accounts: Sequence[Account], now: datetime) -> list[AccountResult]:
        with self._transaction() as conn:
            return self.create_accounts_in(conn, accounts, now)

    def create_accounts_in(
        self, conn: sqlite3.Connection, accounts: Sequence[Account], now: datetime
    ) -> list[AccountResult]:
        """``create_accounts`` inside a transaction opened by :meth:`unit_of_work`."""
        ids = [a.id for a in accounts if isinstance(a.id, str)]
        created_at = to_micros(now)
        existing = {
            account.id: account
            for account, _ in (
                rows.account_from_row(row[1:])
                for row in conn.execute(_LOAD_ACCOUNTS, (json_array(ids),))
            )
        }
        results, new = engine.decide_accounts(accounts, existing, self.limits)
        if new:
            (top,) = conn.execute("SELECT COALESCE(MAX(num), 0) FROM account_balances").fetchone()
            numbered = list(enumerate(new, top + 1))  # each new account's number, once
            conn.executemany(
                "INSERT INTO account_definitions (id, owner_kind, owner_id, currency, purpose, "
                "flags, metadata, created_at, num) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*rows.account_row(a, created_at), num) for num, a in numbered],
            )
            conn.executemany(
                "INSERT INTO account_balances (num, flags) VALUES (?, ?)",
                [(num, int(a.flags)) for num, a in numbered],
            )
        return results

    def apply(
        self, submissions: Sequence[Sequence[TransferRequest]], now: datetime
    ) -> list[list[TransferResult]]:
        """Decide and write a batch in one transaction. The ledger writer goes through
        :meth:`decide` and :meth:`commit` instead; this is the path of its retries."""
        with self._transaction() as conn:
            return self.apply_in(conn, submissions, now)

    def apply_in(
        self,
        conn: sqlite3.Connection,
        submissions: Sequence[Sequence[TransferRequest]],
        now: datetime,
    ) -> list[list[TransferResult]]:
        """``apply`` inside a transaction opened by :meth:`unit_of_work`: decided and
        written there, the history index brought up in the same transaction if due."""
        with self._cache_lock:
            if self._ahead:
                # Batches decided ahead rest on balances this one is about to change
                # before they are written: they are decided again at their commit.
                self._forget_accounts()
            results, changes = self._decide(conn, submissions, now, {})
            write(conn, self._writes(changes, now))
            if changes.created:
                self.index_history_in(conn)
            return results

    def decide(self, submissions: Sequence[Sequence[TransferRequest]], now: datetime) -> _Decided:
        """Decide a batch on the caches, on the writer's read connection, while earlier
        batches may still be committing (ADR 0015); :meth:`commit` writes it.

        Transfers created or resolved by batches decided ahead are taken from them, not
        from the file, which does not hold them yet. If the caches were dropped while
        such batches were waiting, this waits until they are committed (each decided
        again), since the file is then the only truth and must hold them first."""

        def make(unsettled: dict[str, Transfer]) -> _Decided:
            results, changes = self._decide(self._decider, submissions, now, unsettled)
            return DecidedBatch.of(submissions, now, results, changes, self._writes(changes, now))

        return self._ahead.decide(self._cache_lock, make, self._forget_accounts)

    def commit(self, decided: Decided) -> list[list[TransferResult]]:
        """Write a batch :meth:`decide` made, in one transaction, after every batch it
        decided before. If the caches were dropped since (a transaction failed, another
        ledger store wrote the file), the batch is decided again in the transaction."""
        assert isinstance(decided, DecidedBatch), "a batch decided by another store"
        try:
            if not decided.submissions and not decided.transfers:
                # An idle writer's expiry tick that found nothing due (read from the
                # file, not the caches): no transaction, so an idle process neither
                # syncs the file every tick nor makes other processes drop their caches.
                return []
            with self._transaction() as conn:
                if decided.void:
                    return self.apply_in(conn, decided.submissions, decided.now)
                write(conn, decided.writes)
        finally:
            self._ahead.settled(decided)
        if decided.transfers:
            self.index_history_behind()
        return decided.results

    def _decide(
        self,
        conn: sqlite3.Connection,
        submissions: Sequence[Sequence[TransferRequest]],
        now: datetime,
        unsettled: dict[str, Transfer],
    ) -> tuple[list[list[TransferResult]], engine.ChangeSet]:
        """Read what the submissions refer to (on ``conn``, and in ``unsettled``: what
        batches decided ahead made of transfers) and decide them on the caches."""
        # Due in the file, unless a batch decided ahead has resolved it already.
        due = [
            t
            for t in (
                unsettled.get(row[0]) or rows.transfer_from_row(row, from_micros)
                for row in conn.execute(
                    f"SELECT {rows.TRANSFER_COLUMNS} FROM transfers "
                    "WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at <= ?",
                    (to_micros(now),),
                )
            )
            if t.status is PendingStatus.PENDING
        ]
        ids = engine.referenced_transfer_ids(submissions)
        loaded = {
            t.id: t
            for t in (
                rows.transfer_from_row(r, from_micros)
                for r in conn.execute(_LOAD_TRANSFERS, (json_array(list(ids)),))
            )
        }
        if unsettled:
            loaded.update((i, unsettled[i]) for i in ids.intersection(unsettled))
        account_ids = engine.referenced_account_ids(submissions, [*loaded.values(), *due])
        state = engine.LedgerState(transfers=loaded)
        self._load_accounts(conn, account_ids, state)
        return engine.apply_batch(submissions, state, now, self.limits, due=due)

    def _writes(self, changes: engine.ChangeSet, now: datetime) -> Writes:
        """The statements that write a batch's changes, with the values as they are now
        (the engine changes cached balances in place, and the next batch will too)."""
        now_us = to_micros(now)
        writes: Writes = []
        if changes.created:
            # A batch shares one recorded_at (and mostly one occurred_at): convert once.
            micros: dict[datetime, int] = {}

            def time_in(when: datetime) -> int:
                found = micros.get(when)
                if found is None:
                    found = micros[when] = to_micros(when)
                return found

            writes += transfer_writes(changes.created, time_in)
        if changes.resolved:
            resolved = [
                (t.status.value if t.status else None, now_us, t.id)
                for t in changes.resolved.values()
            ]
            writes.append((_RESOLVE, json_array(resolved)))
        if changes.balances:
            nums = self._nums
            balances = [
                (b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted, nums[a])
                for a, b in changes.balances.items()
            ]
            writes.append((_SET_BALANCES, json_array(balances)))
        if changes.rejections:
            rejections = [rows.rejection_row(r, to_micros) for r in changes.rejections]
            writes.append((_INSERT_REJECTIONS, json_array(rejections)))
        return writes

    def index_history_behind(self) -> None:
        """Ask the indexer thread to bring the history index up, if it is due."""
        self._indexer.wanted()

    def _index_round(self) -> None:
        """One round of the indexer: the tail after the mark copied into the indexer's
        table in memory, then taken into the history index in ``history_index_pieces``
        ranges of key of about as many entries each (see :meth:`copy_tail`), each a
        transaction of the indexer's own connection, under the file's lock only (it reads
        and changes no cache); then the WAL checkpointed, if it is time."""
        conn = self._index_conn
        mark, last = conn.execute(
            "SELECT indexed_through, (SELECT MAX(seq) FROM transfers) FROM account_postings_mark"
        ).fetchone()
        if last is not None and last - mark >= self.limits.history_index_lag:
            # The copy stays in memory until the next round's copy replaces it.
            for lo, hi in self.copy_tail(conn, mark, last, self.limits.history_index_pieces):
                with immediate(conn):
                    (now,) = conn.execute(_INDEX_MARK).fetchone()
                    if now >= last:
                        break  # a unit of work took them in meanwhile
                    self.index_piece(conn, last, lo, hi)

        every = self.limits.checkpoint_behind_s
        if every and time.monotonic() - self._checkpointed_at >= every:
            # PASSIVE: beside the writers, never in their way (it takes no write lock).
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self._checkpointed_at = time.monotonic()

    @staticmethod
    def copy_tail(
        conn: sqlite3.Connection, mark: int, last: int, pieces: int
    ) -> list[tuple[Key, Key | None]]:
        """Both sides of each transfer after ``mark`` up to ``last``, copied sorted into
        ``conn``'s table in memory (in place of what it held), outside any transaction
        of the file; and the key ranges of ``pieces`` pieces of them, about as many
        entries each, the last one running to the end (see :meth:`index_piece`)."""
        conn.execute(_TAIL_TABLE)
        conn.execute("DELETE FROM temp.tail_entries")
        count = conn.execute(_COPY_TAIL, {"m": mark, "last": last}).rowcount
        step = max(1, -(-count // max(1, pieces)))
        starts = [_FIRST_KEY]
        for at in range(step, count, step):
            a, seq = conn.execute(_PIECE_START, {"at": at}).fetchone()
            starts.append((a, seq))
        return list(zip(starts, [*starts[1:], None], strict=True))

    @staticmethod
    def index_piece(conn: sqlite3.Connection, last: int, lo: Key, hi: Key | None) -> None:
        """The copied entries (:meth:`copy_tail`) with keys from ``lo`` up to ``hi``, into
        the history index; the last piece (``hi`` None) moves the mark to ``last``."""
        hi_a, hi_seq = hi or (None, None)
        conn.execute(_INDEX_PIECE, {"lo": lo[0], "lo_seq": lo[1], "hi": hi_a, "hi_seq": hi_seq})
        if hi is None:
            conn.execute(_SET_INDEX_MARK, (last,))

    def index_history_in(self, conn: sqlite3.Connection) -> None:
        """Bring account_postings up to the last transfer once the tail after its mark is
        ``history_index_lag`` long, in the transaction ``conn`` is in (a
        :meth:`unit_of_work` whose batch made it so), in one piece."""
        (mark,) = conn.execute(_INDEX_MARK).fetchone()
        (last,) = conn.execute("SELECT MAX(seq) FROM transfers").fetchone()
        if last - mark >= self.limits.history_index_lag:
            conn.execute(_INDEX_HISTORY, {"m": mark, "last": last})
            conn.execute(_SET_INDEX_MARK, (last,))

    def _load_accounts(
        self, conn: sqlite3.Connection, account_ids: set[str], state: engine.LedgerState
    ) -> None:
        """Hand the engine the writer's caches, holding every account the batch names.

        No copies: the engine reads definitions and updates balances in place, which is
        what the cache must hold after the commit (and on failure it is dropped).
        """
        accounts = self._accounts
        balances = self._balances
        rules = self._rules
        nums = self._nums
        overflow = len(balances) + len(account_ids) - self.limits.account_cache_max
        if overflow > 0:
            # Forget the longest-held accounts, before this batch's are made sure of; not
            # those a batch decided ahead changed: the file does not hold it yet.
            for aid in self._ahead.evictable(balances, overflow):
                del balances[aid], accounts[aid], rules[aid], nums[aid]
        cold = list(account_ids.difference(balances))
        if cold:
            for row in conn.execute(_LOAD_ACCOUNTS, (json_array(cold),)):
                account, balance = rows.account_from_row(row[1:])
                accounts[account.id] = account
                balances[account.id] = balance
                rules[account.id] = int(account.flags)
                nums[account.id] = row[0]
        state.accounts = accounts
        state.balances = balances
        state.rules = rules

    # -- reads --------------------------------------------------------------------------
    def get_account(self, account_id: str) -> Account | None:
        row = self._one(f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,))
        return rows.account_from_row(row)[0] if row else None

    def balance(self, account_id: str, at: datetime | None = None) -> Balance | None:
        exists = self._one(
            "SELECT debits_pending, debits_posted, credits_pending, credits_posted "
            "FROM accounts WHERE id = ?",
            (account_id,),
        )
        if exists is None:
            return None
        if at is None:
            return rows.balance_from_sums(exists)
        return rows.balance_from_sums(self._one(_BALANCE_AT, {"a": account_id, "t": to_micros(at)}))

    def balances(self, account_ids: Sequence[str]) -> dict[str, Balance]:
        # The ids joined to the table, each a primary-key probe (as SqliteWalletMarks.marked).
        return {
            a: rows.balance_from_sums(sums)
            for a, *sums in self._all(
                "SELECT a.id, a.debits_pending, a.debits_posted, a.credits_pending, "
                "a.credits_posted FROM json_each(?) AS j JOIN accounts AS a ON a.id = j.value",
                (json_array(account_ids),),
            )
        }

    def get_transfer(self, transfer_id: str) -> Transfer | None:
        row = self._one(
            f"SELECT {rows.TRANSFER_COLUMNS} FROM transfers WHERE id = ?", (transfer_id,)
        )
        return rows.transfer_from_row(row, from_micros) if row else None

    def account_transfers(
        self, account_id: str, *, cursor: str | None = None, limit: int = 100
    ) -> Page[Transfer]:
        limit = max(1, min(limit, self.limits.page_max_size))
        params = {"a": account_id, "s": decode_cursor(cursor), "n": fetch_size(limit)}
        found = self._all(_ACCOUNT_TRANSFERS, params)
        return page_from_rows(
            found,
            limit,
            key=lambda r: int(r[0]),
            item=lambda r: rows.transfer_from_row(r[1:], from_micros),
        )

    def balances_by_owner(
        self, owner_kind: OwnerKind, owner_id: str, currency: str | None = None
    ) -> list[tuple[Account, Balance]]:
        sql = f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts WHERE owner_kind = ? AND owner_id = ?"
        params: list[str] = [owner_kind.value, owner_id]
        if currency is not None:
            sql += " AND currency = ?"
            params.append(currency)
        return [rows.account_from_row(r) for r in self._all(sql + " ORDER BY id", params)]

    def balances_by_owners(
        self, owner_kind: OwnerKind, owner_ids: Sequence[str]
    ) -> list[tuple[Account, Balance]]:
        sql = (
            f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts WHERE owner_kind = ? "
            "AND owner_id IN (SELECT value FROM json_each(?)) ORDER BY id"
        )
        found = self._all(sql, (owner_kind.value, json_array(list(owner_ids))))
        return [rows.account_from_row(r) for r in found]

    def rejections(self, *, cursor: str | None = None, limit: int = 100) -> Page[Rejection]:
        limit = max(1, min(limit, self.limits.page_max_size))
        found = self._all(
            "SELECT seq, transfer_id, code, request, rejected_at FROM transfer_rejections "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            (decode_cursor(cursor), fetch_size(limit)),
        )
        return page_from_rows(found, limit, key=lambda r: int(r[0]), item=_rejection)

    def totals_by_currency(self) -> dict[str, Balance]:
        # SQLite's SUM is 64-bit and raises on overflow, and two full accounts already pass
        # it; sum the high and low 32 bits of each (non-negative) figure apart instead.
        figures = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
        parts = ", ".join(f"SUM({f} >> 32), SUM({f} & 4294967295)" for f in figures)
        totals: dict[str, Balance] = {}
        for currency, *sums in self._all(
            f"SELECT currency, {parts} FROM accounts GROUP BY currency"
        ):
            totals[currency] = Balance(
                *((int(sums[i] or 0) << 32) + int(sums[i + 1] or 0) for i in range(0, 8, 2))
            )
        return totals

    def wait_for_history_index(self, timeout: float | None = None) -> bool:
        """Block until the indexer has done what was asked of it so far (tests, tools)."""
        return self._indexer.wait(timeout)

    def close(self) -> None:
        self._indexer.stop()
        self._index_conn.close()
        with self._cache_lock:
            self._decider.close()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
            self._idle.clear()
        with self._write_lock:
            self._write.close()
