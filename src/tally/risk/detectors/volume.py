"""Volume watch: callbacks, turnover, GGR and active players per region and provider. Pure.

Two horizons:

- Every minute, each (region, provider)'s count of bets (its callback rate) is compared
  with what it was expected to be over the last 1, 2, 3 and 5 minutes. A drop (one
  provider's outage in one region) is judged against the region's other providers: of all
  the bets the region took, this provider's count is binomial with its learnt share (EWMA
  levels), so the daily and weekly rhythm, which moves them all alike, cannot raise one.
  A surge is judged against the series' own level: the forecast's rate for that hour
  where the watch has one (the :class:`Corridor`), else a slow EWMA of its recent minutes.
  Either needs a count that chance gives less than ``p_drop`` (``p_surge``) *and* a ratio past
  ``drop_ratio`` (``surge_ratio``), so neither a quiet night (too few bets to tell) nor an
  error in the expectation alone can raise one. It clears after ``calm_minutes`` back in
  line.
- Every hour, turnover, GGR and active players per (region, provider, currency) are kept
  as the series the forecasts learn from, and judged against the forecast's 95% interval
  widened by ``corridor_widen`` (the corridor), when a forecast is there.

Events recorded more than ``late_after_s`` after they occurred are counted too: a burst
of them is a late batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tally.kernel.alerts import Severity
from tally.risk.detectors.model import (
    BET,
    HOUR,
    MINUTE,
    RETURNS,
    Clear,
    Said,
    WatchEvent,
    instant,
    signal,
)
from tally.risk.detectors.stats import binomial_cdf, poisson_cdf, poisson_sf

DROP = "risk.volume.drop"
SURGE = "risk.volume.surge"
CORRIDOR = "risk.volume.corridor"
LATE = "risk.events.late"
WINDOWS = (1, 2, 3, 5)


class Corridor(Protocol):
    """The forecast's view of one hourly series: (mean, low 95%, high 95%) or None."""

    def interval(self, series: str, hour: int) -> tuple[float, float, float] | None: ...


class NoCorridor:
    def interval(self, series: str, hour: int) -> tuple[float, float, float] | None:
        return None


@dataclass(frozen=True, slots=True)
class VolumeLimits:
    p_drop: float = 1e-5
    p_surge: float = 1e-6
    drop_ratio: float = 0.3
    surge_ratio: float = 2.0
    surge_excess_min: int = 10  # a surge is at least this many bets over the expectation
    baseline_alpha: float = 0.05  # per minute: about 20 minutes of memory
    warmup_minutes: int = 30
    calm_minutes: int = 2
    corridor_widen: float = 1.5
    history_hours: int = 5 * 7 * 24  # hourly points kept for the forecasts
    late_after_s: int = 600
    late_burst: int = 20  # late events in one minute that make a late batch


def _capped(s: list[Any], k: int) -> float:
    """A series' bets over its last ``k`` minutes, at most ``BURST_CAP`` times its level:
    one provider's burst (a late batch flushed) must not make its neighbours look idle."""
    return min(float(sum(s[2][-k:])), BURST_CAP * float(s[3]) * k)


BURST_CAP = 3.0


def series_name(metric: str, region: str, provider: str, currency: str = "") -> str:
    return (
        "|".join((metric, region, provider, currency))
        if currency
        else "|".join((metric, region, provider))
    )


