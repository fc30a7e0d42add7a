"""The alerts store over SQL, shared by SQLite and PostgreSQL.

Each subclass supplies placeholders, timestamps, how a statement and a transaction run,
and the per-(kind, key) lock (SQLite's writers are serialised by the file's lock anyway;
PostgreSQL takes a transaction-scoped advisory lock, so two processes signalling one
key at once still make one alert).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime
from typing import Any

from tally.audit.ports import Transaction
from tally.risk.alerts_model import Alert, Change, Matcher, Silence, alert_from_dict, alert_to_dict
from tally.risk.ports import (
    ActionStatus,
    AlertFilter,
    Delivery,
    DeliveryStatus,
    PlaybookAction,
    Switch,
    SwitchKind,
    Within,
    switch_state,
)

SILENCE_COLUMNS = "id, author, reason, matchers, starts_at, ends_at, created_at, expired_at"
OUTBOX_COLUMNS = (
    "id, sink, alert_id, body, created_at, next_at, attempts, status, last_error, delivered_at"
)
ACTION_COLUMNS = (
    "id, playbook, action, alert_id, switch, target, status, at, detail, prior, approved_by, "
    "undone_by"
)


class SqlAlertStore:
    placeholder = "?"

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _time_in(self, when: datetime) -> Any:
        raise NotImplementedError

    def _time_out(self, value: Any) -> datetime:
        raise NotImplementedError

    def _lock_key(self, tx: Any, kind: str, key: str) -> None:
        """Serialise changes of one (kind, key) across processes (inside ``tx``)."""

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.placeholder)

    def _opt_out(self, value: Any) -> datetime | None:
        return None if value is None else self._time_out(value)

    def _insert_id(self, tx: Any, sql: str, params: Sequence[Any]) -> int:
        row = tx.execute(self._sql(sql + " RETURNING id"), tuple(params)).fetchone()
        return int(row[0])

    # -- alerts ------------------------------------------------------------------------

    def _alert(self, row: Sequence[Any]) -> Alert:
        d = json.loads(row[1])
        d["id"] = int(row[0])
        return alert_from_dict(d)

    def _keep(self, tx: Any, change: Change) -> Change:
        after = change.after
        if after is None or after == change.before:
            return change
        cols = (
            after.kind, after.key, after.status.value, after.severity.value, after.region,
            after.provider, after.operator, after.game, int(after.clearing_since is not None),
        )  # fmt: skip
        if after.id == 0:
            doc = json.dumps(alert_to_dict(after), sort_keys=True)
            new_id = self._insert_id(
                tx,
                "INSERT INTO risk_alerts (kind, key, status, severity, region, provider, "
                "operator, game, clearing, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*cols, doc),
            )
            return replace(change, after=replace(after, id=new_id))
        tx.execute(
            self._sql(
                "UPDATE risk_alerts SET kind = ?, key = ?, status = ?, severity = ?, region = ?, "
                "provider = ?, operator = ?, game = ?, clearing = ?, doc = ? WHERE id = ?"
            ),
            (*cols, json.dumps(alert_to_dict(after), sort_keys=True), after.id),
        )
        return change

    def change(
        self, kind: str, key: str, decide: Callable[[Alert | None], Change], within: Within
    ) -> Change:
        with self._transaction() as tx:
            self._lock_key(tx, kind, key)
            row = tx.execute(
                self._sql(
                    "SELECT id, doc FROM risk_alerts WHERE kind = ? AND key = ? "
                    "ORDER BY id DESC LIMIT 1"
                ),
                (kind, key),
            ).fetchone()
            change = self._keep(tx, decide(self._alert(row) if row else None))
            within(tx, change)
            return change

    def change_alert(
        self, alert_id: int, decide: Callable[[Alert], Change], within: Within
    ) -> Change | None:
        found = self.alert(alert_id)
        if found is None:
            return None
        with self._transaction() as tx:
            self._lock_key(tx, found.kind, found.key)
            row = tx.execute(
                self._sql("SELECT id, doc FROM risk_alerts WHERE id = ?"), (alert_id,)
            ).fetchone()
            change = self._keep(tx, decide(self._alert(row)))
            within(tx, change)
            return change

    def alert(self, alert_id: int) -> Alert | None:
        rows = self._run(self._sql("SELECT id, doc FROM risk_alerts WHERE id = ?"), (alert_id,))
        return self._alert(rows[0]) if rows else None

    def latest(self, kind: str, key: str) -> Alert | None:
        rows = self._run(
            self._sql(
                "SELECT id, doc FROM risk_alerts WHERE kind = ? AND key = ? ORDER BY id DESC "
                "LIMIT 1"
            ),
            (kind, key),
        )
        return self._alert(rows[0]) if rows else None

    def alerts(self, where: AlertFilter, *, after: int = 0, limit: int = 100) -> list[Alert]:
        clauses: list[str] = ["id > ?"]
        params: list[Any] = [after]
        if where.active:
            clauses.append("status <> 'resolved'")
        elif where.status is not None:
            clauses.append("status = ?")
            params.append(where.status.value)
        for column in ("kind", "severity", "region", "provider", "operator", "game"):
            value = getattr(where, column)
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        rows = self._run(
            self._sql(
                f"SELECT id, doc FROM risk_alerts WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ?"
            ),
            (*params, limit),
        )
        return [self._alert(r) for r in rows]

    def clearing(self, limit: int = 1000) -> list[Alert]:
        rows = self._run(
            self._sql(
                "SELECT id, doc FROM risk_alerts WHERE clearing = 1 AND status <> 'resolved' "
                "ORDER BY id LIMIT ?"
            ),
            (limit,),
        )
        return [self._alert(r) for r in rows]

    # -- silences ----------------------------------------------------------------------

    def _silence(self, r: Sequence[Any]) -> Silence:
        matchers = tuple(Matcher(d, v) for d, v in json.loads(r[3]))
        return Silence(
            int(r[0]), r[1], r[2], matchers, self._time_out(r[4]), self._time_out(r[5]),
            self._time_out(r[6]), self._opt_out(r[7]),
        )  # fmt: skip

    def add_silence(
        self,
        author: str,
        reason: str,
        matchers: Sequence[Matcher],
        starts_at: datetime,
        ends_at: datetime,
        at: datetime,
        within: Callable[[Transaction, Silence], object],
    ) -> Silence:
        text = json.dumps([[m.dimension, m.value] for m in matchers])
        with self._transaction() as tx:
            silence_id = self._insert_id(
                tx,
                "INSERT INTO risk_silences (author, reason, matchers, starts_at, ends_at, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (author, reason, text, self._time_in(starts_at), self._time_in(ends_at),
                 self._time_in(at)),
            )  # fmt: skip
            s = Silence(silence_id, author, reason, tuple(matchers), starts_at, ends_at, at)
            within(tx, s)
            return s

    def expire_silence(
        self, silence_id: int, at: datetime, within: Callable[[Transaction, Silence], object]
    ) -> Silence | None:
        with self._transaction() as tx:
            row = tx.execute(
                self._sql(f"SELECT {SILENCE_COLUMNS} FROM risk_silences WHERE id = ?"),
                (silence_id,),
            ).fetchone()
            if row is None:
                return None
            s = self._silence(row)
            if not s.active(at) and s.starts_at <= at:
                return None
            tx.execute(
                self._sql("UPDATE risk_silences SET expired_at = ? WHERE id = ?"),
                (self._time_in(at), silence_id),
            )
            ended = replace(s, expired_at=at)
            within(tx, ended)
            return ended

    def silences(self, *, active_at: datetime | None = None) -> list[Silence]:
        rows = self._run(f"SELECT {SILENCE_COLUMNS} FROM risk_silences ORDER BY id", ())
        found = [self._silence(r) for r in rows]
        return [s for s in found if active_at is None or s.active(active_at)]

    # -- rules -------------------------------------------------------------------------

    def save_rules(
        self,
        document: Mapping[str, Any],
        at: datetime,
        within: Callable[[Transaction, int], object],
    ) -> int:
        with self._transaction() as tx:
            row = tx.execute("SELECT COALESCE(MAX(version), 0) FROM risk_rules").fetchone()
            version = int(row[0]) + 1
            tx.execute(
                self._sql("INSERT INTO risk_rules (version, document, saved_at) VALUES (?, ?, ?)"),
                (version, json.dumps(document, sort_keys=True), self._time_in(at)),
            )
            within(tx, version)
            return version

    def rules_document(self, version: int | None = None) -> tuple[int, dict[str, Any]] | None:
        if version is None:
            rows = self._run(
                "SELECT version, document FROM risk_rules ORDER BY version DESC LIMIT 1", ()
            )
        else:
            rows = self._run(
                self._sql("SELECT version, document FROM risk_rules WHERE version = ?"),
                (version,),
            )
        if not rows:
            return None
        loaded: dict[str, Any] = json.loads(rows[0][1])
        return int(rows[0][0]), loaded

    # -- outbox ------------------------------------------------------------------------

    def enqueue_in(
        self, tx: Transaction, sink: str, alert_id: int, body: bytes, at: datetime
    ) -> None:
        when = self._time_in(at)
        tx.execute(
            self._sql(
                "INSERT INTO risk_outbox (sink, alert_id, body, created_at, next_at) "
                "VALUES (?, ?, ?, ?, ?)"
            ),
            (sink, alert_id, body, when, when),
        )

    def enqueue(self, sink: str, alert_id: int, body: bytes, at: datetime) -> None:
        with self._transaction() as tx:
            self.enqueue_in(tx, sink, alert_id, body, at)

    def _delivery(self, r: Sequence[Any]) -> Delivery:
        return Delivery(
            int(r[0]), r[1], int(r[2]), bytes(r[3]), self._time_out(r[4]), self._time_out(r[5]),
            int(r[6]), DeliveryStatus(r[7]), r[8], self._opt_out(r[9]),
        )  # fmt: skip

    def due(self, at: datetime, limit: int = 100) -> list[Delivery]:
        rows = self._run(
            self._sql(
                f"SELECT {OUTBOX_COLUMNS} FROM risk_outbox WHERE status = 'pending' "
                "AND next_at <= ? ORDER BY id LIMIT ?"
            ),
            (self._time_in(at), limit),
        )
        return [self._delivery(r) for r in rows]

    def delivered(self, delivery_id: int, at: datetime) -> None:
        with self._transaction() as tx:
            tx.execute(
                self._sql(
                    "UPDATE risk_outbox SET status = 'delivered', delivered_at = ?, "
                    "attempts = attempts + 1 WHERE id = ?"
                ),
                (self._time_in(at), delivery_id),
            )

    def failed(
        self, delivery_id: int, attempts: int, next_at: datetime, error: str, dead: bool
    ) -> None:
        status = DeliveryStatus.DEAD if dead else DeliveryStatus.PENDING
        with self._transaction() as tx:
            tx.execute(
                self._sql(
                    "UPDATE risk_outbox SET attempts = ?, next_at = ?, last_error = ?, "
                    "status = ? WHERE id = ?"
                ),
                (attempts, self._time_in(next_at), error, status.value, delivery_id),
            )

    def deliveries(self, *, alert_id: int | None = None, limit: int = 100) -> list[Delivery]:
        if alert_id is None:
            rows = self._run(
                self._sql(f"SELECT {OUTBOX_COLUMNS} FROM risk_outbox ORDER BY id LIMIT ?"),
                (limit,),
            )
        else:
            rows = self._run(
                self._sql(
                    f"SELECT {OUTBOX_COLUMNS} FROM risk_outbox WHERE alert_id = ? "
                    "ORDER BY id LIMIT ?"
                ),
                (alert_id, limit),
            )
        return [self._delivery(r) for r in rows]

    # -- playbooks ---------------------------------------------------------------------

    def _switch_row(self, tx: Any, kind: SwitchKind, target: str) -> Switch:
        row = tx.execute(
            self._sql(
                "SELECT is_on, by_action, at FROM risk_switches WHERE kind = ? AND target = ?"
            ),
            (kind.value, target),
        ).fetchone()
        if row is None:
            return Switch(kind, target, False, 0)
        return Switch(kind, target, bool(row[0]), int(row[1]), self._opt_out(row[2]))

    def switch(self, kind: SwitchKind, target: str) -> Switch:
        rows = self._run(
            self._sql(
                "SELECT is_on, by_action, at FROM risk_switches WHERE kind = ? AND target = ?"
            ),
            (kind.value, target),
        )
        if not rows:
            return Switch(kind, target, False, 0)
        r = rows[0]
        return Switch(kind, target, bool(r[0]), int(r[1]), self._opt_out(r[2]))

    def switches(self, *, on_only: bool = True) -> list[Switch]:
        where = "WHERE is_on = 1 " if on_only else ""
        rows = self._run(
            f"SELECT kind, target, is_on, by_action, at FROM risk_switches {where}"
            "ORDER BY kind, target",
            (),
        )
        return [
            Switch(SwitchKind(r[0]), r[1], bool(r[2]), int(r[3]), self._opt_out(r[4])) for r in rows
        ]

    def _set(
        self, tx: Any, kind: SwitchKind, target: str, on: bool, action_id: int, at: datetime
    ) -> None:
        tx.execute(
            self._sql("DELETE FROM risk_switches WHERE kind = ? AND target = ?"),
            (kind.value, target),
        )
        tx.execute(
            self._sql(
                "INSERT INTO risk_switches (kind, target, is_on, by_action, at) "
                "VALUES (?, ?, ?, ?, ?)"
            ),
            (kind.value, target, int(on), action_id, self._time_in(at)),
        )

    def _restore(self, tx: Any, kind: SwitchKind, target: str, prior: Mapping[str, Any]) -> None:
        tx.execute(
            self._sql("DELETE FROM risk_switches WHERE kind = ? AND target = ?"),
            (kind.value, target),
        )
        if prior.get("exists"):
            at = prior.get("at")
            tx.execute(
                self._sql(
                    "INSERT INTO risk_switches (kind, target, is_on, by_action, at) "
                    "VALUES (?, ?, ?, ?, ?)"
                ),
                (
                    kind.value, target, int(bool(prior["on"])), int(prior["by_action"]),
                    self._time_in(datetime.fromisoformat(at)) if at else None,
                ),
            )  # fmt: skip

    def _action(self, r: Sequence[Any]) -> PlaybookAction:
        return PlaybookAction(
            int(r[0]), r[1], r[2], int(r[3]), SwitchKind(r[4]), r[5], ActionStatus(r[6]),
            self._time_out(r[7]), r[8], json.loads(r[9]), r[10], r[11],
        )  # fmt: skip

    def act(
        self,
        action: PlaybookAction,
        switch_to: bool | None,
        within: Callable[[Transaction, PlaybookAction], object],
    ) -> PlaybookAction:
        with self._transaction() as tx:
            prior = switch_state(self._switch_row(tx, action.switch, action.target))
            a = action
            action_id = self._insert_id(
                tx,
                "INSERT INTO risk_actions (playbook, action, alert_id, switch, target, status, "
                "at, detail, prior) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    a.playbook, a.action, a.alert_id, a.switch.value, a.target, a.status.value,
                    self._time_in(a.at), a.detail, json.dumps(prior, sort_keys=True),
                ),
            )  # fmt: skip
            kept = replace(a, id=action_id, prior=prior)
            if switch_to is not None:
                self._set(tx, kept.switch, kept.target, switch_to, kept.id, kept.at)
            within(tx, kept)
            return kept

    def settle_action(
        self,
        action_id: int,
        expect: ActionStatus,
        status: ActionStatus,
        by: str,
        switch_to: bool | Mapping[str, Any] | None,
        within: Callable[[Transaction, PlaybookAction], object],
    ) -> PlaybookAction | None:
        column = "undone_by" if status is ActionStatus.UNDONE else "approved_by"
        with self._transaction() as tx:
            row = tx.execute(
                self._sql(f"SELECT {ACTION_COLUMNS} FROM risk_actions WHERE id = ?"), (action_id,)
            ).fetchone()
            if row is None:
                return None
            a = self._action(row)
            if a.status is not expect:
                return None
            tx.execute(
                self._sql(f"UPDATE risk_actions SET status = ?, {column} = ? WHERE id = ?"),
                (status.value, by, action_id),
            )
            done = (
                replace(a, status=status, undone_by=by)
                if status is ActionStatus.UNDONE
                else replace(a, status=status, approved_by=by)
            )
            if isinstance(switch_to, bool):
                self._set(tx, a.switch, a.target, switch_to, a.id, a.at)
            elif switch_to is not None:
                self._restore(tx, a.switch, a.target, switch_to)
            within(tx, done)
            return done

    def action(self, action_id: int) -> PlaybookAction | None:
        rows = self._run(
            self._sql(f"SELECT {ACTION_COLUMNS} FROM risk_actions WHERE id = ?"), (action_id,)
        )
        return self._action(rows[0]) if rows else None

    def actions(
        self,
        *,
        playbook: str | None = None,
        alert_id: int | None = None,
        since: datetime | None = None,
    ) -> list[PlaybookAction]:
        clauses: list[str] = ["1 = 1"]
        params: list[Any] = []
        if playbook is not None:
            clauses.append("playbook = ?")
            params.append(playbook)
        if alert_id is not None:
            clauses.append("alert_id = ?")
            params.append(alert_id)
        if since is not None:
            clauses.append("at >= ?")
            params.append(self._time_in(since))
        rows = self._run(
            self._sql(
                f"SELECT {ACTION_COLUMNS} FROM risk_actions WHERE {' AND '.join(clauses)} "
                "ORDER BY id"
            ),
            params,
        )
        return [self._action(r) for r in rows]
