"""The statistics the detectors share: bands, Poisson tails, EWMA and CUSUM. Pure.

Floats are fine here: these are statistics *about* money (ratios, rates, z-scores),
never an amount that is posted or paid. Every sum of money a detector keeps is an int.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from statistics import NormalDist

_NORMAL = NormalDist()


def z_for(level: float) -> float:
    """The two-sided normal quantile of a confidence level (0.999 -> 3.2905...)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"a confidence level is in (0, 1), not {level}")
    return _NORMAL.inv_cdf(0.5 + level / 2.0)


@dataclass(frozen=True, slots=True)
class Band:
    centre: float
    low: float
    high: float

    def holds(self, value: float) -> bool:
        return self.low <= value <= self.high

    def side(self, value: float) -> int:
        """-1 below, 0 inside, +1 above."""
        return -1 if value < self.low else (1 if value > self.high else 0)


def rtp_band(
    certified: Decimal, volatility: Decimal, stakes: int, stakes_sq: int, level: float = 0.999
) -> Band:
    """Where a game's observed RTP (returns / stakes over a set of bets) should lie.

    Each bet of stake s returns s·X with E[X] = certified RTP and sd(X) = volatility (the
    game's certified per-unit-stake standard deviation), independently. Observed RTP is
    Σ s·X / Σ s, so its standard deviation is volatility · sqrt(Σ s²) / Σ s: the band
    narrows as bets accumulate (as 1/sqrt(n) for equal stakes) and widens when a few big
    stakes dominate.
    """
    if stakes <= 0:
        raise ValueError("a band needs at least one stake")
    centre = float(certified)
    half = z_for(level) * float(volatility) * math.sqrt(stakes_sq) / stakes
    return Band(centre, centre - half, centre + half)


def difference_band(variance_a: float, variance_b: float, level: float) -> float:
    """Half-width of the band for the difference of two independent figures."""
    return z_for(level) * math.sqrt(variance_a + variance_b)


def poisson_cdf(k: int, lam: float) -> float:
    """P(N <= k) for N ~ Poisson(lam)."""
    if k < 0:
        return 0.0
    if lam <= 0.0:
        return 1.0
    term = math.exp(-lam)
    total = term
    for i in range(1, k + 1):
        term *= lam / i
        total += term
    return min(total, 1.0)


def poisson_sf(k: int, lam: float) -> float:
    """P(N >= k) for N ~ Poisson(lam), summed from k up (exact in the far tail)."""
    if k <= 0:
        return 1.0
    if lam <= 0.0:
        return 0.0
    if k <= lam:
        return max(0.0, 1.0 - poisson_cdf(k - 1, lam))
    log_term = -lam + k * math.log(lam) - math.lgamma(k + 1)
    term = math.exp(log_term)
    total = 0.0
    i = k
    while term > total * 1e-12 and i < k + 10_000:
        total += term
        i += 1
        term *= lam / i
    return min(total, 1.0)


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space from the lower tail."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for i in range(k + 1):
        total += math.exp(
            math.lgamma(n + 1)
            - math.lgamma(i + 1)
            - math.lgamma(n - i + 1)
            + i * log_p
            + (n - i) * log_q
        )
    return min(total, 1.0)


@dataclass(slots=True)
class Ewma:
    """An exponentially weighted mean: ``alpha`` is the weight of each new value."""

    alpha: float
    value: float
    seen: int = 0

    def update(self, x: float) -> float:
        self.value += self.alpha * (x - self.value)
        self.seen += 1
        return self.value


@dataclass(slots=True)
class Cusum:
    """Page's one-sided CUSUM on standardised values: raises when the sum of excesses
    over ``slack`` passes ``threshold`` (both in standard deviations)."""

    slack: float = 0.5
    threshold: float = 8.0
    high: float = 0.0
    low: float = 0.0

    def update(self, z: float) -> int:
        """-1 (a shift down), +1 (up) or 0."""
        self.high = max(0.0, self.high + z - self.slack)
        self.low = max(0.0, self.low - z - self.slack)
        if self.high > self.threshold:
            return 1
        if self.low > self.threshold:
            return -1
        return 0

    def reset(self) -> None:
        self.high = self.low = 0.0
