"""The scaled ledger store: PostgreSQL through psycopg 3.

The ledger writer decides each batch on its cached balances, on a read connection of
its own, while the batch before it commits (ADR 0015, ADR 0016), and writes it with
compare-and-set: each account's balances, and each pending transfer's status, change
only if they are still what the decision read. Several writer processes may share one
database: a writer that finds a value changed under it rolls the batch back, drops its
caches, and the batch is decided again in one transaction that locks the rows it
touches in a fixed order (transfers, then accounts, each sorted by id), without lost
updates or deadlocks. That one-step path (:meth:`apply`) is also the writer's retry.
Constraints in the schema back up the engine's checks.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from tally.adapters.ahead import BatchesAhead, DecidedBatch
from tally.adapters.postgres.connection import Link, connect_kwargs, pool
from tally.adapters.postgres.params import ANY_TEXTS, ROWS_OF, rows_of, texts
from tally.adapters.sql import rows
from tally.adapters.sql.ledger import AuditedWrites
from tally.adapters.sql.migrate import MIGRATIONS_TABLE, load_migrations
from tally.kernel.errors import PermanentError, RetryableError, StoreUnavailable
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
    TransferRequest,
    TransferResult,
)
from tally.ledger.ports import Decided

_MIGRATION_LOCK = 7_411_001  # pg_advisory_xact_lock key: one migrator at a time
READ_POOL_MAX = 4
# Write connections: a batch copies its transfers on one while the batch before it
# updates balances and commits on the other (ADR 0016).
COMMIT_LANES = 2
WRITE_LOCK_TIMEOUT = "10s"

_RETRYABLE = (
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
    pg_errors.UniqueViolation,  # a concurrent writer inserted the same id: retry sees EXISTS
    pg_errors.LockNotAvailable,
    psycopg.OperationalError,
)


def _same(value: datetime) -> datetime:
    return value


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _rejection(row: Sequence[Any]) -> Rejection:
    _, tid, code, req, at = row
    return Rejection(tid, ResultCode(code), request_from_dict(json.loads(req)), _utc(at))


def migrate(conn: psycopg.Connection[Any], component: str = "ledger") -> list[int]:
    """Apply a component's missing migrations under an advisory lock (one migrator at a time)."""
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(MIGRATIONS_TABLE)
        done = {
            v
            for (v,) in conn.execute(
                "SELECT version FROM schema_migrations WHERE component = %s", (component,)
            )
        }
        for migration in load_migrations("tally.adapters.postgres.migrations", component):
            if migration.version in done:
                continue
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                (component, migration.version, migration.name),
            )
            applied.append(migration.version)
    return applied


# Transfers are copied in PostgreSQL's binary format: psycopg writes each value from its
# declared type without text formatting, and the server parses no text (measured on
# 16,000 rows: 1.2 µs of Python a row against 6.3, and 2 µs less of the server's).
_TRANSFER_COPY = f"COPY transfers ({rows.TRANSFER_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_TRANSFER_TYPES = [
    "text",  # id
    "text",  # kind
    "text",  # debit_account_id
    "text",  # credit_account_id
    "int8",  # amount
    "text",  # currency
    "text",  # code
    "text",  # pending_id
    "int4",  # timeout_s
    "timestamptz",  # expires_at
    "text",  # status
    "timestamptz",  # resolved_at
    "timestamptz",  # occurred_at
    "timestamptz",  # recorded_at
    "text",  # event_ref
    "text",  # metadata
]


def copy_transfers(cur: psycopg.Cursor[Any], transfer_rows: Iterable[Sequence[Any]]) -> None:
    """Insert transfers, as ``rows.transfer_row`` makes them, in one binary ``COPY``."""
    with cur.copy(_TRANSFER_COPY) as copy:
        copy.set_types(_TRANSFER_TYPES)
        for row in transfer_rows:
            copy.write_row(row)


