"""Settlement in PostgreSQL: configuration documents and settlement state."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tally.adapters.postgres.connection import Link, connect_kwargs
from tally.adapters.postgres.ledger import PostgresLedgerStore, migrate
from tally.adapters.postgres.params import ANY_TEXTS, texts
from tally.adapters.sql.settlement_rows import (
    BUCKET_COLUMNS,
    EFFECT_COLUMNS,
    ORPHAN_COLUMNS,
    bucket_values,
    effect_from_row,
    effect_row,
    orphan_from_row,
    orphan_row,
    require_posted,
)
from tally.ledger.model import Account, TransferRequest
from tally.settlement.contracts import Totals
from tally.settlement.engine import BatchOutcome, Bucket, Closing, Effect, OpenFigures
from tally.settlement.periods import Period
from tally.settlement.ports import Orphan, StoredStatement


class PostgresConfigDocuments:
    def __init__(self, dsn: str, *, schema: str | None = None) -> None:
        self._link = Link(dsn, autocommit=True, **connect_kwargs(schema))
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._link.conn, "settlement")

    def get(self, kind: str, key: str) -> Mapping[str, Any] | None:
        with self._lock:
            return self.get_in(self._link.conn, kind, key)

    @contextmanager
    def unit_of_work(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            conn = self._link.conn
            with conn.transaction():
                yield conn

    def get_in(self, tx: psycopg.Connection[Any], kind: str, key: str) -> Mapping[str, Any] | None:
        row = tx.execute(
            "SELECT document FROM settlement_config WHERE kind = %s AND key = %s", (kind, key)
        ).fetchone()
        return dict(row[0]) if row else None

    def insert_in(
        self,
        tx: psycopg.Connection[Any],
        kind: str,
        key: str,
        document: Mapping[str, Any],
        now: datetime,
    ) -> None:
        tx.execute(
            "INSERT INTO settlement_config (kind, key, document, recorded_at) "
            "VALUES (%s, %s, %s, %s)",
            (kind, key, Jsonb(dict(document)), now),
        )

    def all(self, kind: str) -> list[Mapping[str, Any]]:
        with self._lock:
            found = self._link.conn.execute(
                "SELECT document FROM settlement_config WHERE kind = %s ORDER BY seq", (kind,)
            ).fetchall()
        return [dict(doc) for (doc,) in found]

    def revision(self) -> int:
        with self._lock:
            row = self._link.conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM settlement_config"
            ).fetchone()
        assert row is not None
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._link.close()


def _upsert(table: str, columns: str, key: str, placeholders: int) -> str:
    names = [c.strip() for c in columns.split(",")]
    keys = {k.strip() for k in key.split(",")}
    updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in names if n not in keys)
    values = ", ".join(["%s"] * placeholders)
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({values}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _same(value: datetime) -> datetime:
    return value


class PostgresSettlementStore:
    """Settlement state in PostgreSQL, committed in the ledger's transactions."""

    def __init__(self, ledger: PostgresLedgerStore, dsn: str, *, schema: str | None = None) -> None:
        self.ledger = ledger
        self._created: set[str] = set()  # accounts known to exist (committed)
        self._read = Link(dsn, autocommit=True, **connect_kwargs(schema))
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._read.conn, "settlement")

    def _rows(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._read.conn.execute(sql, params).fetchall()

    def load_figures(self) -> OpenFigures:
        figures = OpenFigures()
        for row in self._rows(
            f"SELECT {BUCKET_COLUMNS}, turnover, wins, bonuses, jackpot_contributions "
            "FROM settlement_totals"
        ):
            figures.totals[Bucket(*row[:8])] = Totals(*row[8:])
        for c, v, p, o, period, accrued in self._rows(
            "SELECT contract_id, version, provider, operator, period, accrued "
            "FROM settlement_fee_accrued"
        ):
            figures.fee_accrued[(c, v, p, o, period)] = accrued
        for operator, agent, period, currency, exact, accrued in self._rows(
            "SELECT operator, agent, period, currency, exact, accrued FROM settlement_commissions"
        ):
            figures.commission_exact[(operator, agent, period, currency)] = Decimal(exact)
            figures.commission_accrued[(operator, agent, period, currency)] = accrued
        for contract_id, operator, label, start, end, carried in self._rows(
            "SELECT contract_id, operator, period, period_start, period_end, carried "
            "FROM settlement_closed"
        ):
            key = (contract_id, operator)
            figures.closed[key] = Period(start.astimezone(UTC), end.astimezone(UTC), label)
            figures.carried[key] = carried
        return figures

    def position(self, consumer: str) -> int:
        found = self._rows(
            "SELECT position FROM settlement_positions WHERE consumer = %s", (consumer,)
        )
        return int(found[0][0]) if found else 0

    def load_effects(self, keys: Iterable[str]) -> dict[str, Effect]:
        found = self._rows(
            f"SELECT {EFFECT_COLUMNS} FROM settlement_effects WHERE key = {ANY_TEXTS}",
            (texts(keys),),
        )
        return {row[0]: effect_from_row(row, _utc) for row in found}

    def load_orphans(self, keys: Iterable[str]) -> dict[str, str]:
        return dict(
            self._rows(
                "SELECT original_key, rollback_key FROM settlement_orphans "
                f"WHERE original_key = {ANY_TEXTS}",
                (texts(keys),),
            )
        )

    def _post(
        self,
        conn: psycopg.Connection[Any],
        accounts: Iterable[Account],
        transfers: list[TransferRequest],
        now: datetime,
    ) -> list[str]:
        """Post in the open transaction; returns the ids of the accounts it created, which
        the caller adds to ``_created`` once the transaction committed."""
        # Settlement posts between a few hundred accounts, batch after batch: create only
        # those this store has not seen committed.
        new = [a for a in accounts if a.id not in self._created]
        if new:
            self.ledger.create_accounts_in(conn, new, now)
        [results] = self.ledger.apply_in(conn, [transfers], now)
        require_posted(results)
        return [a.id for a in new]

    def commit_batch(
        self,
        consumer: str,
        position: int,
        out: BatchOutcome,
        figures: OpenFigures,
        now: datetime,
    ) -> None:
        with self.ledger.unit_of_work() as conn, conn.cursor() as cur:
            created = self._post(conn, out.accounts.values(), out.transfers, now)
            if out.effects:
                self._save_effects(cur, out)
            if out.orphans:
                cur.executemany(
                    _upsert("settlement_orphans", ORPHAN_COLUMNS, "original_key", 8),
                    [orphan_row(w, _utc) for w in out.orphans.values()],
                )
            if out.orphans_resolved:
                cur.execute(
                    f"DELETE FROM settlement_orphans WHERE original_key = {ANY_TEXTS}",
                    (texts(out.orphans_resolved),),
                )
            if out.touched:
                cur.executemany(
                    _upsert(
                        "settlement_totals",
                        f"{BUCKET_COLUMNS}, turnover, wins, bonuses, jackpot_contributions",
                        BUCKET_COLUMNS,
                        12,
                    ),
                    [
                        (*bucket_values(b), t.turnover, t.wins, t.bonuses, t.jackpot_contributions)
                        for b in sorted(out.touched)
                        for t in (figures.totals[b],)
                    ],
                )
            # A period's versions share one fee (ADR 0018): a batch may move a version it
            # did not touch.
            fee_groups = {b.group for b in out.touched} | out.fee_groups
            if fee_groups:
                self._save_fees(cur, figures, sorted(fee_groups))
            if out.touched_commissions:
                cur.executemany(
                    _upsert(
                        "settlement_commissions",
                        "operator, agent, period, currency, exact, accrued",
                        "operator, agent, period, currency",
                        6,
                    ),
                    [
                        (*k, figures.commission_exact[k], figures.commission_accrued.get(k, 0))
                        for k in sorted(out.touched_commissions)
                    ],
                )
            if out.problems:
                cur.executemany(
                    "INSERT INTO settlement_problems (event_key, reason, recorded_at) "
                    "VALUES (%s, %s, %s)",
                    [(key, reason, now) for key, reason in out.problems],
                )
            cur.execute(
                _upsert("settlement_positions", "consumer, position", "consumer", 2),
                (consumer, position),
            )
        self._created.update(created)

    @staticmethod
    def _save_effects(cur: psycopg.Cursor[Any], out: BatchOutcome) -> None:
        """A batch's effects (thousands of rows): the new ones by COPY; the few stored
        before (originals a rollback voided) rewritten by an upsert."""
        rewritten = out.rewritten
        with cur.copy(f"COPY settlement_effects ({EFFECT_COLUMNS}) FROM STDIN") as copy:
            for key, effect in out.effects.items():
                if key not in rewritten:
                    copy.write_row(effect_row(effect, _same))
        if rewritten:
            cur.executemany(
                _upsert("settlement_effects", EFFECT_COLUMNS, "key", 17),
                [effect_row(out.effects[key], _same) for key in sorted(rewritten)],
            )

    @staticmethod
    def _save_fees(
        cur: psycopg.Cursor[Any],
        figures: OpenFigures,
        groups: Iterable[tuple[str, int, str, str, str]],
    ) -> None:
        cur.executemany(
            _upsert(
                "settlement_fee_accrued",
                "contract_id, version, provider, operator, period, accrued",
                "contract_id, version, provider, operator, period",
                6,
            ),
            [(*g, figures.fee_accrued[g]) for g in groups if g in figures.fee_accrued],
        )

    def commit_close(
        self,
        closing: Closing,
        figures: OpenFigures,
        now: datetime,
        within: Callable[[psycopg.Connection[Any]], object],
    ) -> None:
        s = closing.statement
        key = (s.terms.contract_id, s.operator)
        period = figures.closed[key]
        with self.ledger.unit_of_work() as conn, conn.cursor() as cur:
            created = self._post(conn, closing.accounts.values(), closing.transfers, now)
            cur.execute(
                _upsert(
                    "settlement_closed",
                    "contract_id, operator, period, period_start, period_end, carried",
                    "contract_id, operator",
                    6,
                ),
                (*key, period.label, period.start, period.end, figures.carried[key]),
            )
            cur.execute(
                "INSERT INTO settlement_statements VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (*key, period.label, s.to_json().decode(), s.to_csv().decode(), s.sha256, now),
            )
            self._save_fees(
                cur,
                figures,
                [
                    g
                    for g in figures.fee_accrued
                    if g[0] == key[0] and g[3:] == (key[1], period.label)
                ],
            )
            within(conn)
        self._created.update(created)

    def statements(self) -> list[StoredStatement]:
        return [
            StoredStatement(c, o, p, sha, doc.encode(), text.encode(), at.astimezone(UTC))
            for c, o, p, sha, doc, text, at in self._rows(
                "SELECT contract_id, operator, period, sha256, document, csv, closed_at "
                "FROM settlement_statements ORDER BY contract_id, operator, period"
            )
        ]

    def orphans(self) -> list[Orphan]:
        closed = {
            (contract_id, operator): Period(start.astimezone(UTC), end.astimezone(UTC), label)
            for contract_id, operator, label, start, end in self._rows(
                "SELECT contract_id, operator, period, period_start, period_end "
                "FROM settlement_closed"
            )
        }
        return [
            Orphan(w, w.outlived_close(closed))
            for row in self._rows(
                f"SELECT {ORPHAN_COLUMNS} FROM settlement_orphans "
                "ORDER BY original_key, rollback_key"
            )
            for w in (orphan_from_row(row, _utc),)
        ]

    def problems(self) -> list[tuple[str, str, datetime]]:
        return [
            (key, reason, at.astimezone(UTC))
            for key, reason, at in self._rows(
                "SELECT event_key, reason, recorded_at FROM settlement_problems ORDER BY seq"
            )
        ]

    def close(self) -> None:
        with self._lock:
            self._read.close()
