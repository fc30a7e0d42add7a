"""Forecasts: the seasonal profile against the seasonal naive on held-out weeks."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import pytest

from tally.adapters.memory.risk_watch import MemoryForecastStore, MemoryWatchStore
from tally.kernel.clock import FixedClock
from tally.risk.forecast import ForecastLimits, Forecasts, evaluate, fit, mase, seasonal_naive

HOURLY = [0.35, 0.25, 0.18, 0.12, 0.10, 0.10, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65]
HOURLY += [0.75, 0.70, 0.65, 0.65, 0.70, 0.80, 0.95, 1.00, 1.00, 0.90, 0.70, 0.50]
WEEKLY = [0.85, 0.85, 0.90, 0.95, 1.10, 1.25, 1.15]
H0 = 492_000  # an hour since the epoch; the series' local day turns 5 hours off UTC's


def _series(rng: random.Random, hours: int, scale: float, offset: int) -> dict[int, float]:
    out = {}
    for h in range(H0, H0 + hours):
        local = h + offset
        lam = scale * HOURLY[local % 24] * WEEKLY[(local // 24 + 3) % 7]
        out[h] = max(0.0, rng.gauss(lam, math.sqrt(lam)))
    return out


def test_mase_scales_by_the_in_sample_seasonal_naive_error() -> None:
    train = [float(i % 168) for i in range(336)]
    train[200] += 168.0  # one in-sample naive error of 168 over 168 steps: scale 1.0
    assert mase([10.0, 12.0], [11.0, 10.0], train) == pytest.approx(1.5)
    assert seasonal_naive(train, 3) == train[168:171]


def test_the_profile_beats_the_seasonal_naive_by_a_fifth_and_its_intervals_cover() -> None:
    rng = random.Random(7)
    history, held = {}, {}
    for i in range(6):
        s = _series(rng, 4 * 168, 150.0 + 40 * i, offset=-5 + 3 * i)
        history[f"bets|r{i}|p1"] = {h: v for h, v in s.items() if h < H0 + 3 * 168}
        held[f"bets|r{i}|p1"] = {h: v for h, v in s.items() if h >= H0 + 3 * 168}
    acc = evaluate(history, held)
    assert acc.series == 6
    assert acc.improvement >= 0.2, acc
    assert 0.92 <= acc.coverage_95 <= 0.98, acc
    assert 0.74 <= acc.coverage_80 <= 0.86, acc


def test_ggr_is_forecast_on_the_raw_scale_and_may_go_below_zero() -> None:
    rng = random.Random(3)
    series = {H0 + h: rng.gauss(-50.0, 400.0) for h in range(3 * 168)}
    points = fit({"ggr|eu|p1|EUR": series}, ForecastLimits(horizon_hours=24))
    assert len(points) == 24
    assert min(p.lo95 for p in points) < 0
    assert all(p.lo95 <= p.lo80 <= p.mean <= p.hi80 <= p.hi95 for p in points)


def test_a_series_too_short_is_not_forecast() -> None:
    assert fit({"bets|eu|p1": {H0 + h: 5.0 for h in range(30)}}) == []
    with pytest.raises(ValueError, match="unknown forecast method"):
        fit({}, method="crystal-ball")


def test_the_forecasts_refit_from_the_watch_state_and_serve_its_corridor() -> None:
    rng = random.Random(5)
    s = _series(rng, 2 * 168 + 24, 200.0, 0)
    watch = MemoryWatchStore()
    state = {"volume": {"history": {"bets|eu|p1": {str(h): v for h, v in s.items()}}}}
    watch.commit("risk-watch", 10, state, [], datetime(2026, 3, 1, tzinfo=UTC))
    store = MemoryForecastStore()
    forecasts = Forecasts(watch, store, FixedClock(datetime(2026, 3, 1, tzinfo=UTC)))
    assert forecasts.refit() == 168
    fitted_at, points = store.latest(metric="bets", region="eu")
    assert fitted_at == datetime(2026, 3, 1, tzinfo=UTC) and len(points) == 168
    next_hour = max(s) + 1
    mean, low, high = forecasts.interval("bets|eu|p1", next_hour) or (0.0, 0.0, 0.0)
    assert low < mean < high and mean == points[0].mean
    assert forecasts.interval("bets|eu|p9", next_hour) is None