_DUE = (
    f"SELECT {rows.TRANSFER_COLUMNS} FROM transfers WHERE status = 'pending' "
    "AND expires_at IS NOT NULL AND expires_at <= %s ORDER BY id"
)
_LOAD_TRANSFERS = (
    f"SELECT {rows.TRANSFER_COLUMNS} FROM transfers WHERE id = {ANY_TEXTS} ORDER BY id"
)
# Compare-and-set (ADR 0016): a row changes only if it is still what the decision read.
# Both paths write this way; under the one-step path's row locks it always matches.
_RESOLVE_IF_PENDING = (
    "UPDATE transfers AS t SET status = v.e->>1, resolved_at = %s "
    f"FROM {ROWS_OF} AS v(e) WHERE t.id = v.e->>0 AND t.status = 'pending'"
)
_SET_BALANCES_IF_SAME = (
    "UPDATE account_balances AS a SET debits_pending = v.dp, debits_posted = v.dq, "
    "credits_pending = v.cp, credits_posted = v.cq FROM json_to_recordset(%s::json) "
    "AS v(id text, dp bigint, dq bigint, cp bigint, cq bigint, "
    "odp bigint, odq bigint, ocp bigint, ocq bigint) WHERE a.id = v.id "
    "AND a.debits_pending = v.odp AND a.debits_posted = v.odq "
    "AND a.credits_pending = v.ocp AND a.credits_posted = v.ocq"
)
_INSERT_REJECTION = (
    "INSERT INTO transfer_rejections (transfer_id, code, reason, request, rejected_at) "
    "VALUES (%s, %s, %s, %s, %s)"
)
_BALANCE_AT = """
SELECT
  SUM(CASE WHEN debit_account_id = %(a)s AND kind = 'pending'
           AND (resolved_at IS NULL OR resolved_at > %(t)s) THEN amount END),
  SUM(CASE WHEN debit_account_id = %(a)s AND kind IN ('single', 'post') THEN amount END),
  SUM(CASE WHEN credit_account_id = %(a)s AND kind = 'pending'
           AND (resolved_at IS NULL OR resolved_at > %(t)s) THEN amount END),
  SUM(CASE WHEN credit_account_id = %(a)s AND kind IN ('single', 'post') THEN amount END)
FROM (
  SELECT * FROM transfers WHERE debit_account_id = %(a)s AND recorded_at <= %(t)s
  UNION ALL
  SELECT * FROM transfers WHERE credit_account_id = %(a)s AND recorded_at <= %(t)s
) AS mine
"""


@dataclass(frozen=True, slots=True)
class _Writes:
    """What a batch decided ahead writes: rows to copy, and statements with the JSON
    parameter each compares and sets, and how many rows each must change."""

    now: datetime
    created: list[tuple[Any, ...]]
    resolved: tuple[str, int] | None
    balances: tuple[str, int] | None
    rejections: list[tuple[Any, ...]]


Figures = tuple[int, int, int, int]  # an account's balances, as the engine read them


def _figures(b: Balance) -> Figures:
    return (b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted)


def _balance_values(account_id: str, new: Figures, old: Figures) -> dict[str, Any]:
    """One row of ``_SET_BALANCES_IF_SAME``: the new figures and, to compare, the old."""
    dp, dq, cp, cq = new
    odp, odq, ocp, ocq = old
    return {
        "id": account_id,
        "dp": dp,
        "dq": dq,
        "cp": cp,
        "cq": cq,
        "odp": odp,
        "odq": odq,
        "ocp": ocp,
        "ocq": ocq,
    }


def _read_figures(state: engine.LedgerState, account_ids: set[str]) -> dict[str, Figures]:
    """The balances a decision is about to read: figures, not the objects, which the
    engine changes in place."""
    balances = state.balances
    return {a: _figures(balances[a]) for a in account_ids if a in balances}


def _set(cur: psycopg.Cursor[Any], writes: _Writes) -> None:
    """Resolve pendings and set balances where they are still what was read, and keep
    the refusals: every write of a batch but its transfers."""
    if writes.resolved:
        values, count = writes.resolved
        cur.execute(_RESOLVE_IF_PENDING, (writes.now, values))
        _expect(cur.rowcount, count, "pending transfers")
    if writes.balances:
        values, count = writes.balances
        cur.execute(_SET_BALANCES_IF_SAME, (values,))
        _expect(cur.rowcount, count, "accounts")
    if writes.rejections:
        cur.executemany(_INSERT_REJECTION, writes.rejections)


def _expect(changed: int, expected: int, what: str) -> None:
    if changed != expected:
        raise RetryableError(
            f"{expected - changed} of {expected} {what} were changed by another writer "
            "since the batch was decided"
        )


