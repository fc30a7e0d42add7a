"""The risk watch's stores, the same on every adapter: position, state and outbox commit
together; game figures and forecasts read back as written."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tally.adapters.memory.risk_watch import (
    MemoryForecastStore,
    MemoryGameConfigs,
    MemoryWatchStore,
)
from tally.adapters.sqlite.risk_watch import SqliteRiskStore
from tally.kernel.alerts import AlertSignal, Severity
from tally.risk.detectors.model import Clear
from tally.risk.detectors.rtp import GameRtp
from tally.risk.watch_ports import ForecastPoint

AT = datetime(2026, 3, 2, 12, tzinfo=UTC)


class _MemoryAll:
    """The three memory fakes behind one object, as the SQLite store is one."""

    def __init__(self) -> None:
        self.watch, self.games, self.forecasts = (
            MemoryWatchStore(),
            MemoryGameConfigs(),
            MemoryForecastStore(),
        )

    def __getattr__(self, name: str) -> Any:
        for part in (self.watch, self.games, self.forecasts):
            if hasattr(part, name):
                return getattr(part, name)
        raise AttributeError(name)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield _MemoryAll()
        return
    if request.param == "postgres":
        from tally.adapters.postgres.risk_watch import PostgresRiskStore
        from tests.conftest import PG_DSN

        pg = PostgresRiskStore(PG_DSN, schema=request.getfixturevalue("pg_schema"))
        yield pg
        pg.close()
        return
    s = SqliteRiskStore(tmp_path / "tally.db")
    yield s
    s.close()


def _alert(key: str) -> AlertSignal:
    return AlertSignal(
        kind="risk.volume.drop",
        key=key,
        severity=Severity.CRITICAL,
        cause="callbacks stopped",
        at=AT,
        region="eu",
        provider="p1",
        evidence={"observed": "0"},
    )


def test_nothing_is_committed_before_the_first_batch(store: Any) -> None:
    assert store.position("w") == 0
    assert store.load_state("w") is None
    assert store.outbox("w", 10) == []


def test_position_state_and_signals_commit_together_and_read_back(store: Any) -> None:
    state = {"minute": 5, "volume": {"series": {"eu|p1": [1, 2, [3], 0.5]}}}
    store.commit("w", 42, state, [_alert("eu|p1"), Clear("risk.volume.drop", "eu|p1", AT)], AT)
    assert store.position("w") == 42
    assert store.load_state("w") == state
    box = store.outbox("w", 10)
    assert [s for _, s in box] == [_alert("eu|p1"), Clear("risk.volume.drop", "eu|p1", AT)]
    assert box[0][0] < box[1][0]
    assert store.position("other") == 0  # consumers are apart


def test_delivered_signals_leave_the_outbox_in_order(store: Any) -> None:
    store.commit("w", 1, {}, [_alert("a"), _alert("b")], AT)
    store.commit("w", 2, {}, [_alert("c")], AT)
    first = store.outbox("w", 2)
    assert [s.key for _, s in first] == ["a", "b"]
    store.delivered("w", first[-1][0])
    assert [s.key for _, s in store.outbox("w", 10)] == ["c"]


def test_a_later_commit_replaces_the_state(store: Any) -> None:
    store.commit("w", 1, {"minute": 1}, [], AT)
    store.commit("w", 9, {"minute": 2}, [], AT)
    assert store.position("w") == 9 and store.load_state("w") == {"minute": 2}


def test_game_figures_read_back_as_saved_and_a_save_replaces(store: Any) -> None:
    store.save(GameRtp("g2", Decimal("0.95"), Decimal("2.5"), 500))
    store.save(GameRtp("g1", Decimal("0.96"), Decimal("1.8")))
    store.save(GameRtp("g2", Decimal("0.97"), Decimal("2.5"), 1000))
    assert store.all() == [
        GameRtp("g1", Decimal("0.96"), Decimal("1.8")),
        GameRtp("g2", Decimal("0.97"), Decimal("2.5"), 1000),
    ]


def test_the_latest_forecast_replaces_the_last_and_filters(store: Any) -> None:
    assert store.latest() == (None, [])

    def point(series: str, h: int) -> ForecastPoint:
        return ForecastPoint(series, AT + timedelta(hours=h), 10.0, 8.0, 12.0, 6.0, 14.0)

    store.replace(AT, [point("bets|eu|p1", 0), point("bets|eu|p1", 1)])
    store.replace(
        AT + timedelta(hours=1),
        [point("turnover|eu|p1|EUR", 1), point("bets|uk|p1", 1), point("bets|eu|p2", 1)],
    )
    fitted, points = store.latest()
    assert fitted == AT + timedelta(hours=1) and len(points) == 3
    _, eu = store.latest(metric="bets", region="eu")
    assert [p.series for p in eu] == ["bets|eu|p2"]
    _, p1 = store.latest(provider="p1")
    assert sorted(p.series for p in p1) == ["bets|uk|p1", "turnover|eu|p1|EUR"]
    assert p1[0].lo95 == 6.0 and p1[0].hi80 == 12.0