class VolumeWatch:
    name = "volume"

    def __init__(self, corridor: Corridor | None = None, limits: VolumeLimits | None = None):
        self.corridor = corridor or NoCorridor()
        self.limits = limits or VolumeLimits()
        self.minute = -1
        self.hour = -1
        # region|provider -> [this minute's bets, late events, recent minutes (newest last),
        # level, minutes seen, drop state, surge state, calm streak, late state,
        # this hour's {currency: [turnover, ggr]}, this hour's players, this hour's bets]
        self.series: dict[str, list[Any]] = {}
        self._by: dict[tuple[str, str], list[Any]] = {}  # the same lists, by a tuple
        self.history: dict[str, dict[str, float]] = {}  # series -> {hour: value}
        self.outside: set[str] = set()  # hourly series outside their corridor

    # -- events ---------------------------------------------------------------------

    def observe(self, e: WatchEvent, out: list[Said]) -> None:
        s = self._by.get((e.region, e.provider))
        if s is None:
            s = self.series[f"{e.region}|{e.provider}"] = [
                *(0, 0, [], 0.0, 0, 0, 0, 0, 0),
                *({}, set(), 0),
            ]
            self._by[(e.region, e.provider)] = s
        late = e.at - e.occurred > self.limits.late_after_s
        if late:
            s[1] += 1
        kind = e.kind
        if kind == BET:
            if not late:  # a late batch's bets are old news, not this minute's rate
                s[0] += 1
            m = s[9].get(e.currency)
            if m is None:
                m = s[9][e.currency] = [0, 0]
            m[0] += e.amount
            m[1] += e.amount
            s[10].add(e.player)
            s[11] += 1
        elif kind in RETURNS:
            m = s[9].get(e.currency)
            if m is None:
                m = s[9][e.currency] = [0, 0]
            m[1] -= e.amount

    # -- time -----------------------------------------------------------------------

    def tick(self, now: int, out: list[Said]) -> None:
        minute = now // MINUTE
        if self.minute < 0:
            self.minute, self.hour = minute, now // HOUR
            return
        while self.minute < minute:
            end = (self.minute + 1) * MINUTE
            for s in self.series.values():
                recent: list[int] = s[2]
                recent.append(s[0])
                del recent[: -max(WINDOWS)]
            regions = self._regions(end)
            for rp, s in self.series.items():
                self._close_minute(rp, s, end, regions, out)
            self.minute += 1
            if end // HOUR > self.hour:
                self._close_hour(self.hour, end, out)
                self.hour = end // HOUR

    def _expected(self, rp: str, s: list[Any], at: int) -> float:
        forecast = self.corridor.interval(f"bets|{rp}", at // HOUR)
        if forecast is not None:
            return forecast[0] / 60.0
        return float(s[3])

    def _regions(self, end: int) -> dict[str, list[float]]:
        """Per region: [level sum, observed in each window...] over its judged series."""
        found: dict[str, list[float]] = {}
        for rp, s in self.series.items():
            if s[4] < self.limits.warmup_minutes:
                continue
            sums = found.setdefault(rp.split("|", 1)[0], [0.0] * (1 + len(WINDOWS)))
            sums[0] += s[3]
            for i, k in enumerate(WINDOWS):
                sums[1 + i] += _capped(s, k)
        return found

    def _close_minute(
        self,
        rp: str,
        s: list[Any],
        end: int,
        regions: dict[str, list[float]],
        out: list[Said],
    ) -> None:
        lim = self.limits
        count, late = s[0], s[1]
        recent: list[int] = s[2]
        s[0] = s[1] = 0
        s[4] += 1
        region, provider = rp.split("|", 1)
        self._late(rp, s, late, end, region, provider, out)
        if s[4] <= lim.warmup_minutes:
            s[3] += (count - s[3]) / s[4]  # the plain mean until the EWMA has history
            return
        lam = self._expected(rp, s, end - MINUTE)
        if s[5] or s[6]:
            in_line = (s[5] and count >= 0.6 * lam) or (s[6] and count <= 1.5 * lam)
            s[7] = s[7] + 1 if in_line else 0
            if s[7] >= lim.calm_minutes:
                out.append(Clear(DROP if s[5] else SURGE, rp, instant(end)))
                s[5] = s[6] = s[7] = 0
            return
        sums = regions.get(region)
        others_level = sums[0] - s[3] if sums else 0.0
        for i, k in enumerate(WINDOWS):
            if len(recent) < k:
                break
            obs, mean = sum(recent[-k:]), lam * k
            # A drop is judged against the rest of the region: given all the bets its
            # providers took, this provider's count is binomial with its learnt share
            # (from the EWMA levels). Daily and weekly seasonality move every provider of
            # a region alike, so the share holds through a lull; one provider's outage
            # breaks it.
            if sums and others_level > 0:
                others = int(sums[1 + i] - _capped(s, k))
                share = float(s[3]) / (others_level + float(s[3]))
                expected = (obs + others) * share
                chance = binomial_cdf(obs, obs + others, share)
            else:
                expected, chance = mean, poisson_cdf(obs, mean)
            if obs <= lim.drop_ratio * expected and chance < lim.p_drop:
                s[5] = 1
                out.append(self._said(DROP, rp, end, obs, expected, k, region, provider))
                return
            if (
                obs >= lim.surge_ratio * mean
                and obs - mean >= lim.surge_excess_min
                and poisson_sf(obs, mean) < lim.p_surge
            ):
                s[6] = 1
                out.append(self._said(SURGE, rp, end, obs, mean, k, region, provider))
                return
        s[3] += lim.baseline_alpha * (count - s[3])

    def _said(
        self, kind: str, rp: str, end: int, obs: int, mean: float, k: int, region: str, prov: str
    ) -> Any:
        what = "stopped" if kind == DROP else "surged"
        return signal(
            kind,
            rp,
            end,
            f"callbacks from {prov} in {region} {what}: {obs} bets in the last {k} "
            f"minute(s) where {mean:.1f} were expected",
            severity=Severity.CRITICAL if kind == DROP else Severity.WARNING,
            evidence={"observed": obs, "expected": mean, "window_minutes": k},
            region=region,
            provider=prov,
            confidence_permille=999,
        )

    def _late(
        self, rp: str, s: list[Any], late: int, end: int, region: str, prov: str, out: list[Said]
    ) -> None:
        if late >= self.limits.late_burst and not s[8]:
            s[8] = 1
            out.append(
                signal(
                    LATE,
                    rp,
                    end,
                    f"{late} events from {prov} in {region} arrived more than "
                    f"{self.limits.late_after_s // 60} minutes after they occurred: a late batch",
                    evidence={"late_events": late, "late_after_s": self.limits.late_after_s},
                    region=region,
                    provider=prov,
                )
            )
        elif late == 0 and s[8]:
            s[8] = 0
            out.append(Clear(LATE, rp, instant(end)))

    def _close_hour(self, hour: int, end: int, out: list[Said]) -> None:
        values: dict[str, float] = {}
        for rp, s in self.series.items():
            for currency, (turnover, ggr) in s[9].items():
                values[f"turnover|{rp}|{currency}"] = float(turnover)
                values[f"ggr|{rp}|{currency}"] = float(ggr)
            values[f"players|{rp}"] = float(len(s[10]))
            values[f"bets|{rp}"] = float(s[11])
            s[9], s[10], s[11] = {}, set(), 0
        keep_from = hour - self.limits.history_hours
        for name, value in values.items():
            h = self.history.setdefault(name, {})
            h[str(hour)] = value
            if len(h) > self.limits.history_hours:
                for old in [x for x in h if int(x) <= keep_from]:
                    del h[old]
            self._judge_hour(name, hour, value, end, out)

    def _judge_hour(self, name: str, hour: int, value: float, end: int, out: list[Said]) -> None:
        forecast = self.corridor.interval(name, hour)
        if forecast is None:
            return
        mean, low, high = forecast
        widen = self.limits.corridor_widen
        low, high = mean - (mean - low) * widen, mean + (high - mean) * widen
        metric, region, provider = name.split("|")[:3]
        if low <= value <= high:
            if name in self.outside:
                self.outside.discard(name)
                out.append(Clear(CORRIDOR, name, instant(end)))
            return
        self.outside.add(name)
        out.append(
            signal(
                CORRIDOR,
                name,
                end,
                f"{metric} of {provider} in {region} was {value:.0f} in the hour, outside "
                f"the forecast corridor [{low:.0f}, {high:.0f}]",
                evidence={"value": value, "forecast": mean, "low": low, "high": high},
                region=region,
                provider=provider,
                confidence_permille=950,
            )
        )

    # -- state ----------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "minute": self.minute,
            "hour": self.hour,
            "series": {k: [*v[:10], sorted(v[10]), v[11]] for k, v in self.series.items()},
            "history": self.history,
            "outside": sorted(self.outside),
        }

    def load(self, state: Mapping[str, Any]) -> None:
        self.minute = int(state.get("minute", -1))
        self.hour = int(state.get("hour", -1))
        self.series = {
            k: [*v[:9], {c: list(m) for c, m in v[9].items()}, set(v[10]), v[11]]
            for k, v in state.get("series", {}).items()
        }
        self._by = {tuple(k.split("|", 1)): v for k, v in self.series.items()}  # type: ignore[misc]
        self.history = {k: dict(v) for k, v in state.get("history", {}).items()}
        self.outside = set(state.get("outside", []))