class _Turns:
    """The order of the store's writes (ADR 0016).

    Each batch decided ahead takes a turn when it is decided. Its commit begins in its
    turn's order, on write connection turn mod ``lanes`` once the turn that used it last
    has ended; it copies its transfers at once, sets balances once the turn before it
    has ended, and ends in order. So two batches write at once, and take effect in the
    order they were decided.

    Every other write (one step: retries, batches decided again, settlement's units of
    work, new accounts) runs *alone*: once no batch is writing as decided, with new ones
    held back meanwhile. It never waits for a turn: a batch decided ahead is voided by a
    one-step write in between (the caches change under it) and then itself decided again
    alone, in any order, since each is decided from the database anew.
    """

    def __init__(self, lanes: int) -> None:
        self.lanes = lanes
        self._next = 0
        self._started = -1  # turns begin in order
        self._ended = -1  # and end in order
        self._writing = 0  # batches writing as decided (between begin and leave)
        self._alone = False
        self._waiting_alone = 0
        self._changed = threading.Condition()

    def take(self) -> int:
        with self._changed:
            turn = self._next
            self._next += 1
            return turn

    def begin(self, decided: DecidedBatch[Any]) -> bool:
        """Begin a batch's commit in its turn's order: True if it is to write as
        decided (then it counts as writing until :meth:`leave`), False if it is void."""
        turn = decided.turn

        def ready() -> bool:
            if self._started != turn - 1:
                return False
            if decided.void:
                return True
            lane_free = self._ended >= turn - self.lanes
            return lane_free and not self._alone and not self._waiting_alone

        with self._changed:
            self._changed.wait_for(ready)
            self._started = turn
            self._changed.notify_all()  # the next turn may begin now
            if decided.void:
                return False
            self._writing += 1
            return True

    def wait_turn(self, decided: DecidedBatch[Any]) -> None:
        """Until the turn before this batch's has ended, or the batch is void."""
        with self._changed:
            self._changed.wait_for(lambda: self._ended >= decided.turn - 1 or decided.void)

    def leave(self) -> None:
        """The batch no longer writes as decided (committed, failed, or found void)."""
        with self._changed:
            self._writing -= 1
            self._changed.notify_all()

    def end(self, turn: int) -> None:
        """Turn ``turn`` has ended, once the one before it has."""
        with self._changed:
            self._changed.wait_for(lambda: self._ended == turn - 1)
            self._ended = turn
            self._changed.notify_all()

    @contextmanager
    def alone(self) -> Iterator[None]:
        """A one-step write: once no batch writes as decided and no other runs alone."""
        with self._changed:
            self._waiting_alone += 1
            try:
                self._changed.wait_for(lambda: not self._alone and not self._writing)
            finally:
                self._waiting_alone -= 1
            self._alone = True
        try:
            yield
        finally:
            with self._changed:
                self._alone = False
                self._changed.notify_all()

    def notify(self) -> None:
        """Batches were voided: those waiting for their turn go on."""
        with self._changed:
            self._changed.notify_all()


