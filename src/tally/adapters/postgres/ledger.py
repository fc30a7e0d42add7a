"""The scaled ledger store: PostgreSQL through psycopg 3.

Each batch runs in one transaction that locks the rows it touches in a fixed
order (transfers, then accounts, each sorted by id), so several writer processes
may share one database without lost updates or deadlocks. Constraints in the
schema back up the engine's checks.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from tally.adapters import rows
from tally.adapters.migrate import MIGRATIONS_TABLE, load_migrations
from tally.adapters.postgres.params import ANY_TEXTS, ROWS_OF, rows_of, texts
from tally.kernel.errors import PermanentError, RetryableError, StoreUnavailable
from tally.kernel.limits import LedgerLimits
from tally.ledger import engine
from tally.ledger.codec import request_from_dict
from tally.ledger.model import (
    Account,
    AccountResult,
    Balance,
    OwnerKind,
    Page,
    Rejection,
    ResultCode,
    Transfer,
    TransferRequest,
    TransferResult,
)

_MIGRATION_LOCK = 7_411_001  # pg_advisory_xact_lock key: one migrator at a time
READ_POOL_MAX = 4

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


def connect_kwargs(schema: str | None) -> dict[str, Any]:
    # Lookups by key (``key = ANY(...)``) must use the primary key's index at any table
    # size. Two planner settings see to it (measured: 10-100 ms per settlement batch
    # without them, under 2 ms with them):
    # - psycopg prepares a query it runs often, and PostgreSQL may then keep one generic
    #   plan, made when the table was small: a sequential scan ever slower as it grows.
    #   Plan each execution for its parameters instead.
    # - The default random_page_cost (4) prices an index probe as a disk seek; the working
    #   set here is in memory or on SSD, where 1.1 is the usual figure.
    options = "-c timezone=UTC -c plan_cache_mode=force_custom_plan -c random_page_cost=1.1"
    if schema:
        options += f" -c search_path={schema}"
    return {"options": options}


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


_TRANSFER_COPY = f"COPY transfers ({rows.TRANSFER_COLUMNS}) FROM STDIN"
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


class PostgresLedgerStore:
    def __init__(
        self, dsn: str, limits: LedgerLimits | None = None, *, schema: str | None = None
    ) -> None:
        self.limits = limits or LedgerLimits()
        # Account definitions never change once created: kept, unlike balances, which
        # other writers may change and which are read under lock in every batch.
        self._definitions: dict[str, Account] = {}
        kwargs = connect_kwargs(schema)
        try:
            self._write = psycopg.connect(dsn, **kwargs)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"cannot reach PostgreSQL: {exc}") from exc
        self._write_lock = threading.Lock()
        with self._write_lock:
            migrate(self._write)
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=READ_POOL_MAX,
            kwargs={**kwargs, "autocommit": True},
            open=True,
            name="tally-ledger-read",
        )

    @contextmanager
    def unit_of_work(self) -> Iterator[psycopg.Connection[Any]]:
        """One write transaction, for components that write beside the ledger atomically."""
        with self._transaction() as conn:
            yield conn

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        with self._write_lock:
            conn = self._write
            try:
                with conn.transaction():
                    yield conn
            except _RETRYABLE as exc:
                if conn.closed or conn.broken:
                    raise StoreUnavailable(f"PostgreSQL connection lost: {exc}") from exc
                raise RetryableError(f"ledger batch should be retried: {exc}") from exc
            except psycopg.Error as exc:
                raise PermanentError(f"ledger batch failed in PostgreSQL: {exc}") from exc

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
                conn.execute(
                    f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts "
                    f"WHERE id = {ANY_TEXTS} FOR UPDATE",
                    (texts(ids),),
                ),
            )
        }
        results, new = engine.decide_accounts(accounts, existing, self.limits)
        if new:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO accounts (id, owner_kind, owner_id, currency, purpose, "
                    "flags, metadata, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    [rows.account_row(a, now) for a in new],
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
        """``apply`` inside a transaction opened by :meth:`unit_of_work`."""
        due = [
            rows.transfer_from_row(r, _utc)
            for r in conn.execute(
                f"SELECT {rows.TRANSFER_COLUMNS} FROM transfers WHERE status = 'pending' "
                "AND expires_at IS NOT NULL AND expires_at <= %s ORDER BY id FOR UPDATE",
                (now,),
            )
        ]
        ids = sorted(engine.referenced_transfer_ids(submissions))
        loaded = {
            t.id: t
            for t in (
                rows.transfer_from_row(r, _utc)
                for r in conn.execute(
                    f"SELECT {rows.TRANSFER_COLUMNS} FROM transfers WHERE id = {ANY_TEXTS} "
                    "ORDER BY id FOR UPDATE",
                    (texts(ids),),
                )
            )
        }
        account_ids = sorted(engine.referenced_account_ids(submissions, [*loaded.values(), *due]))
        state = engine.LedgerState(transfers=loaded)
        self._load_accounts(conn, account_ids, state)
        results, changes = engine.apply_batch(submissions, state, now, self.limits, due=due)
        self._write_changes(conn, changes, now)
        return results

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
            f"FROM accounts WHERE id = {ANY_TEXTS} ORDER BY id FOR UPDATE",
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

    def _write_changes(
        self, conn: psycopg.Connection[Any], changes: engine.ChangeSet, now: datetime
    ) -> None:
        with conn.cursor() as cur:
            if changes.created:
                with cur.copy(_TRANSFER_COPY) as copy:
                    for t in changes.created:
                        copy.write_row(rows.transfer_row(t, _same))
            if changes.resolved:
                cur.execute(
                    "UPDATE transfers AS t SET status = v.e->>1, resolved_at = %s "
                    f"FROM {ROWS_OF} AS v(e) WHERE t.id = v.e->>0",
                    (
                        now,
                        rows_of(
                            [
                                (tid, t.status.value if t.status else None)
                                for tid, t in changes.resolved.items()
                            ]
                        ),
                    ),
                )
            if changes.balances:
                cur.execute(
                    "UPDATE accounts AS a SET debits_pending = (v.e->>1)::bigint, "
                    "debits_posted = (v.e->>2)::bigint, credits_pending = (v.e->>3)::bigint, "
                    f"credits_posted = (v.e->>4)::bigint FROM {ROWS_OF} AS v(e) "
                    "WHERE a.id = v.e->>0",
                    (
                        rows_of(
                            [
                                (
                                    a,
                                    b.debits_pending,
                                    b.debits_posted,
                                    b.credits_pending,
                                    b.credits_posted,
                                )
                                for a, b in changes.balances.items()
                            ]
                        ),
                    ),
                )
            if changes.rejections:
                cur.executemany(
                    "INSERT INTO transfer_rejections "
                    "(transfer_id, code, reason, request, rejected_at) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    [rows.rejection_row(r, _same) for r in changes.rejections],
                )

    # -- reads --------------------------------------------------------------------------
    def _read(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        try:
            with self._pool.connection() as conn:
                return conn.execute(sql, params).fetchall()
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"PostgreSQL read failed: {exc}") from exc

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

    def get_transfer(self, transfer_id: str) -> Transfer | None:
        found = self._read(
            f"SELECT {rows.TRANSFER_COLUMNS} FROM transfers WHERE id = %s", (transfer_id,)
        )
        return rows.transfer_from_row(found[0], _utc) if found else None

    def account_transfers(
        self, account_id: str, *, cursor: str | None = None, limit: int = 100
    ) -> Page[Transfer]:
        limit = max(1, min(limit, self.limits.page_max_size))
        after = int(cursor) if cursor else 0
        params = {"a": account_id, "s": after, "n": limit + 1}
        found = self._read(
            f"(SELECT seq, {rows.TRANSFER_COLUMNS} FROM transfers"
            " WHERE debit_account_id = %(a)s AND seq > %(s)s ORDER BY seq LIMIT %(n)s)"
            " UNION ALL"
            f" (SELECT seq, {rows.TRANSFER_COLUMNS} FROM transfers"
            " WHERE credit_account_id = %(a)s AND seq > %(s)s ORDER BY seq LIMIT %(n)s)"
            " ORDER BY seq LIMIT %(n)s",
            params,
        )
        items = [rows.transfer_from_row(r[1:], _utc) for r in found[:limit]]
        return Page(items, str(found[limit - 1][0]) if len(found) > limit else None)

    def balances_by_owner(
        self, owner_kind: OwnerKind, owner_id: str, currency: str | None = None
    ) -> list[tuple[Account, Balance]]:
        sql = f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts WHERE owner_kind = %s AND owner_id = %s"
        params: list[str] = [owner_kind.value, owner_id]
        if currency is not None:
            sql += " AND currency = %s"
            params.append(currency)
        return [rows.account_from_row(r) for r in self._read(sql + " ORDER BY id", params)]

    def rejections(self, *, cursor: str | None = None, limit: int = 100) -> Page[Rejection]:
        limit = max(1, min(limit, self.limits.page_max_size))
        after = int(cursor) if cursor else 0
        found = self._read(
            "SELECT seq, transfer_id, code, request, rejected_at FROM transfer_rejections "
            "WHERE seq > %s ORDER BY seq LIMIT %s",
            (after, limit + 1),
        )
        items = [
            Rejection(tid, ResultCode(code), request_from_dict(json.loads(req)), _utc(at))
            for _, tid, code, req, at in found[:limit]
        ]
        return Page(items, str(found[limit - 1][0]) if len(found) > limit else None)

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
        with self._write_lock:
            self._write.close()
