"""The payouts store over SQL, shared by SQLite and PostgreSQL.

Every write goes through the ledger store's ``unit_of_work``: a payout's row, its claims
and its ledger transfers commit in one transaction (ADR 0021). The two databases differ
in placeholders, how a list is passed and row locks; each subclass says which.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from tally.kernel.clock import from_micros, to_micros
from tally.ledger.model import Account, AccountResult, TransferRequest, TransferResult
from tally.payouts.model import (
    Counterparty,
    CounterpartyKind,
    Leg,
    Payout,
    PayoutRefused,
    PayoutState,
    Refusal,
    Run,
    RunLine,
    RunPlan,
    RunStatus,
    Transition,
    clearing_accounts,
    written,
)

PAYOUT_COLUMNS = (
    "id, run_id, counterparty, currency, amount, rail, account, beneficiary_name, bic, legs, "
    "state, updated_at, reserved_until, next_check_at, rail_reference, reason, checks"
)
RUN_COLUMNS = "id, scope, maker, created_at, status, totals, lines, approver, approved_at"
CP_COLUMNS = "id, kind, party, name, rail, account, bic, blocked"


class LedgerInTx(Protocol):
    """The ledger store's part the payouts store writes through."""

    def unit_of_work(self) -> AbstractContextManager[Any]: ...

    def create_accounts_in(
        self, conn: Any, accounts: Sequence[Account], now: datetime
    ) -> list[AccountResult]: ...

    def apply_in(
        self, conn: Any, submissions: Sequence[Sequence[TransferRequest]], now: datetime
    ) -> list[list[TransferResult]]: ...


def _micros(when: datetime | None) -> int | None:
    return None if when is None else to_micros(when)


def _when(value: int | None) -> datetime | None:
    return None if value is None else from_micros(int(value))


_STATES = {s.value: s for s in PayoutState}


def payout_row(p: Payout) -> tuple[Any, ...]:
    return (
        p.id, p.run_id, p.counterparty, p.currency, p.amount, p.rail, p.account,
        p.beneficiary_name, p.bic, json.dumps([[leg.account_id, leg.amount] for leg in p.legs]),
        p.state.value, to_micros(p.updated_at), _micros(p.reserved_until),
        _micros(p.next_check_at), p.rail_reference, p.reason, p.checks,
    )  # fmt: skip


def payout_from(row: Sequence[Any]) -> Payout:
    legs = tuple(Leg(a, int(v)) for a, v in json.loads(row[9]))
    return Payout(
        row[0], row[1], row[2], row[3], int(row[4]), row[5], row[6], row[7], row[8], legs,
        _STATES[row[10]], from_micros(int(row[11])), _when(row[12]), _when(row[13]),
        row[14], row[15], int(row[16]),
    )  # fmt: skip


def run_row(r: Run) -> tuple[Any, ...]:
    lines = [
        [ln.counterparty, ln.currency, ln.owed, ln.owing, ln.net, ln.payout_id] for ln in r.lines
    ]
    return (
        r.id, r.scope, r.maker, to_micros(r.created_at), r.status.value,
        json.dumps(dict(sorted(r.totals.items()))), json.dumps(lines), r.approver,
        _micros(r.approved_at),
    )  # fmt: skip


def run_from(row: Sequence[Any]) -> Run:
    lines = tuple(
        RunLine(c, cur, int(o), int(w), int(n), pid) for c, cur, o, w, n, pid in json.loads(row[6])
    )
    totals = {k: int(v) for k, v in json.loads(row[5]).items()}
    return Run(
        row[0],
        row[1],
        row[2],
        from_micros(int(row[3])),
        RunStatus(row[4]),
        totals,
        lines,
        row[7],
        _when(row[8]),
    )


def cp_from(row: Sequence[Any]) -> Counterparty:
    return Counterparty(
        row[0], CounterpartyKind(row[1]), row[2], row[3], row[4], row[5], row[6], bool(row[7])
    )