class PostgresLedgerStore(AuditedWrites):
    commit_lanes = COMMIT_LANES

    def __init__(
        self, dsn: str, limits: LedgerLimits | None = None, *, schema: str | None = None
    ) -> None:
        self.limits = limits or LedgerLimits()
        # The writer's view of the accounts it has met, three dicts with the same keys:
        # definitions (which never change), balances as this writer last decided them,
        # and balance rules. Balances are trusted only as far as compare-and-set finds
        # them unchanged at each commit; a failed transaction drops them.
        self._definitions: dict[str, Account] = {}
        self._balances: dict[str, Balance] = {}
        self._rules: dict[str, int] = {}
        # Held by whoever reads or changes the caches: the writer deciding, a one-step
        # write (inside its turn to run alone), a failed transaction dropping them.
        self._cache_lock = threading.RLock()
        self._ahead: BatchesAhead[_Writes] = BatchesAhead()
        kwargs = connect_kwargs(schema)
        # A write that waits for a row lock longer than this fails (retryably). Turns wait
        # for each other outside PostgreSQL, where its deadlock detector cannot see: a
        # batch copying ahead of its turn and the one-step write before it, inserting the
        # same transfer id, would otherwise wait for each other for good.
        lanes = {**kwargs, "options": f"{kwargs['options']} -c lock_timeout={WRITE_LOCK_TIMEOUT}"}
        # Each opened again once lost (a failed transaction drops the caches, see
        # _failing), so a restarted server costs the batches under way a retry.
        self._lanes = [Link(dsn, **lanes) for _ in range(COMMIT_LANES)]
        # The writer's own read connection, on which it decides batches ahead.
        self._decider = Link(dsn, autocommit=True, **kwargs)
        self._turns = _Turns(COMMIT_LANES)
        migrate(self._lanes[0].conn)
        self._pool = pool(dsn, max_size=READ_POOL_MAX, name="tally-ledger-read", **kwargs)

    @contextmanager
    def unit_of_work(self) -> Iterator[psycopg.Connection[Any]]:
        """One write transaction, for components that write beside the ledger atomically."""
        with self._transaction() as conn:
            yield conn

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A one-step write transaction, alone (see :class:`_Turns`)."""
        with self._turns.alone():
            conn = self._lanes[0].conn
            with self._failing(conn), conn.transaction():
                yield conn

    @contextmanager
    def _failing(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        """What a failed write transaction means: its error as the writer's kind, and the
        caches dropped (the engine may have changed cached balances in place)."""
        try:
            yield
        except BaseException as exc:
            self._forget_accounts()
            if conn.closed or conn.broken:
                raise StoreUnavailable(f"PostgreSQL connection lost: {exc}") from exc
            if isinstance(exc, _RETRYABLE):
                raise RetryableError(f"ledger batch should be retried: {exc}") from exc
            if isinstance(exc, psycopg.Error):
                raise PermanentError(f"ledger batch failed in PostgreSQL: {exc}") from exc
            raise

    def _forget_accounts(self) -> None:
        """Drop the cached balances; every batch decided ahead on them is decided again
        when its turn to commit comes."""
        with self._cache_lock:
            self._balances.clear()
            self._rules.clear()
            self._ahead.void_all()
        self._turns.notify()

    # -- writes -------------------------------------------------------------------------
    def create_accounts(self, accounts: Sequence[Account], now: datetime) -> list[AccountResult]:
        with self._transaction() as conn:
            return self.create_accounts_in(conn, accounts, now)

    def create_accounts_in(
        self, conn: psycopg.Connection[Any], accounts: Sequence[Account], now: datetime
    ) -> list[AccountResult]:
        """``create_accounts`` inside a transaction opened by :meth:`unit_of_work`."""
        ids = [a.id for a in accounts if isinstance(a.id, str)]
        existing = {
            account.id: account
            for account, _ in map(
                rows.account_from_row,
                # No lock: definitions never change, and a writer creating the same
                # account meanwhile makes this insert fail retryably.
                conn.execute(
                    f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts WHERE id = {ANY_TEXTS}",
                    (texts(ids),),
                ),
            )
        }
        results, new = engine.decide_accounts(accounts, existing, self.limits)
        if new:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO account_definitions (id, owner_kind, owner_id, currency, "
                    "purpose, flags, metadata, created_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    [rows.account_row(a, now) for a in new],
                )
                cur.executemany(
                    "INSERT INTO account_balances (id, flags) VALUES (%s, %s)",
                    [(a.id, int(a.flags)) for a in new],
                )
        return results

    def apply(
        self, submissions: Sequence[Sequence[TransferRequest]], now: datetime
    ) -> list[list[TransferResult]]:
        with self._transaction() as conn:
            return self.apply_in(conn, submissions, now)

    def apply_in(
        self,
        conn: psycopg.Connection[Any],
        submissions: Sequence[Sequence[TransferRequest]],
        now: datetime,
    ) -> list[list[TransferResult]]:
        """``apply`` inside a transaction opened by :meth:`unit_of_work`: the rows the
        batch touches are locked and read, then decided and written."""
        with self._cache_lock:
            if self._ahead:
                # Batches decided ahead rest on balances this one is about to change
                # before they are written: they are decided again at their commit.
                self._forget_accounts()
            due, loaded, account_ids = self._read_batch(conn, submissions, now, lock=True)
            state = engine.LedgerState(transfers=loaded)
            self._load_accounts(conn, sorted(account_ids), state)
            read = _read_figures(state, account_ids)
            results, changes = engine.apply_batch(submissions, state, now, self.limits, due=due)
            writes = self._writes(changes, read, now)
            with conn.cursor() as cur:
                if writes.created:
                    copy_transfers(cur, writes.created)
                _set(cur, writes)  # compared to what was read under lock: it matches
            # Read under lock and written here: the truth once this commits (and dropped
            # if it does not).
            self._balances.update(state.balances)
            self._rules.update(state.rules)
            return results

    def decide(
        self, submissions: Sequence[Sequence[TransferRequest]], now: datetime
    ) -> DecidedBatch[_Writes]:
        """Decide a batch on the cached balances, on the writer's read connection, while
        earlier batches may still be committing (ADR 0015, ADR 0016); :meth:`commit`
        writes it. Nothing is locked: the commit compares and sets."""

        def make(unsettled: dict[str, Transfer]) -> DecidedBatch[_Writes]:
            results, changes, read = self._decide(submissions, now, unsettled)
            writes = self._writes(changes, read, now)
            decided = DecidedBatch.of(submissions, now, results, changes, writes)
            decided.turn = self._turns.take()  # last: a turn taken must end, in commit
            return decided

        return self._ahead.decide(self._cache_lock, make, self._forget_accounts)

    def commit(self, decided: Decided) -> list[list[TransferResult]]:
        """Write a batch :meth:`decide` made, in one transaction, in its turn: its
        transfers are copied while the batch before may still be writing, its balances
        set once that one has ended (ADR 0016). If the caches were dropped since it was
        decided, it is decided again in its transaction. If another writer changed what
        it read, the transaction fails retryably (and the writer retries it in one step)."""
        assert isinstance(decided, DecidedBatch), "a batch decided by another store"
        turns = self._turns
        try:
            if turns.begin(decided):
                try:
                    lane = self._lanes[decided.turn % COMMIT_LANES]
                    if self._write_decided(lane.conn, decided):
                        return decided.results
                finally:
                    turns.leave()
            with turns.alone():
                conn = self._lanes[0].conn
                with self._failing(conn), conn.transaction():
                    return self.apply_in(conn, decided.submissions, decided.now)
        finally:
            turns.end(decided.turn)
            self._ahead.settled(decided)

    def _write_decided(self, conn: psycopg.Connection[Any], decided: DecidedBatch[_Writes]) -> bool:
        """Write the batch as decided; False if, by its turn, it was found void (the batch
        before it failed, or the caches were dropped): then nothing is written."""
        writes = decided.writes
        with self._failing(conn), conn.transaction(), conn.cursor() as cur:
            if writes.created:
                copy_transfers(cur, writes.created)
            self._turns.wait_turn(decided)
            if decided.void:
                raise psycopg.Rollback()
            _set(cur, writes)
            return True
        return False

    def _decide(
        self,
        submissions: Sequence[Sequence[TransferRequest]],
        now: datetime,
        unsettled: dict[str, Transfer],
    ) -> tuple[list[list[TransferResult]], engine.ChangeSet, dict[str, Figures]]:
        """Read what the submissions refer to (in ``unsettled``, what batches decided
        ahead made of transfers, else in the database) and decide them on the caches.
        Also returns the balances the decision read, for the commit to compare."""
        conn = self._decider.conn
        due, loaded, account_ids = self._read_batch(conn, submissions, now, unsettled=unsettled)
        state = engine.LedgerState(transfers=loaded)
        self._cached_accounts(conn, account_ids, state)
        read = _read_figures(state, account_ids)
        results, changes = engine.apply_batch(submissions, state, now, self.limits, due=due)
        return results, changes, read

    def _read_batch(
        self,
        conn: psycopg.Connection[Any],
        submissions: Sequence[Sequence[TransferRequest]],
        now: datetime,
        *,
        lock: bool = False,
        unsettled: dict[str, Transfer] | None = None,
    ) -> tuple[list[Transfer], dict[str, Transfer], set[str]]:
        """The pending transfers due to expire, the transfers the submissions name (by
        their own ids and their pending ids), and the accounts all of those name. Read
        under row locks (in id order) for the one-step path; else taken from
        ``unsettled`` (what batches decided ahead made of transfers) before the table."""
        unsettled = unsettled or {}
        suffix = " FOR UPDATE" if lock else ""
        due = [
            t
            for t in (
                unsettled.get(r[0]) or rows.transfer_from_row(r, _utc)
                for r in conn.execute(_DUE + suffix, (now,))
            )
            if t.status is PendingStatus.PENDING
        ]
        ids = engine.referenced_transfer_ids(submissions)
        loaded = {
            t.id: t
            for t in (
                rows.transfer_from_row(r, _utc)
                for r in conn.execute(_LOAD_TRANSFERS + suffix, (texts(sorted(ids)),))
            )
        }
        if unsettled:
            loaded.update((i, unsettled[i]) for i in ids.intersection(unsettled))
        account_ids = engine.referenced_account_ids(submissions, [*loaded.values(), *due])
        return due, loaded, account_ids

    def _cached_accounts(
        self, conn: psycopg.Connection[Any], account_ids: set[str], state: engine.LedgerState
    ) -> None:
        """Hand the engine the caches, holding every account the batch names (those not
        cached are read, without a lock). No copies: the engine updates balances in
        place, which is what the cache must hold after the commit."""
        balances = self._balances
        definitions = self._definitions
        rules = self._rules
        overflow = len(balances) + len(account_ids) - self.limits.account_cache_max
        if overflow > 0:
            # Forget the longest-held accounts; not those a batch decided ahead changed.
            for aid in self._ahead.evictable(balances, overflow):
                del balances[aid], rules[aid]
                definitions.pop(aid, None)
        cold = [a for a in account_ids if a not in balances or a not in definitions]
        if cold:
            for row in conn.execute(
                f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts WHERE id = {ANY_TEXTS}",
                (texts(cold),),
            ):
                account, balance = rows.account_from_row(row)
                definitions[account.id] = account
                balances[account.id] = balance
                rules[account.id] = int(account.flags)
        state.accounts = definitions
        state.balances = balances
        state.rules = rules

    def _writes(
        self, changes: engine.ChangeSet, read: dict[str, Figures], now: datetime
    ) -> _Writes:
        """The batch's writes, each row guarded by what the decision read. Accounts of
        refused transfers are compared too (set to what they were): a refusal for want
        of funds must rest on the balance as it is, not on a cache another writer has
        made stale."""
        compared = dict.fromkeys(changes.balances)
        for rejection in changes.rejections:
            request = rejection.request
            for aid in (request.debit_account_id, request.credit_account_id):
                if isinstance(aid, str) and aid in read:
                    compared[aid] = None
        balances = changes.balances
        values = [
            _balance_values(a, _figures(balances[a]) if a in balances else read[a], read[a])
            for a in compared
        ]
        resolved = [
            [tid, t.status.value if t.status else None] for tid, t in changes.resolved.items()
        ]
        return _Writes(
            now,
            [rows.transfer_row(t, _same) for t in changes.created],
            (rows_of(resolved), len(resolved)) if resolved else None,
            (rows_of(values), len(values)) if values else None,
            [rows.rejection_row(r, _same) for r in changes.rejections],
        )

    def _load_accounts(
        self, conn: psycopg.Connection[Any], account_ids: list[str], state: engine.LedgerState
    ) -> None:
        """Lock the batch's accounts (in id order) and read their balances; definitions,
        which never change, come from the cache, and from the table the first time."""
        definitions = self._definitions
        balances = state.balances
        rules = state.rules
        for aid, flags, dpend, dpost, cpend, cpost in conn.execute(
            "SELECT id, flags, debits_pending, debits_posted, credits_pending, credits_posted "
            f"FROM account_balances WHERE id = {ANY_TEXTS} ORDER BY id FOR UPDATE",
            (texts(account_ids),),
        ):
            balances[aid] = Balance(dpend, dpost, cpend, cpost)
            rules[aid] = flags
        unknown = [a for a in balances if a not in definitions]
        if unknown:
            if len(definitions) + len(unknown) > self.limits.account_cache_max:
                definitions.clear()
                unknown = list(balances)
            for row in conn.execute(
                f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts WHERE id = {ANY_TEXTS}",
                (texts(unknown),),
            ):
                account = rows.account_from_row(row)[0]
                definitions[account.id] = account
        state.accounts = definitions

    # -- reads --------------------------------------------------------------------------
    def _read(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """A read on a pooled connection. One the server dropped (a restart) fails it and
        is discarded by the pool; the read, which repeats safely, runs again on another.
        (Checking each connection before lending it cost a round trip a read: 180 µs
        a balance instead of 110.)"""
        for _ in range(READ_POOL_MAX + 1):  # every pooled one lost, then a new one
            lent: psycopg.Connection[Any] | None = None
            try:
                with self._pool.connection() as lent:
                    return lent.execute(sql, params).fetchall()
            except psycopg.OperationalError as exc:
                if lent is None or not lent.broken:
                    raise StoreUnavailable(f"PostgreSQL read failed: {exc}") from exc
                lost = exc
        raise StoreUnavailable(f"PostgreSQL read failed: {lost}") from lost

    def get_account(self, account_id: str) -> Account | None:
        found = self._read(
            f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts WHERE id = %s", (account_id,)
        )
        return rows.account_from_row(found[0])[0] if found else None

    def balance(self, account_id: str, at: datetime | None = None) -> Balance | None:
        found = self._read(
            "SELECT debits_pending, debits_posted, credits_pending, credits_posted "
            "FROM accounts WHERE id = %s",
            (account_id,),
        )
        if not found:
            return None
        if at is None:
            return rows.balance_from_sums(found[0])
        sums = self._read(_BALANCE_AT, {"a": account_id, "t": at})
        return rows.balance_from_sums(sums[0])

    def balances(self, account_ids: Sequence[str]) -> dict[str, Balance]:
        return {
            a: rows.balance_from_sums(sums)
            for a, *sums in self._read(
                "SELECT id, debits_pending, debits_posted, credits_pending, credits_posted "
                "FROM accounts WHERE id = ANY(%s)",
                (list(account_ids),),
            )
        }

    def get_transfer(self, transfer_id: str) -> Transfer | None:
        found = self._read(
            f"SELECT {rows.TRANSFER_COLUMNS} FROM transfers WHERE id = %s", (transfer_id,)
        )
        return rows.transfer_from_row(found[0], _utc) if found else None

    def account_transfers(
        self, account_id: str, *, cursor: str | None = None, limit: int = 100
    ) -> Page[Transfer]:
        limit = max(1, min(limit, self.limits.page_max_size))
        params = {"a": account_id, "s": decode_cursor(cursor), "n": fetch_size(limit)}
        found = self._read(
            f"(SELECT seq, {rows.TRANSFER_COLUMNS} FROM transfers"
            " WHERE debit_account_id = %(a)s AND seq > %(s)s ORDER BY seq LIMIT %(n)s)"
            " UNION ALL"
            f" (SELECT seq, {rows.TRANSFER_COLUMNS} FROM transfers"
            " WHERE credit_account_id = %(a)s AND seq > %(s)s ORDER BY seq LIMIT %(n)s)"
            " ORDER BY seq LIMIT %(n)s",
            params,
        )
        return page_from_rows(
            found,
            limit,
            key=lambda r: int(r[0]),
            item=lambda r: rows.transfer_from_row(r[1:], _utc),
        )

    def balances_by_owner(
        self, owner_kind: OwnerKind, owner_id: str, currency: str | None = None
    ) -> list[tuple[Account, Balance]]:
        sql = f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts WHERE owner_kind = %s AND owner_id = %s"
        params: list[str] = [owner_kind.value, owner_id]
        if currency is not None:
            sql += " AND currency = %s"
            params.append(currency)
        return [rows.account_from_row(r) for r in self._read(sql + " ORDER BY id", params)]

    def balances_by_owners(
        self, owner_kind: OwnerKind, owner_ids: Sequence[str]
    ) -> list[tuple[Account, Balance]]:
        sql = (
            f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts WHERE owner_kind = %s "
            f"AND owner_id = {ANY_TEXTS} ORDER BY id"
        )
        found = self._read(sql, (owner_kind.value, texts(owner_ids)))
        return [rows.account_from_row(r) for r in found]

    def rejections(self, *, cursor: str | None = None, limit: int = 100) -> Page[Rejection]:
        limit = max(1, min(limit, self.limits.page_max_size))
        found = self._read(
            "SELECT seq, transfer_id, code, request, rejected_at FROM transfer_rejections "
            "WHERE seq > %s ORDER BY seq LIMIT %s",
            (decode_cursor(cursor), fetch_size(limit)),
        )
        return page_from_rows(found, limit, key=lambda r: int(r[0]), item=_rejection)

    def totals_by_currency(self) -> dict[str, Balance]:
        return {
            currency: rows.balance_from_sums(sums)
            for currency, *sums in self._read(
                "SELECT currency, SUM(debits_pending), SUM(debits_posted), "
                "SUM(credits_pending), SUM(credits_posted) FROM accounts GROUP BY currency"
            )
        }

    def close(self) -> None:
        self._pool.close()
        with self._cache_lock:
            self._decider.close()
        for lane in self._lanes:
            lane.close()
