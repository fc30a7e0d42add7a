"""What the risk watch needs from the world: its state store, game configuration and
the forecasts it serves and judges by.

The watch store commits the log position, every detector's state and the signals the
batch produced in one transaction (an outbox): a restart resumes exactly where the last
commit left, so no event is missed or counted twice, and signals not yet handed to the
alert sink are handed on restart (the sink is idempotent on (kind, key)).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tally.risk.detectors.model import Said
from tally.risk.detectors.rtp import GameRtp


class WatchStore(Protocol):
    def position(self, consumer: str) -> int:
        """The last log position committed (0 before the first)."""
        ...

    def load_state(self, consumer: str) -> Mapping[str, Any] | None:
        """The detectors' state as of :meth:`position` (None before the first commit)."""
        ...

    def commit(
        self,
        consumer: str,
        position: int,
        state: Mapping[str, Any],
        said: Sequence[Said],
        at: datetime,
    ) -> None:
        """Position, state and the batch's signals (into the outbox), all or nothing."""
        ...

    def outbox(self, consumer: str, limit: int) -> list[tuple[int, Said]]:
        """Signals committed but not yet delivered, oldest first, with their ids."""
        ...

    def delivered(self, consumer: str, upto: int) -> None:
        """Outbox entries up to id ``upto`` reached the sink."""
        ...


class GameConfigs(Protocol):
    """Certified RTP per game, validated when saved (:class:`GameRtp` refuses bad ones)."""

    def save(self, game: GameRtp) -> None: ...

    def all(self) -> list[GameRtp]: ...


@dataclass(frozen=True, slots=True)
class ForecastPoint:
    """One hour of one series' forecast: the mean and its 80% and 95% intervals."""

    series: str  # metric|region|provider[|currency]
    hour: datetime  # the hour's start, UTC
    mean: float
    lo80: float
    hi80: float
    lo95: float
    hi95: float

    @property
    def metric(self) -> str:
        return self.series.split("|")[0]

    @property
    def region(self) -> str:
        return self.series.split("|")[1]

    @property
    def provider(self) -> str:
        return self.series.split("|")[2]


class ForecastStore(Protocol):
    def replace(self, fitted_at: datetime, points: Sequence[ForecastPoint]) -> None:
        """The latest refit's points replace the previous ones."""
        ...

    def latest(
        self, *, metric: str = "", region: str = "", provider: str = "", limit: int = 10_000
    ) -> tuple[datetime | None, list[ForecastPoint]]:
        """When the latest refit ran and its points, filtered."""
        ...


class RiskStore(WatchStore, GameConfigs, ForecastStore, Protocol):
    """One store for all three (the embedded file keeps them together)."""

    def close(self) -> None: ...
