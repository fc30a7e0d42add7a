"""RTP watch: each game's observed return to player against its certified RTP. Pure.

Each round's return as a multiple of its own stake fills tumbling windows of
``window_bets`` bets per game (sums of money stay exact ints, per currency, beside it).
A closed window is judged against the variance-aware band of
:func:`~tally.risk.detectors.stats.rtp_band` at ``level`` (99.9%): it narrows as the
window's bets accumulate. One window outside its band is a chance in a thousand;
``confirm`` windows in a row on the same side is the alert (a one-in-a-million on a
clean game), and the first window back inside clears it. A win above the game's
``max_win_multiplier`` times its bet is an outlier, said at once.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tally.kernel.alerts import Severity
from tally.risk.detectors.model import (
    BET,
    JACKPOT_WIN,
    RETURNS,
    Clear,
    Said,
    WatchEvent,
    instant,
    signal,
)
from tally.risk.detectors.stats import rtp_band

RTP_DRIFT = "risk.rtp.drift"
WIN_OUTLIER = "risk.behaviour.win_outlier"


class ConfigRefused(ValueError):
    """Configuration that would make a detector meaningless, refused when saved."""


@dataclass(frozen=True, slots=True)
class GameRtp:
    """A game's certified figures: RTP in (0, 1], the per-unit-stake standard deviation
    of one bet's return (its volatility), and the largest win one bet may pay."""

    game: str
    certified_rtp: Decimal
    volatility: Decimal
    max_win_multiplier: int = 0  # 0: no limit is certified

    def __post_init__(self) -> None:
        if not self.game:
            raise ConfigRefused("an RTP configuration names its game")
        if not Decimal(0) < self.certified_rtp <= Decimal(1):
            raise ConfigRefused(
                f"game {self.game}: a certified RTP is in (0, 1], not {self.certified_rtp}"
            )
        if not self.volatility > 0:
            raise ConfigRefused(f"game {self.game}: volatility must be positive")
        if self.max_win_multiplier < 0:
            raise ConfigRefused(f"game {self.game}: a win limit cannot be negative")


@dataclass(frozen=True, slots=True)
class RtpLimits:
    window_bets: int = 300
    confirm: int = 2
    level: float = 0.999
    rounds_remembered: int = 50_000  # bets kept to match a win to its stake


