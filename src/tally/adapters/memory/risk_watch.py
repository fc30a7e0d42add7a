"""In-memory risk watch state and forecasts (the reference fakes)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from tally.risk.detectors.model import Said
from tally.risk.detectors.rtp import GameRtp
from tally.risk.watch_codec import said_from_dict, said_to_dict
from tally.risk.watch_ports import ForecastPoint


class MemoryWatchStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._positions: dict[str, int] = {}
        self._states: dict[str, dict[str, Any]] = {}
        self._outbox: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self._next = 0

    def position(self, consumer: str) -> int:
        with self._lock:
            return self._positions.get(consumer, 0)

    def load_state(self, consumer: str) -> Mapping[str, Any] | None:
        with self._lock:
            found = self._states.get(consumer)
            return copy.deepcopy(found) if found is not None else None

    def commit(
        self,
        consumer: str,
        position: int,
        state: Mapping[str, Any],
        said: Sequence[Said],
        at: datetime,
    ) -> None:
        # Copied as a database would (through JSON, as the SQLite store keeps it): what the
        # detectors change next is not committed.
        snapshot = orjson.loads(orjson.dumps(state))
        rows = [said_to_dict(s) for s in said]
        with self._lock:
            self._positions[consumer] = position
            self._states[consumer] = snapshot
            box = self._outbox.setdefault(consumer, [])
            for row in rows:
                self._next += 1
                box.append((self._next, row))

    def outbox(self, consumer: str, limit: int) -> list[tuple[int, Said]]:
        with self._lock:
            return [(i, said_from_dict(r)) for i, r in self._outbox.get(consumer, [])[:limit]]

    def delivered(self, consumer: str, upto: int) -> None:
        with self._lock:
            box = self._outbox.get(consumer, [])
            self._outbox[consumer] = [(i, r) for i, r in box if i > upto]

    def close(self) -> None:
        """Nothing held: nothing to release."""


class MemoryGameConfigs:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._games: dict[str, GameRtp] = {}

    def save(self, game: GameRtp) -> None:
        with self._lock:
            self._games[game.game] = game

    def all(self) -> list[GameRtp]:
        with self._lock:
            return [self._games[k] for k in sorted(self._games)]


class MemoryForecastStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fitted: datetime | None = None
        self._points: list[ForecastPoint] = []

    def replace(self, fitted_at: datetime, points: Sequence[ForecastPoint]) -> None:
        with self._lock:
            self._fitted, self._points = fitted_at, list(points)

    def latest(
        self, *, metric: str = "", region: str = "", provider: str = "", limit: int = 10_000
    ) -> tuple[datetime | None, list[ForecastPoint]]:
        with self._lock:
            found = [
                p
                for p in self._points
                if (not metric or p.metric == metric)
                and (not region or p.region == region)
                and (not provider or p.provider == provider)
            ]
            return self._fitted, found[:limit]
