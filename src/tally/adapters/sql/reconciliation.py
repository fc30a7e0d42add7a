"""Reconciliation's store over SQL, shared by SQLite and PostgreSQL.

The two differ in placeholders, timestamps and how a statement runs; each subclass
supplies those and the rest is written once. Report lines are sorted by the database
(``ORDER BY day`` on an index), so matching streams a report of any size day by day.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Any

from tally.audit.ports import Transaction
from tally.reconciliation.model import (
    Break,
    BreakKind,
    BreakStatus,
    KeptBreak,
    MatchRules,
    ReportLine,
    StatusChange,
)
from tally.reconciliation.ports import Finished, Run, RunStatus

LINES_FETCHED = 5_000  # report lines read per round trip while matching streams them

RUN_COLUMNS = (
    "id, provider, name, file_sha256, rules, started_at, status, lines, refused, breaks, "
    "json_sha256, csv_sha256"
)
BREAK_COLUMNS = (
    "id, run_id, kind, provider, operator, currency, day, tally_day, report_ref, tally_key, "
    "report_amount, tally_amount, source, found_at, status, owner, line_json, adjustment"
)


def rules_from(text: str) -> MatchRules:
    data = json.loads(text)
    return MatchRules(**data)


def line_to_json(line: ReportLine | None) -> str:
    if line is None:
        return ""
    return json.dumps(
        {
            "provider": line.provider, "source": line.source, "line": line.line,
            "tx_id": line.tx_id, "kind": line.kind, "operator": line.operator,
            "player": line.player, "round_id": line.round_id, "currency": line.currency,
            "amount": line.amount, "occurred_at": line.occurred_at.isoformat(), "ref": line.ref,
        },
        sort_keys=True,
    )  # fmt: skip


def line_from_json(text: str) -> ReportLine | None:
    if not text:
        return None
    d = json.loads(text)
    d["occurred_at"] = datetime.fromisoformat(d["occurred_at"])
    return ReportLine(**d)


class SqlReconciliationStore:
    placeholder = "?"

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _cursor_rows(self, sql: str, params: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
        """Rows of a long query, fetched a batch at a time."""
        raise NotImplementedError

    def _time_in(self, when: datetime) -> Any:
        raise NotImplementedError

    def _time_out(self, value: Any) -> datetime:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.placeholder)

    def _insert_id(self, tx: Any, sql: str, params: Sequence[Any]) -> int:
        row = tx.execute(self._sql(sql + " RETURNING id"), tuple(params)).fetchone()
        return int(row[0])

    # -- runs and lines ----------------------------------------------------------------

    def run_of_file(self, provider: str, file_sha256: str) -> int | None:
        rows = self._run(
            self._sql(
                "SELECT id FROM recon_runs WHERE provider = ? AND file_sha256 = ? "
                "AND status = 'done'"
            ),
            (provider, file_sha256),
        )
        return int(rows[0][0]) if rows else None

    def start_run(
        self, provider: str, name: str, file_sha256: str, rules: MatchRules, at: datetime
    ) -> int:
        with self._transaction() as tx:
            stale = tx.execute(
                self._sql(
                    "SELECT id FROM recon_runs WHERE provider = ? AND file_sha256 = ? "
                    "AND status = 'reading'"
                ),
                (provider, file_sha256),
            ).fetchall()
            for (old,) in stale:
                # A run that never finished kept no breaks: only its lines go.
                tx.execute(self._sql("DELETE FROM recon_lines WHERE run_id = ?"), (old,))
                tx.execute(self._sql("DELETE FROM recon_runs WHERE id = ?"), (old,))
            return self._insert_id(
                tx,
                "INSERT INTO recon_runs (provider, name, file_sha256, rules, started_at, status) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    provider,
                    name,
                    file_sha256,
                    json.dumps(rules.to_dict(), sort_keys=True),
                    self._time_in(at),
                    RunStatus.READING,
                ),
            )

    def add_lines(self, run_id: int, lines: Sequence[tuple[date, ReportLine]]) -> None:
        if not lines:
            return
        sql = self._sql(
            "INSERT INTO recon_lines (run_id, day, source, line, tx_id, kind, operator, player, "
            "round_id, currency, amount, occurred_at, ref, provider) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        rows = [
            (
                run_id, d.isoformat(), r.source, r.line, r.tx_id, r.kind, r.operator, r.player,
                r.round_id, r.currency, r.amount, self._time_in(r.occurred_at), r.ref, r.provider,
            )
            for d, r in lines
        ]  # fmt: skip
        with self._transaction() as tx:
            tx.cursor().executemany(sql, rows)

    def report_lines(self, run_id: int) -> Iterator[ReportLine]:
        sql = self._sql(
            "SELECT provider, source, line, tx_id, kind, operator, player, round_id, currency, "
            "amount, occurred_at, ref FROM recon_lines WHERE run_id = ? ORDER BY day"
        )
        out = self._time_out
        for p, s, n, tx, k, op, pl, rd, cur, amt, at, ref in self._cursor_rows(sql, (run_id,)):
            yield ReportLine(p, s, int(n), tx, k, op, pl, rd, cur, int(amt), out(at), ref)

    def finish_run(
        self, run_id: int, done: Finished, within: Callable[[Transaction], object]
    ) -> None:
        at = self._time_in(done.at)
        insert = self._sql(
            "INSERT INTO recon_breaks (run_id, break_key, kind, provider, operator, currency, "
            "day, tally_day, report_ref, tally_key, report_amount, tally_amount, source, "
            "found_at, status, line_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        rows = [
            (
                run_id, b.id, int(b.kind), b.provider, b.operator, b.currency,
                b.day.isoformat(), b.tally_day.isoformat() if b.tally_day else "",
                b.report_ref, b.tally_key, b.report_amount, b.tally_amount, source, at,
                BreakStatus.OPEN.value, line_to_json(b.line),
            )
            for b, source in done.breaks
        ]  # fmt: skip
        with self._transaction() as tx:
            tx.cursor().executemany(insert, rows)
            tx.execute(
                self._sql(
                    "UPDATE recon_runs SET status = ?, lines = ?, refused = ?, breaks = ?, "
                    "json_report = ?, json_sha256 = ?, csv_report = ?, csv_sha256 = ?, "
                    "finished_at = ? WHERE id = ?"
                ),
                (
                    RunStatus.DONE, done.lines, done.refused, len(rows), done.json_report,
                    done.json_sha256, done.csv_report, done.csv_sha256, at, run_id,
                ),
            )  # fmt: skip
            # The lines were the run's working set; its breaks and report are what stays.
            tx.execute(self._sql("DELETE FROM recon_lines WHERE run_id = ?"), (run_id,))
            within(tx)

    def run(self, run_id: int) -> Run | None:
        rows = self._run(self._sql(f"SELECT {RUN_COLUMNS} FROM recon_runs WHERE id = ?"), (run_id,))
        return self._run_of(rows[0]) if rows else None

    def runs(self, *, provider: str | None = None, after: int = 0, limit: int = 100) -> list[Run]:
        where: list[str] = ["id > ?"]
        values: list[Any] = [after]
        if provider is not None:
            where.append("provider = ?")
            values.append(provider)
        rows = self._run(
            self._sql(
                f"SELECT {RUN_COLUMNS} FROM recon_runs WHERE {' AND '.join(where)} "
                "ORDER BY id LIMIT ?"
            ),
            (*values, limit),
        )
        return [self._run_of(r) for r in rows]

    def _run_of(self, row: Sequence[Any]) -> Run:
        i, p, name, sha, rules, started, status, lines, refused, breaks, js, cs = row
        return Run(
            int(i), p, name, sha, rules_from(rules), self._time_out(started), status,
            int(lines), int(refused), int(breaks), js, cs,
        )  # fmt: skip

    def report(self, run_id: int, fmt: str) -> bytes | None:
        column = {"json": "json_report", "csv": "csv_report"}[fmt]
        rows = self._run(
            self._sql(f"SELECT {column} FROM recon_runs WHERE id = ? AND status = 'done'"),
            (run_id,),
        )
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    # -- breaks ------------------------------------------------------------------------

    def _kept(self, row: Sequence[Any], history: list[StatusChange]) -> KeptBreak:
        (i, run_id, kind, p, op, cur, day, tday, rref, tkey, ramt, tamt, source, found) = row[:14]
        status, owner, line_json, adjustment = row[14:]
        brk = Break(
            BreakKind(int(kind)), p, op, cur, date.fromisoformat(day), rref, tkey, int(ramt),
            int(tamt), date.fromisoformat(tday) if tday else None, source,
            line_from_json(line_json),
        )  # fmt: skip
        return KeptBreak(
            int(i), int(run_id), brk, self._time_out(found), BreakStatus(status), owner,
            tuple(history), source, adjustment,
        )  # fmt: skip

    def _history(self, ids: Sequence[int]) -> dict[int, list[StatusChange]]:
        found: dict[int, list[StatusChange]] = {i: [] for i in ids}
        if not ids:
            return found
        marks = ", ".join("?" for _ in ids)
        rows = self._run(
            self._sql(
                "SELECT break_id, status, owner, at, by_actor, note FROM recon_break_history "
                f"WHERE break_id IN ({marks}) ORDER BY break_id, seq"
            ),
            tuple(ids),
        )
        for bid, status, owner, at, by, note in rows:
            found[int(bid)].append(
                StatusChange(BreakStatus(status), self._time_out(at), by, note, owner)
            )
        return found

    def breaks(
        self,
        *,
        status: BreakStatus | None = None,
        kind: BreakKind | None = None,
        run_id: int | None = None,
        provider: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[KeptBreak]:
        where = ["id > ?"]
        values: list[Any] = [after]
        if status is not None:
            where.append("status = ?")
            values.append(status.value)
        if kind is not None:
            where.append("kind = ?")
            values.append(int(kind))
        if run_id is not None:
            where.append("run_id = ?")
            values.append(run_id)
        if provider is not None:
            where.append("provider = ?")
            values.append(provider)
        rows = self._run(
            self._sql(
                f"SELECT {BREAK_COLUMNS} FROM recon_breaks WHERE {' AND '.join(where)} "
                "ORDER BY id LIMIT ?"
            ),
            (*values, limit),
        )
        history = self._history([int(r[0]) for r in rows])
        return [self._kept(r, history[int(r[0])]) for r in rows]

    def get_break(self, break_id: int) -> KeptBreak | None:
        rows = self._run(
            self._sql(f"SELECT {BREAK_COLUMNS} FROM recon_breaks WHERE id = ?"), (break_id,)
        )
        if not rows:
            return None
        return self._kept(rows[0], self._history([break_id])[break_id])

    def unresolved(
        self, provider: str, operator: str, first_day: date, last_day: date
    ) -> dict[str, tuple[int, int]]:
        rows = self._run(
            self._sql(
                "SELECT currency, COUNT(*), SUM(ABS(report_amount - tally_amount)) "
                "FROM recon_breaks WHERE provider = ? AND operator = ? AND status IN (?, ?) "
                "AND day >= ? AND day <= ? GROUP BY currency"
            ),
            (
                provider, operator, BreakStatus.OPEN.value, BreakStatus.INVESTIGATING.value,
                first_day.isoformat(), last_day.isoformat(),
            ),
        )  # fmt: skip
        return {cur: (int(n), int(total or 0)) for cur, n, total in rows}

    def change_break(
        self,
        break_id: int,
        expect: BreakStatus,
        change: StatusChange,
        within: Callable[[Transaction], object],
    ) -> bool:
        with self._transaction() as tx:
            if not self.change_break_in(tx, break_id, expect, change):
                return False
            within(tx)
        return True

    def change_break_in(
        self,
        tx: Transaction,
        break_id: int,
        expect: BreakStatus,
        change: StatusChange,
        adjustment: str | None = None,
    ) -> bool:
        """``change_break`` inside a transaction someone else opened on the same database
        (the ledger's, when a rule posts a transfer): it commits or rolls back with it."""
        kept_adjustment = "adjustment" if adjustment is None else "?"
        moved = tx.execute(
            self._sql(
                f"UPDATE recon_breaks SET status = ?, owner = ?, adjustment = {kept_adjustment} "
                "WHERE id = ? AND status = ? RETURNING id"
            ),
            (
                change.status.value, change.owner,
                *(() if adjustment is None else (adjustment,)), break_id, expect.value,
            ),
        ).fetchall()  # fmt: skip
        if not moved:
            return False
        (seq,) = tx.execute(
            self._sql(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM recon_break_history WHERE break_id = ?"
            ),
            (break_id,),
        ).fetchone()
        tx.execute(
            self._sql(
                "INSERT INTO recon_break_history (break_id, seq, status, owner, at, "
                "by_actor, note) VALUES (?, ?, ?, ?, ?, ?, ?)"
            ),
            (
                break_id, int(seq), change.status.value, change.owner,
                self._time_in(change.at), change.by, change.note,
            ),
        )  # fmt: skip
        return True