class SqlPayoutStore:
    ledger: LedgerInTx
    _clearing: frozenset[str]
    placeholder = "?"
    lock_rows = ""  # " FOR UPDATE" where the database locks rows

    # -- what a subclass supplies -----------------------------------------------------------
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _in(self, column: str) -> str:
        """A condition ``column`` is in a list passed as one parameter (see ``_list``)."""
        raise NotImplementedError

    def _list(self, values: Sequence[str]) -> Any:
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    @staticmethod
    def _exec(tx: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = tx.execute(sql, tuple(params))
        return list(cursor.fetchall()) if cursor.description else []

    def _many(self, tx: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            cursor = tx.cursor()
            try:
                cursor.executemany(self._sql(sql), [tuple(r) for r in rows])
            finally:
                cursor.close()

    def unit_of_work(self) -> AbstractContextManager[Any]:
        return self.ledger.unit_of_work()

    # -- counterparties ---------------------------------------------------------------------
    def put_counterparty_in(self, tx: Any, counterparty: Counterparty, now: datetime) -> None:
        c = counterparty
        self._exec(tx, self._sql("DELETE FROM payout_counterparties WHERE id = ?"), (c.id,))
        self._exec(
            tx,
            self._sql(
                f"INSERT INTO payout_counterparties ({CP_COLUMNS}, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            (
                c.id,
                c.kind.value,
                c.party,
                c.name,
                c.rail,
                c.account,
                c.bic,
                int(c.blocked),
                to_micros(now),
            ),
        )

    def counterparty(self, counterparty_id: str) -> Counterparty | None:
        rows = self._read(
            self._sql(f"SELECT {CP_COLUMNS} FROM payout_counterparties WHERE id = ?"),
            (counterparty_id,),
        )
        return cp_from(rows[0]) if rows else None

    def counterparties(self) -> list[Counterparty]:
        return [
            cp_from(r)
            for r in self._read(f"SELECT {CP_COLUMNS} FROM payout_counterparties ORDER BY id")
        ]

    # -- runs -----------------------------------------------------------------------------
    def claimed(self, payable_ids: Iterable[str]) -> set[str]:
        ids = list(payable_ids)
        out: set[str] = set()
        for start in range(0, len(ids), 50_000):
            chunk = ids[start : start + 50_000]
            rows = self._read(
                self._sql(f"SELECT payable_id FROM payout_claims WHERE {self._in('payable_id')}"),
                (self._list(chunk),),
            )
            out.update(r[0] for r in rows)
        return out

    def create_run_in(self, tx: Any, run: Run, plan: RunPlan) -> None:
        ids = [p for p, _ in plan.claims]
        taken: list[tuple[Any, ...]] = []
        for start in range(0, len(ids), 50_000):
            taken += self._exec(
                tx,
                self._sql(f"SELECT payable_id FROM payout_claims WHERE {self._in('payable_id')}"),
                (self._list(ids[start : start + 50_000]),),
            )
            if taken:
                raise PayoutRefused(
                    Refusal.PAYABLES_ALREADY_CLAIMED,
                    f"payable {taken[0][0]} is already in another run's payout",
                )
        self._exec(
            tx,
            self._sql(
                f"INSERT INTO payout_runs ({RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            run_row(run),
        )
        marks = ", ".join(["?"] * 17)
        self._many(
            tx,
            f"INSERT INTO payouts ({PAYOUT_COLUMNS}) VALUES ({marks})",
            [payout_row(p) for p in plan.payouts],
        )
        self._many(
            tx, "INSERT INTO payout_claims (payable_id, payout_id) VALUES (?, ?)", plan.claims
        )

    def run_in(self, tx: Any, run_id: str) -> Run | None:
        rows = self._exec(
            tx,
            self._sql(f"SELECT {RUN_COLUMNS} FROM payout_runs WHERE id = ?{self.lock_rows}"),
            (run_id,),
        )
        return run_from(rows[0]) if rows else None

    def approve_in(self, tx: Any, run: Run) -> None:
        self._exec(
            tx,
            self._sql(
                "UPDATE payout_runs SET status = ?, approver = ?, approved_at = ? WHERE id = ?"
            ),
            (run.status.value, run.approver, _micros(run.approved_at), run.id),
        )

    def run(self, run_id: str) -> Run | None:
        rows = self._read(
            self._sql(f"SELECT {RUN_COLUMNS} FROM payout_runs WHERE id = ?"), (run_id,)
        )
        return run_from(rows[0]) if rows else None

    def runs(self, limit: int) -> list[Run]:
        rows = self._read(
            self._sql(
                f"SELECT {RUN_COLUMNS} FROM payout_runs ORDER BY created_at DESC, id DESC LIMIT ?"
            ),
            (limit,),
        )
        return [run_from(r) for r in rows]

    # -- payouts ------------------------------------------------------------------------------
    def payouts(self, payout_ids: Sequence[str]) -> dict[str, Payout]:
        out: dict[str, Payout] = {}
        ids = list(payout_ids)
        for start in range(0, len(ids), 50_000):
            rows = self._read(
                self._sql(f"SELECT {PAYOUT_COLUMNS} FROM payouts WHERE {self._in('id')}"),
                (self._list(ids[start : start + 50_000]),),
            )
            out.update((r[0], payout_from(r)) for r in rows)
        return out

    def payouts_of_run(self, run_id: str) -> list[Payout]:
        rows = self._read(
            self._sql(f"SELECT {PAYOUT_COLUMNS} FROM payouts WHERE run_id = ? ORDER BY id"),
            (run_id,),
        )
        return [payout_from(r) for r in rows]

    def payouts_of(self, counterparties: Sequence[str]) -> list[Payout]:
        if not counterparties:
            return []
        rows = self._read(
            self._sql(
                f"SELECT {PAYOUT_COLUMNS} FROM payouts WHERE {self._in('counterparty')} ORDER BY id"
            ),
            (self._list(list(counterparties)),),
        )
        return [payout_from(r) for r in rows]

    def due(self, now: datetime, limit: int) -> list[Payout]:
        # One query per state, each in id order on the (state, next_check_at, id) index
        # (no sort of the whole table), merged here.
        at = to_micros(now)
        queries = (
            (
                f"SELECT {PAYOUT_COLUMNS} FROM payouts WHERE state = 'requested'"
                " AND run_id IN (SELECT id FROM payout_runs WHERE status = 'approved')"
                " ORDER BY state, next_check_at, id LIMIT ?",
                (limit,),
            ),
            (
                f"SELECT {PAYOUT_COLUMNS} FROM payouts WHERE state = 'reserved'"
                " ORDER BY state, next_check_at, id LIMIT ?",
                (limit,),
            ),
            (
                f"SELECT {PAYOUT_COLUMNS} FROM payouts WHERE state IN ('submitted', 'expired')"
                " AND next_check_at <= ? ORDER BY id LIMIT ?",
                (at, limit),
            ),
        )
        rows: list[tuple[Any, ...]] = []
        for sql, params in queries:
            rows += self._read(self._sql(sql), params)
        rows.sort(key=lambda r: r[0])
        return [payout_from(r) for r in rows[:limit]]

    def commit(
        self,
        transitions: Sequence[Transition],
        now: datetime,
        within: Callable[[Any, list[Payout]], object],
    ) -> list[tuple[Transition, Payout]]:
        ids = [t.payout_id for t in transitions]
        with self.ledger.unit_of_work() as tx:
            states: dict[str, str] = {}
            for start in range(0, len(ids), 50_000):
                rows = self._exec(
                    tx,
                    self._sql(
                        f"SELECT id, state FROM payouts WHERE {self._in('id')}{self.lock_rows}"
                    ),
                    (self._list(ids[start : start + 50_000]),),
                )
                states.update((r[0], r[1]) for r in rows)
            live = [t for t in transitions if states.get(t.payout_id) == t.expect.value]
            moving = [t for t in live if t.transfers]
            results: list[list[TransferResult]] = []
            ensured: frozenset[str] = getattr(self, "_clearing", frozenset())
            if moving:
                needed = [a for a in clearing_accounts(moving) if a.id not in ensured]
                if needed:
                    self.ledger.create_accounts_in(tx, needed, now)
                results = self.ledger.apply_in(tx, [list(t.transfers) for t in moving], now)
            out = written(live, results)
            payouts = [p for _, p in out]
            self._many(
                tx,
                "UPDATE payouts SET state = ?, updated_at = ?, reserved_until = ?,"
                " next_check_at = ?, rail_reference = ?, reason = ?, checks = ? WHERE id = ?",
                [
                    (p.state.value, to_micros(p.updated_at), _micros(p.reserved_until),
                     _micros(p.next_check_at), p.rail_reference, p.reason, p.checks, p.id)
                    for p in payouts
                ],
            )  # fmt: skip
            self._many(
                tx,
                "DELETE FROM payout_claims WHERE payout_id = ?",
                [(p.id,) for p in payouts if p.state is PayoutState.FAILED],
            )
            within(tx, payouts)
        if moving:
            # Known to exist only once committed (a rolled-back creation must be redone).
            self._clearing = frozenset(ensured) | {a.id for a in clearing_accounts(moving)}
        return out
