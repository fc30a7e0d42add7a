"""Forecasts of each region's and provider's hourly turnover, GGR and active players.

The watch keeps the hourly series (:class:`~tally.risk.detectors.volume.VolumeWatch`'s
history); :func:`fit` learns each series' daily and weekly seasonality with
a two-way seasonal profile (hour of day times day of week, on the log scale) and forecasts
the next ``horizon_hours`` with 80% and 95% intervals; statsforecast's MSTL (daily and
weekly seasons, the remainder by AutoETS) is the other method, kept because the benchmark
measures both (ADR 0026: the profile scored better on simulated weeks). A series too
short for the weekly season is fit on the daily one alone.
:func:`evaluate` measures a forecast on held-out hours against the seasonal-naive one
(the same hour a week earlier): MASE for both and the intervals' coverage.

The figures are statistics (floats); they are never posted or paid.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tally.kernel.clock import Clock
from tally.risk.detectors.model import HOUR
from tally.risk.watch_ports import ForecastPoint, ForecastStore, WatchStore

DAY_H = 24
WEEK_H = 168


@dataclass(frozen=True, slots=True)
class ForecastLimits:
    horizon_hours: int = WEEK_H  # 24 h and 7 days are the first 24 and all 168
    min_history_hours: int = 2 * DAY_H
    series_max: int = 2_000
    levels: tuple[int, int] = (80, 95)


def _seasons(length: int) -> list[int]:
    return [s for s in (DAY_H, WEEK_H) if length >= 2 * s + 1]


def _frame(history: Mapping[str, Mapping[int, float]], limits: ForecastLimits) -> Any:
    """One long frame (unique_id, ds, y) of every long-enough series, each on a regular
    hourly grid up to the last hour any series has (a missing hour had nothing: 0)."""
    import pandas as pd

    last = max((max(h) for h in history.values() if h), default=0)
    rows: list[tuple[str, datetime, float]] = []
    for name, points in sorted(history.items())[: limits.series_max]:
        if not points:
            continue
        first = min(points)
        if last - first + 1 < limits.min_history_hours:
            continue
        rows.extend(
            (name, datetime.fromtimestamp(h * HOUR, UTC).replace(tzinfo=None), points.get(h, 0.0))
            for h in range(first, last + 1)
        )
    return pd.DataFrame(rows, columns=["unique_id", "ds", "y"])


_Z = {80: 1.2815515655446004, 95: 1.959963984540054}


def _t_quantile(z: float, dof: int) -> float:
    """Student's t quantile from the normal one (Cornish-Fisher, to 1/dof²: within 0.1%
    of the table from 10 degrees of freedom; 20 gives 2.0860 for 97.5%)."""
    nu = max(1, dof)
    return z + (z**3 + z) / (4 * nu) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * nu**2)


def _two_way(y: Any, hod: Any, dow: Any, product: bool) -> tuple[Any, Any]:
    """Hour-of-day and day-of-week effects by alternating estimates (group sums by
    ``bincount``: a refit of a hundred series stays well under a second each)."""
    import numpy as np

    n_h = np.bincount(hod, minlength=DAY_H)
    a = np.bincount(hod, weights=y, minlength=DAY_H) / np.maximum(n_h, 1)
    b = np.ones(7) if product else np.zeros(7)
    if len(y) < 2 * WEEK_H:
        return a, b
    n_d = np.bincount(dow, minlength=7)
    y_h = np.bincount(hod, weights=y, minlength=DAY_H)
    y_d = np.bincount(dow, weights=y, minlength=7)
    for _ in range(4):
        if product:
            b = y_d / np.maximum(np.bincount(dow, weights=a[hod], minlength=7), 1e-9)
            b /= b.mean()
            a = y_h / np.maximum(np.bincount(hod, weights=b[dow], minlength=DAY_H), 1e-9)
        else:
            b = (y_d - np.bincount(dow, weights=a[hod], minlength=7)) / np.maximum(n_d, 1)
            b -= b.mean()
            a = (y_h - np.bincount(hod, weights=b[dow], minlength=DAY_H)) / np.maximum(n_h, 1)
    return a, b


def _profile_forecast(
    name: str, first: int, values: Sequence[float], limits: ForecastLimits
) -> list[ForecastPoint]:
    """Hour of day times day of week: multiplicative for turnover, bets and players (a
    daily rhythm scaled by a weekly one), additive for GGR (which goes negative). Fitted
    by alternating ratio (or mean) estimates, a two-way layout; the intervals from each
    hour-of-day's residual spread, scaled as the square root of the forecast where the
    model is multiplicative (counts and sums of stakes vary so) and widened for the
    estimation error of the profile."""
    import numpy as np

    y = np.asarray(values, dtype=float)
    product = _nonnegative(name)
    hours = np.arange(first, first + len(y))
    hod = hours % DAY_H
    # A region's day turns at its local midnight, not at UTC's: the weekly factor's day
    # boundary is the offset (0-23 h) that fits best.
    best: tuple[float, int, Any, Any] | None = None
    for offset in range(DAY_H) if len(y) >= 2 * WEEK_H else (0,):
        a, b = _two_way(y, hod, ((hours + offset) // DAY_H + 3) % 7, product)
        dow = ((hours + offset) // DAY_H + 3) % 7
        fit_ = a[hod] * b[dow] if product else a[hod] + b[dow]
        err = float(np.sum((y - fit_) ** 2))
        if best is None or err < best[0]:
            best = (err, offset, a, b)
    assert best is not None
    _, offset, a, b = best
    dow = ((hours + offset) // DAY_H + 3) % 7
    fitted = a[hod] * b[dow] if product else a[hod] + b[dow]
    scale = np.sqrt(np.maximum(fitted, 1.0)) if product else np.ones_like(fitted)
    resid = (y - fitted) / scale
    sd = np.array([np.std(resid[hod == h], ddof=1) for h in range(DAY_H)])
    per_hour = max(2, len(y) // DAY_H)
    sd *= np.sqrt(1.0 + 1.0 / per_hour)  # each hour's mean is learnt from len/24 points
    lo_level, hi_level = limits.levels
    out: list[ForecastPoint] = []
    last = first + len(y) - 1
    for step in range(1, limits.horizon_hours + 1):
        h = last + step
        hd, dw = h % DAY_H, ((h + offset) // DAY_H + 3) % 7
        centre = float(a[hd] * b[dw] if product else a[hd] + b[dw])
        spread = float(sd[hd] * (np.sqrt(max(centre, 1.0)) if product else 1.0))
        # Student's t, not the normal: each hour's spread is itself estimated from
        # len/24 residuals.
        t_lo, t_hi = (
            _t_quantile(_Z[lo_level], per_hour - 1),
            _t_quantile(_Z[hi_level], per_hour - 1),
        )
        lo80, hi80 = centre - t_lo * spread, centre + t_lo * spread
        lo95, hi95 = centre - t_hi * spread, centre + t_hi * spread
        if product:
            lo80, lo95 = max(0.0, lo80), max(0.0, lo95)
        out.append(
            ForecastPoint(
                name, datetime.fromtimestamp(h * HOUR, UTC), centre, lo80, hi80, lo95, hi95
            )
        )
    return out


def fit(
    history: Mapping[str, Mapping[int, float]],
    limits: ForecastLimits | None = None,
    *,
    method: str = "profile",
) -> list[ForecastPoint]:
    """Forecast every series in ``history`` ({series: {hour since the epoch: value}})
    with ``method``: ``profile`` (the default: measured better, see ADR 0026) or
    ``mstl`` (statsforecast's MSTL)."""
    limits = limits or ForecastLimits()
    if method == "mstl":
        return _fit_mstl(history, limits)
    if method != "profile":
        raise ValueError(f"unknown forecast method {method!r}")
    last = max((max(h) for h in history.values() if h), default=0)
    points: list[ForecastPoint] = []
    for name, series in sorted(history.items())[: limits.series_max]:
        if not series:
            continue
        first = min(series)
        if last - first + 1 < limits.min_history_hours:
            continue
        values = [series.get(h, 0.0) for h in range(first, last + 1)]
        points.extend(_profile_forecast(name, first, values, limits))
    return points


def _fit_mstl(
    history: Mapping[str, Mapping[int, float]], limits: ForecastLimits
) -> list[ForecastPoint]:
    """statsforecast's MSTL: daily and weekly seasons, the rest forecast by AutoETS."""
    from statsforecast import StatsForecast
    from statsforecast.models import MSTL, AutoETS

    frame = _frame(history, limits)
    if frame.empty:
        return []
    lengths = frame.groupby("unique_id").size()
    points: list[ForecastPoint] = []
    # One model per season set: a series with two weeks learns both seasons.
    groups: dict[tuple[int, ...], list[str]] = {}
    for name, length in lengths.items():
        groups.setdefault(tuple(_seasons(int(length))), []).append(str(name))
    lo, hi = limits.levels
    for seasons, names in sorted(groups.items()):
        part = frame[frame["unique_id"].isin(names)]
        model = (
            MSTL(season_length=list(seasons), trend_forecaster=AutoETS(model="ZZN"))
            if seasons
            else AutoETS(model="ZZN", alias="MSTL")
        )
        out = StatsForecast(models=[model], freq="h", n_jobs=1).forecast(
            h=limits.horizon_hours, df=part, level=[lo, hi]
        )
        for row in out.itertuples(index=False):
            d = dict(zip(out.columns, row, strict=True))
            at = d["ds"].to_pydatetime().replace(tzinfo=UTC)
            points.append(
                ForecastPoint(
                    str(d["unique_id"]),
                    at,
                    max(0.0, float(d["MSTL"]))
                    if _nonnegative(d["unique_id"])
                    else float(d["MSTL"]),
                    float(d[f"MSTL-lo-{lo}"]),
                    float(d[f"MSTL-hi-{lo}"]),
                    float(d[f"MSTL-lo-{hi}"]),
                    float(d[f"MSTL-hi-{hi}"]),
                )
            )
    return points


def _nonnegative(series: object) -> bool:
    """Turnover, bets and players cannot go below zero; GGR can."""
    return not str(series).startswith("ggr|")


def seasonal_naive(train: Sequence[float], horizon: int, season: int = WEEK_H) -> list[float]:
    """The same hour one season earlier."""
    return [train[len(train) - season + (h % season)] for h in range(horizon)]


def mase(actual: Sequence[float], forecast: Sequence[float], train: Sequence[float]) -> float:
    """Mean absolute error scaled by the in-sample error of the weekly seasonal naive."""
    scale = sum(abs(train[i] - train[i - WEEK_H]) for i in range(WEEK_H, len(train)))
    scale /= max(1, len(train) - WEEK_H)
    error = sum(abs(a - f) for a, f in zip(actual, forecast, strict=True)) / len(actual)
    return error / scale if scale else float("inf")


@dataclass(frozen=True, slots=True)
class Accuracy:
    series: int
    mase_model: float
    mase_naive: float
    coverage_80: float
    coverage_95: float
    fit_s: float

    @property
    def improvement(self) -> float:
        """How much lower the model's MASE is than the naive's (0.2 = 20% better)."""
        return 1.0 - self.mase_model / self.mase_naive


def evaluate(
    history: Mapping[str, Mapping[int, float]],
    held_out: Mapping[str, Mapping[int, float]],
    limits: ForecastLimits | None = None,
    *,
    method: str = "profile",
) -> Accuracy:
    """Fit on ``history``, judge on ``held_out`` (the hours that follow it)."""
    limits = limits or ForecastLimits()
    started = time.perf_counter()
    points = fit(history, limits, method=method)
    fit_s = time.perf_counter() - started
    by_series: dict[str, list[ForecastPoint]] = {}
    for p in points:
        by_series.setdefault(p.series, []).append(p)
    model_m, naive_m, inside80, inside95, total = [], [], 0, 0, 0
    for name, fc in by_series.items():
        truth = held_out.get(name, {})
        train_points = history[name]
        first = min(train_points)
        last = max(max(h) for h in history.values() if h)
        train = [train_points.get(h, 0.0) for h in range(first, last + 1)]
        if len(train) < WEEK_H + 1:
            continue
        actual = [truth.get(int(p.hour.timestamp()) // HOUR, 0.0) for p in fc]
        model_m.append(mase(actual, [p.mean for p in fc], train))
        naive_m.append(mase(actual, seasonal_naive(train, len(fc)), train))
        for a, p in zip(actual, fc, strict=True):
            total += 1
            inside80 += p.lo80 <= a <= p.hi80
            inside95 += p.lo95 <= a <= p.hi95
    return Accuracy(
        len(model_m),
        sum(model_m) / max(1, len(model_m)),
        sum(naive_m) / max(1, len(naive_m)),
        inside80 / max(1, total),
        inside95 / max(1, total),
        fit_s,
    )


def history_of(state: Mapping[str, Any] | None) -> dict[str, dict[int, float]]:
    """The hourly series out of the watch's committed state."""
    volume = (state or {}).get("volume", {})
    return {
        name: {int(h): float(v) for h, v in points.items()}
        for name, points in volume.get("history", {}).items()
    }


class Forecasts:
    """Refits the forecasts from the watch's series and serves them as its corridor."""

    def __init__(
        self,
        watch_state: WatchStore,
        store: ForecastStore,
        clock: Clock,
        limits: ForecastLimits | None = None,
        *,
        consumer: str = "risk-watch",
        method: str = "profile",
    ) -> None:
        self.method = method
        self.watch_state = watch_state
        self.store = store
        self.clock = clock
        self.limits = limits or ForecastLimits()
        self.consumer = consumer
        self._cache: dict[tuple[str, int], tuple[float, float, float]] | None = None

    def refit(self) -> int:
        """Fit every series again; returns how many points were stored."""
        state = self.watch_state.load_state(self.consumer)
        points = fit(history_of(state), self.limits, method=self.method)
        self.store.replace(self.clock.now(), points)
        self._cache = None
        return len(points)

    def interval(self, series: str, hour: int) -> tuple[float, float, float] | None:
        """The volume watch's :class:`~tally.risk.detectors.volume.Corridor`."""
        if self._cache is None:
            _, points = self.store.latest(limit=self.limits.series_max * 200)
            self._cache = {
                (p.series, int(p.hour.timestamp()) // HOUR): (p.mean, p.lo95, p.hi95)
                for p in points
            }
        return self._cache.get((series, hour))