class RtpWatch:
    """Per game, a round's return is judged as a multiple of its own stake (unit-free, so
    bets in every currency fill one window); the window's amounts stay exact ints per
    currency for the evidence and the money at risk."""

    name = "rtp"

    def __init__(self, games: Iterable[GameRtp], limits: RtpLimits | None = None) -> None:
        self.games = {g.game: g for g in games}
        self.limits = limits or RtpLimits()
        # game -> [bets, Σ return multiples, streak side, streak length, alerting, windows]
        self.windows: dict[str, list[Any]] = {}
        # game -> currency -> [stakes, returns] of the open window
        self.money: dict[str, dict[str, list[int]]] = {}
        self.stakes: OrderedDict[str, int] = OrderedDict()  # round -> stake

    def observe(self, e: WatchEvent, out: list[Said]) -> None:
        game = self.games.get(e.game)
        if game is None:
            return
        w = self.windows.get(e.game)
        if w is None:
            w = self.windows[e.game] = [0, 0.0, 0, 0, 0, 0]
            self.money[e.game] = {}
        m = self.money[e.game].get(e.currency)
        if m is None:
            m = self.money[e.game][e.currency] = [0, 0]
        if e.kind == BET:
            w[0] += 1
            m[0] += e.amount
            self.stakes[e.round_id] = e.amount
            if len(self.stakes) > self.limits.rounds_remembered:
                self.stakes.popitem(last=False)
            if w[0] >= self.limits.window_bets:
                self._judge(game, e, w, out)
        elif e.kind in RETURNS:
            stake = self.stakes.get(e.round_id)
            if not stake:
                return  # its bet is older than we remember: no multiple to count
            w[1] += e.amount / stake
            m[1] += e.amount
            limit = game.max_win_multiplier
            if e.kind != JACKPOT_WIN and limit and e.amount > stake * limit:
                out.append(
                    signal(
                        WIN_OUTLIER,
                        f"round:{e.round_id}",
                        e.at,
                        f"a win of {e.amount} {e.currency} on a bet of {stake} is over "
                        f"the {limit}x that game {e.game} is certified to pay",
                        evidence={"win": e.amount, "stake": stake, "limit_x": limit},
                        region=e.region,
                        provider=e.provider,
                        operator=e.operator,
                        game=e.game,
                        money_at_risk=e.amount - stake * limit,
                        currency=e.currency,
                        refs=(f"event:{e.key}",),
                    )
                )

    def _judge(self, game: GameRtp, e: WatchEvent, w: list[Any], out: list[Said]) -> None:
        bets, total = w[0], w[1]
        # Each round weighs one: Σ s = Σ s² = n in units of each round's own stake.
        band = rtp_band(game.certified_rtp, game.volatility, bets, bets, self.limits.level)
        observed = total / bets
        side = band.side(observed)
        money = self.money[e.game]
        w[5] += 1
        if side == 0:
            w[2] = w[3] = 0
            if w[4]:
                w[4] = 0
                out.append(Clear(RTP_DRIFT, e.game, instant(e.at)))
        else:
            w[3] = w[3] + 1 if side == w[2] else 1
            w[2] = side
            if w[3] >= self.limits.confirm:
                w[4] = 1
                # The currency that carried most of the window's stakes names the money.
                currency, (stakes, returns) = max(money.items(), key=lambda kv: kv[1][0])
                expected = int(game.certified_rtp * stakes)
                out.append(
                    signal(
                        RTP_DRIFT,
                        e.game,
                        e.at,
                        f"game {e.game} returned {observed:.4f} over its last {bets} bets, "
                        f"outside its {self.limits.level:.1%} band "
                        f"[{band.low:.4f}, {band.high:.4f}] around the certified "
                        f"{game.certified_rtp}, {w[3]} windows in a row",
                        severity=Severity.CRITICAL if side > 0 else Severity.WARNING,
                        evidence={
                            "observed_rtp": observed,
                            "certified_rtp": game.certified_rtp,
                            "volatility": game.volatility,
                            "band_low": band.low,
                            "band_high": band.high,
                            "bets": bets,
                            "windows_outside": w[3],
                            **{f"stakes_{c}": v[0] for c, v in sorted(money.items())},
                            **{f"returns_{c}": v[1] for c, v in sorted(money.items())},
                        },
                        provider=e.provider,
                        game=e.game,
                        money_at_risk=abs(returns - expected),
                        currency=currency,
                        confidence_permille=999,
                    )
                )
        w[0], w[1] = 0, 0.0
        self.money[e.game] = {}

    def tick(self, now: int, out: list[Said]) -> None:
        """Windows close on bets, not on time."""

    def state(self) -> dict[str, Any]:
        return {"windows": self.windows, "money": self.money, "stakes": list(self.stakes.items())}

    def load(self, state: Mapping[str, Any]) -> None:
        self.windows = {k: list(v) for k, v in state.get("windows", {}).items()}
        self.money = {
            g: {c: list(v) for c, v in m.items()} for g, m in state.get("money", {}).items()
        }
        self.stakes = OrderedDict((r, s) for r, s in state.get("stakes", []))


def volatility_of(rtp: Decimal, hit_rate: Decimal) -> Decimal:
    """The per-unit-stake standard deviation of a game that pays, with probability
    ``hit_rate``, an exponentially distributed multiple with mean rtp / hit_rate
    (the simulator's games): E[X²] = 2·rtp²/hit_rate, so sd = rtp·sqrt(2/h - 1)."""
    return (rtp * Decimal(math.sqrt(float(2 / hit_rate - 1)))).quantize(Decimal("0.0001"))
