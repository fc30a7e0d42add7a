"""Settlement watch: each hour's settled figures against the same hour last week. Pure.

Per (provider, operator, region, currency), an hour's turnover and GGR (exact ints) are compared
with the same hour a week earlier. The band is that of a difference of two independent
compound sums: turnover's variance is Σ stake² (a Poisson number of bets of random stakes),
GGR's adds each game's volatility² · stake². A difference past the band at ``level`` is
said; the next hour back inside clears it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tally.risk.detectors.model import BET, HOUR, RETURNS, WEEK, Clear, Said, WatchEvent, instant
from tally.risk.detectors.model import signal as said
from tally.risk.detectors.stats import difference_band

PERIOD_SHIFT = "risk.settlement.period_shift"
WEEK_HOURS = WEEK // HOUR


@dataclass(frozen=True, slots=True)
class SettlementLimits:
    level: float = 0.99999
    volatility_default: float = 3.0  # per-unit-stake sd of a game without a configuration
    min_bets: int = 30  # an hour with fewer bets (either week) is not judged


class WeekOverWeek:
    name = "settlement"

    def __init__(
        self, volatility: Mapping[str, float] | None = None, limits: SettlementLimits | None = None
    ) -> None:
        self.volatility = dict(volatility or {})
        self.limits = limits or SettlementLimits()
        self.hour = -1
        # provider|operator|region|currency -> [bets, turnover, Σs², ggr, Σ vol²s²] for this hour
        self.now: dict[tuple[str, str, str, str], list[float]] = {}
        # "hour|provider|operator|currency" -> the closed hour's figures (one week kept)
        self.past: dict[str, list[float]] = {}
        self.shifted: set[str] = set()

    def observe(self, e: WatchEvent, out: list[Said]) -> None:
        if e.kind != BET and e.kind not in RETURNS:
            return
        k = (e.provider, e.operator, e.region, e.currency)
        f = self.now.get(k)
        if f is None:
            f = self.now[k] = [0, 0, 0, 0, 0.0]
        if e.kind == BET:
            sq = e.amount * e.amount
            vol = self.volatility.get(e.game, self.limits.volatility_default)
            f[0] += 1
            f[1] += e.amount
            f[2] += sq
            f[3] += e.amount
            f[4] += vol * vol * sq
        else:
            f[3] -= e.amount

    def tick(self, now: int, out: list[Said]) -> None:
        hour = now // HOUR
        if self.hour < 0:
            self.hour = hour
            return
        while self.hour < hour:
            self._close(self.hour, out)
            self.hour += 1

    def _close(self, hour: int, out: list[Said]) -> None:
        lim = self.limits
        end = (hour + 1) * HOUR
        for dims, f in self.now.items():
            k = "|".join(dims)
            self.past[f"{hour}|{k}"] = f
            before = self.past.pop(f"{hour - WEEK_HOURS}|{k}", None)
            if before is None or min(f[0], before[0]) < lim.min_bets:
                continue
            provider, operator, region, currency = dims
            moved = []
            for name, value, then, var_now, var_then in (
                ("turnover", f[1], before[1], f[2], before[2]),
                ("ggr", f[3], before[3], f[4], before[4]),
            ):
                half = difference_band(float(var_now), float(var_then), lim.level)
                if abs(value - then) > half:
                    moved.append((name, int(value), int(then), half))
            if moved:
                self.shifted.add(k)
                name, value, then, half = moved[0]
                out.append(
                    said(
                        PERIOD_SHIFT,
                        k,
                        end,
                        f"{name} of {provider} with {operator} in {region} was {value} "
                        f"{currency} in the hour, {value - then:+d} against the same hour "
                        f"last week, beyond its {lim.level:.3%} band of ±{half:.0f}",
                        evidence={
                            **{f"{n}": v for n, v, _, _ in moved},
                            **{f"{n}_last_week": t for n, _, t, _ in moved},
                            "band": half,
                            "hour": instant(hour * HOUR).isoformat(),
                        },
                        region=region,
                        provider=provider,
                        operator=operator,
                        money_at_risk=abs(value - then),
                        currency=currency,
                        confidence_permille=999,
                    )
                )
            elif k in self.shifted:
                self.shifted.discard(k)
                out.append(Clear(PERIOD_SHIFT, k, instant(end)))
        # Hours a week old that no pair reached again are dropped: memory stays one week.
        stale = f"{hour - WEEK_HOURS}|"
        for old in [x for x in self.past if x.startswith(stale)]:
            del self.past[old]
        self.now = {}

    def state(self) -> dict[str, Any]:
        return {
            "hour": self.hour,
            "now": {"|".join(k): v for k, v in self.now.items()},
            "past": self.past,
            "shifted": sorted(self.shifted),
        }

    def load(self, state: Mapping[str, Any]) -> None:
        self.hour = int(state.get("hour", -1))
        self.now = {_dims(k): list(v) for k, v in state.get("now", {}).items()}
        self.past = {k: list(v) for k, v in state.get("past", {}).items()}
        self.shifted = set(state.get("shifted", []))


def _dims(key: str) -> tuple[str, str, str, str]:
    provider, operator, region, currency = key.split("|")
    return provider, operator, region, currency
