"""Settlement state in the embedded SQLite file, as functions over an open transaction.

The settlement worker calls these inside the same transaction as its ledger writes
and its log position, so a crash at any instant leaves all three consistent.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from tally.adapters.sql.settlement_rows import (
    BUCKET_COLUMNS,
    EFFECT_COLUMNS,
    ORPHAN_COLUMNS,
    bucket_values,
    effect_from_row,
    effect_row,
    orphan_from_row,
    orphan_row,
)
from tally.kernel.clock import from_micros, to_micros
from tally.settlement.contracts import Totals
from tally.settlement.engine import BatchOutcome, Bucket, Effect, OpenFigures
from tally.settlement.periods import Period
from tally.settlement.ports import Orphan, StoredStatement
from tally.settlement.statements import Statement


def load_effects(conn: sqlite3.Connection, keys: Iterable[str]) -> dict[str, Effect]:
    found = conn.execute(
        f"SELECT {EFFECT_COLUMNS} FROM settlement_effects "
        "WHERE key IN (SELECT value FROM json_each(?))",
        (json.dumps(list(keys)),),
    ).fetchall()
    return {row[0]: effect_from_row(row, from_micros) for row in found}


def load_orphans(conn: sqlite3.Connection, keys: Iterable[str]) -> dict[str, str]:
    return dict(
        conn.execute(
            "SELECT original_key, rollback_key FROM settlement_orphans "
            "WHERE original_key IN (SELECT value FROM json_each(?))",
            (json.dumps(list(keys)),),
        ).fetchall()
    )


def orphans(conn: sqlite3.Connection) -> list[Orphan]:
    closed = {
        (contract_id, operator): Period(from_micros(start), from_micros(end), label)
        for contract_id, operator, label, start, end in conn.execute(
            "SELECT contract_id, operator, period, period_start, period_end FROM settlement_closed"
        )
    }
    return [
        Orphan(w, w.outlived_close(closed))
        for row in conn.execute(f"SELECT {ORPHAN_COLUMNS} FROM settlement_orphans ORDER BY 1, 2")
        for w in (orphan_from_row(row, from_micros),)
    ]


def load_figures(conn: sqlite3.Connection) -> OpenFigures:
    figures = OpenFigures()
    for row in conn.execute(
        f"SELECT {BUCKET_COLUMNS}, turnover, wins, bonuses, jackpot_contributions "
        "FROM settlement_totals"
    ):
        figures.totals[Bucket(*row[:8])] = Totals(*row[8:])
    for *group, accrued in conn.execute("SELECT * FROM settlement_fee_accrued"):
        contract_id, version, provider, operator, period = group
        figures.fee_accrued[(contract_id, version, provider, operator, period)] = accrued
    for operator, agent, period, currency, exact, accrued in conn.execute(
        "SELECT * FROM settlement_commissions"
    ):
        key = (operator, agent, period, currency)
        figures.commission_exact[key] = Decimal(exact)
        figures.commission_accrued[key] = accrued
    for contract_id, operator, label, start, end, carried in conn.execute(
        "SELECT * FROM settlement_closed"
    ):
        figures.closed[(contract_id, operator)] = Period(
            from_micros(start), from_micros(end), label
        )
        figures.carried[(contract_id, operator)] = carried
    return figures


def save_batch(conn: sqlite3.Connection, out: BatchOutcome, figures: OpenFigures) -> None:
    """Effects, orphans and the figures the batch touched."""
    if out.effects:
        conn.executemany(
            f"INSERT OR REPLACE INTO settlement_effects ({EFFECT_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [effect_row(e, to_micros) for e in out.effects.values()],
        )
    if out.orphans:
        conn.executemany(
            f"INSERT OR REPLACE INTO settlement_orphans ({ORPHAN_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [orphan_row(w, to_micros) for w in out.orphans.values()],
        )
    if out.orphans_resolved:
        conn.executemany(
            "DELETE FROM settlement_orphans WHERE original_key = ?",
            [(k,) for k in out.orphans_resolved],
        )
    if out.touched:
        conn.executemany(
            f"INSERT OR REPLACE INTO settlement_totals ({BUCKET_COLUMNS}, turnover, wins, "
            "bonuses, jackpot_contributions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (*bucket_values(b), t.turnover, t.wins, t.bonuses, t.jackpot_contributions)
                for b in out.touched
                for t in (figures.totals[b],)
            ],
        )
    # A period's versions share one fee (ADR 0018): a batch may move a version it did
    # not touch.
    groups = {b.group for b in out.touched} | out.fee_groups
    if groups:
        conn.executemany(
            "INSERT OR REPLACE INTO settlement_fee_accrued VALUES (?, ?, ?, ?, ?, ?)",
            [(*g, figures.fee_accrued[g]) for g in groups if g in figures.fee_accrued],
        )
    if out.touched_commissions:
        conn.executemany(
            "INSERT OR REPLACE INTO settlement_commissions VALUES (?, ?, ?, ?, ?, ?)",
            [
                (*k, str(figures.commission_exact[k]), figures.commission_accrued.get(k, 0))
                for k in out.touched_commissions
            ],
        )


def save_closing(
    conn: sqlite3.Connection, statement: Statement, figures: OpenFigures, now: datetime
) -> None:
    terms = statement.terms
    key = (terms.contract_id, statement.operator)
    period = figures.closed[key]
    conn.execute(
        "INSERT OR REPLACE INTO settlement_closed VALUES (?, ?, ?, ?, ?, ?)",
        (*key, period.label, to_micros(period.start), to_micros(period.end), figures.carried[key]),
    )
    conn.execute(
        "INSERT INTO settlement_statements VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            *key,
            period.label,
            statement.to_json().decode(),
            statement.to_csv().decode(),
            statement.sha256,
            to_micros(now),
        ),
    )
    # The fee accrued for the closed period is now exactly the statement's fee.
    for group in [
        g for g in figures.fee_accrued if g[0] == key[0] and g[3:] == (key[1], period.label)
    ]:
        conn.execute(
            "INSERT OR REPLACE INTO settlement_fee_accrued VALUES (?, ?, ?, ?, ?, ?)",
            (*group, figures.fee_accrued[group]),
        )


def position(conn: sqlite3.Connection, consumer: str) -> int:
    row = conn.execute(
        "SELECT position FROM settlement_positions WHERE consumer = ?", (consumer,)
    ).fetchone()
    return int(row[0]) if row else 0


def save_position(conn: sqlite3.Connection, consumer: str, value: int) -> None:
    conn.execute("INSERT OR REPLACE INTO settlement_positions VALUES (?, ?)", (consumer, value))


def statements(conn: sqlite3.Connection) -> list[StoredStatement]:
    return [
        StoredStatement(c, o, p, sha, doc.encode(), text.encode(), from_micros(at))
        for c, o, p, sha, doc, text, at in conn.execute(
            "SELECT contract_id, operator, period, sha256, document, csv, closed_at "
            "FROM settlement_statements ORDER BY contract_id, operator, period"
        )
    ]


def save_problems(
    conn: sqlite3.Connection, problems: Iterable[tuple[str, str]], now: datetime
) -> None:
    conn.executemany(
        "INSERT INTO settlement_problems (event_key, reason, recorded_at) VALUES (?, ?, ?)",
        [(key, reason, to_micros(now)) for key, reason in problems],
    )


def problems(conn: sqlite3.Connection) -> list[tuple[str, str, datetime]]:
    return [
        (key, reason, from_micros(at))
        for key, reason, at in conn.execute(
            "SELECT event_key, reason, recorded_at FROM settlement_problems ORDER BY seq"
        )
    ]
