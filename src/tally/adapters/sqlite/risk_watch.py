"""The risk watch's state, game figures and forecasts in the embedded SQLite file.

Position, detectors' state and the batch's signals (the outbox) commit in one
transaction: a crash at any instant leaves the three consistent.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from tally.adapters.sqlite.connection import connect, immediate
from tally.adapters.sqlite.ledger import migrate
from tally.kernel.clock import from_micros, to_micros
from tally.risk.detectors.model import HOUR, Said
from tally.risk.detectors.rtp import GameRtp
from tally.risk.watch_codec import said_from_dict, said_to_dict
from tally.risk.watch_ports import ForecastPoint


class SqliteRiskStore:
    """:class:`~tally.risk.watch_ports.WatchStore`, ``GameConfigs`` and ``ForecastStore``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conn = connect(path)
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._conn, "risk")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate(self._conn, busy="risk store") as conn:
            yield conn

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            rows: list[tuple[Any, ...]] = self._conn.execute(sql, tuple(params)).fetchall()
        return rows

    # -- the watch ---------------------------------------------------------------------

    def position(self, consumer: str) -> int:
        rows = self._read("SELECT position FROM risk_watch_state WHERE consumer = ?", (consumer,))
        return int(rows[0][0]) if rows else 0

    def load_state(self, consumer: str) -> Mapping[str, Any] | None:
        rows = self._read("SELECT state FROM risk_watch_state WHERE consumer = ?", (consumer,))
        if not rows:
            return None
        state: dict[str, Any] = orjson.loads(rows[0][0])
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
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO risk_watch_state VALUES (?, ?, ?, ?) ON CONFLICT (consumer) "
                "DO UPDATE SET position = excluded.position, state = excluded.state, "
                "committed_at = excluded.committed_at",
                (consumer, position, body, to_micros(at)),
            )
            conn.executemany(
                "INSERT INTO risk_watch_outbox (consumer, body) VALUES (?, ?)",
                [(consumer, orjson.dumps(said_to_dict(s))) for s in said],
            )

    def outbox(self, consumer: str, limit: int) -> list[tuple[int, Said]]:
        rows = self._read(
            "SELECT id, body FROM risk_watch_outbox WHERE consumer = ? ORDER BY id LIMIT ?",
            (consumer, limit),
        )
        return [(int(i), said_from_dict(orjson.loads(body))) for i, body in rows]

    def delivered(self, consumer: str, upto: int) -> None:
        with self._tx() as conn:
            conn.execute(
                "DELETE FROM risk_watch_outbox WHERE consumer = ? AND id <= ?", (consumer, upto)
            )

    # -- certified games ---------------------------------------------------------------

    def save(self, game: GameRtp) -> None:
        """The figures were validated when the :class:`GameRtp` was made."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO risk_games VALUES (?, ?, ?, ?) ON CONFLICT (game) DO UPDATE SET "
                "certified_rtp = excluded.certified_rtp, volatility = excluded.volatility, "
                "max_win_multiplier = excluded.max_win_multiplier",
                (game.game, str(game.certified_rtp), str(game.volatility), game.max_win_multiplier),
            )

    def all(self) -> list[GameRtp]:
        return [
            GameRtp(g, Decimal(rtp), Decimal(vol), int(cap))
            for g, rtp, vol, cap in self._read("SELECT * FROM risk_games ORDER BY game")
        ]

    # -- forecasts ---------------------------------------------------------------------

    def replace(self, fitted_at: datetime, points: Sequence[ForecastPoint]) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM risk_forecasts")
            conn.executemany(
                "INSERT INTO risk_forecasts VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        p.series,
                        int(p.hour.timestamp()) // HOUR,
                        p.mean,
                        p.lo80,
                        p.hi80,
                        p.lo95,
                        p.hi95,
                    )
                    for p in points
                ],
            )
            conn.execute(
                "INSERT INTO risk_forecast_fit VALUES (1, ?) ON CONFLICT (id) "
                "DO UPDATE SET fitted_at = excluded.fitted_at",
                (to_micros(fitted_at),),
            )

    def latest(
        self, *, metric: str = "", region: str = "", provider: str = "", limit: int = 10_000
    ) -> tuple[datetime | None, list[ForecastPoint]]:
        fitted = self._read("SELECT fitted_at FROM risk_forecast_fit")
        # series is metric|region|provider[|currency]: a prefix and a LIKE narrow it.
        pattern = "|".join((metric or "%", region or "%", provider or "%")) + "%"
        rows = self._read(
            "SELECT * FROM risk_forecasts WHERE series LIKE ? ORDER BY series, hour LIMIT ?",
            (pattern, limit),
        )
        points = [
            ForecastPoint(s, datetime.fromtimestamp(h * HOUR, UTC), *map(float, rest))
            for s, h, *rest in rows
            if (not metric or s.split("|")[0] == metric)
            and (not region or s.split("|")[1] == region)
            and (not provider or s.split("|")[2] == provider)
        ]
        return (from_micros(fitted[0][0]) if fitted else None), points

    def close(self) -> None:
        with self._lock:
            self._conn.close()
