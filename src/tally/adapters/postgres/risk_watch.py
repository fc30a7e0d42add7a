"""The risk watch's state, game figures and forecasts in PostgreSQL (scaled mode).

Position, detectors' state and the batch's signals (the outbox) commit in one
transaction, as on SQLite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from tally.adapters.postgres.connection import LinkedStore
from tally.adapters.postgres.ledger import migrate
from tally.risk.detectors.model import HOUR, Said
from tally.risk.detectors.rtp import GameRtp
from tally.risk.watch_codec import said_from_dict, said_to_dict
from tally.risk.watch_ports import ForecastPoint


class PostgresRiskStore(LinkedStore):
    """:class:`~tally.risk.watch_ports.RiskStore` on PostgreSQL."""

    def __init__(self, dsn: str, *, schema: str | None = None) -> None:
        super().__init__(dsn, schema=schema)
        with self._lock:
            migrate(self._link.conn, "risk")

    def position(self, consumer: str) -> int:
        rows = self._run("SELECT position FROM risk_watch_state WHERE consumer = %s", (consumer,))
        return int(rows[0][0]) if rows else 0

    def load_state(self, consumer: str) -> Mapping[str, Any] | None:
        rows = self._run("SELECT state FROM risk_watch_state WHERE consumer = %s", (consumer,))
        if not rows:
            return None
        state: dict[str, Any] = orjson.loads(bytes(rows[0][0]))
        return state

    def commit(
        self,
        consumer: str,
        position: int,
        state: Mapping[str, Any],
        said: Sequence[Said],
        at: datetime,
    ) -> None:
        body = orjson.dumps(state, option=orjson.OPT_NON_STR_KEYS)
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO risk_watch_state VALUES (%s, %s, %s, %s) ON CONFLICT (consumer) "
                "DO UPDATE SET position = excluded.position, state = excluded.state, "
                "committed_at = excluded.committed_at",
                (consumer, position, body, at),
            )
            if said:
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO risk_watch_outbox (consumer, body) VALUES (%s, %s)",
                        [(consumer, orjson.dumps(said_to_dict(s))) for s in said],
                    )

    def outbox(self, consumer: str, limit: int) -> list[tuple[int, Said]]:
        rows = self._run(
            "SELECT id, body FROM risk_watch_outbox WHERE consumer = %s ORDER BY id LIMIT %s",
            (consumer, limit),
        )
        return [(int(i), said_from_dict(orjson.loads(bytes(body)))) for i, body in rows]

    def delivered(self, consumer: str, upto: int) -> None:
        self._run(
            "DELETE FROM risk_watch_outbox WHERE consumer = %s AND id <= %s", (consumer, upto)
        )

    def save(self, game: GameRtp) -> None:
        self._run(
            "INSERT INTO risk_games VALUES (%s, %s, %s, %s) ON CONFLICT (game) DO UPDATE SET "
            "certified_rtp = excluded.certified_rtp, volatility = excluded.volatility, "
            "max_win_multiplier = excluded.max_win_multiplier",
            (game.game, str(game.certified_rtp), str(game.volatility), game.max_win_multiplier),
        )

    def all(self) -> list[GameRtp]:
        return [
            GameRtp(g, Decimal(rtp), Decimal(vol), int(cap))
            for g, rtp, vol, cap in self._run("SELECT * FROM risk_games ORDER BY game", ())
        ]

    def replace(self, fitted_at: datetime, points: Sequence[ForecastPoint]) -> None:
        rows = [
            (p.series, int(p.hour.timestamp()) // HOUR, p.mean, p.lo80, p.hi80, p.lo95, p.hi95)
            for p in points
        ]
        with self._transaction() as conn:
            conn.execute("DELETE FROM risk_forecasts")
            if rows:
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO risk_forecasts VALUES (%s, %s, %s, %s, %s, %s, %s)", rows
                    )
            conn.execute(
                "INSERT INTO risk_forecast_fit VALUES (1, %s) ON CONFLICT (id) "
                "DO UPDATE SET fitted_at = excluded.fitted_at",
                (fitted_at,),
            )

    def latest(
        self, *, metric: str = "", region: str = "", provider: str = "", limit: int = 10_000
    ) -> tuple[datetime | None, list[ForecastPoint]]:
        fitted = self._run("SELECT fitted_at FROM risk_forecast_fit", ())
        pattern = "|".join((metric or "%", region or "%", provider or "%")) + "%"
        rows = self._run(
            "SELECT * FROM risk_forecasts WHERE series LIKE %s ORDER BY series, hour LIMIT %s",
            (pattern, limit),
        )
        points = [
            ForecastPoint(s, datetime.fromtimestamp(h * HOUR, UTC), *map(float, rest))
            for s, h, *rest in rows
            if (not metric or s.split("|")[0] == metric)
            and (not region or s.split("|")[1] == region)
            and (not provider or s.split("|")[2] == provider)
        ]
        return (fitted[0][0] if fitted else None), points
