"""The statistics under the risk detectors, against figures computed by hand."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.risk.detectors.stats import (
    Cusum,
    Ewma,
    binomial_cdf,
    difference_band,
    poisson_cdf,
    poisson_sf,
    rtp_band,
    z_for,
)


def test_the_quantiles_of_the_usual_levels_are_the_textbook_ones() -> None:
    assert z_for(0.999) == pytest.approx(3.290527, abs=1e-6)
    assert z_for(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert z_for(0.80) == pytest.approx(1.281552, abs=1e-6)
    with pytest.raises(ValueError, match="confidence level"):
        z_for(1.0)


def test_the_rtp_band_of_a_hundred_equal_bets_is_worked_by_hand() -> None:
    # 100 bets of 100: Σs = 10,000, Σs² = 1,000,000, sqrt = 1,000.
    # half-width = 3.290527 * 2.0 * 1,000 / 10,000 = 0.6581054
    band = rtp_band(Decimal("0.96"), Decimal("2.0"), 10_000, 1_000_000)
    assert band.centre == pytest.approx(0.96)
    assert band.low == pytest.approx(0.96 - 0.6581054, abs=1e-6)
    assert band.high == pytest.approx(0.96 + 0.6581054, abs=1e-6)
    assert band.holds(1.6) and not band.holds(1.62)
    assert band.side(0.30) == -1 and band.side(0.96) == 0 and band.side(1.7) == 1


def test_the_band_narrows_as_the_square_root_of_the_bets() -> None:
    one = rtp_band(Decimal("0.95"), Decimal("3"), 100, 100)  # 100 bets of 1
    four = rtp_band(Decimal("0.95"), Decimal("3"), 400, 400)  # 400 bets of 1
    assert (four.high - four.centre) * 2 == pytest.approx(one.high - one.centre)


def test_a_few_big_stakes_widen_the_band() -> None:
    # Same total (400) as four bets of 100, but one bet carries it all: Σs² = 160,000.
    even = rtp_band(Decimal("0.95"), Decimal("1"), 400, 4 * 100**2)
    lumpy = rtp_band(Decimal("0.95"), Decimal("1"), 400, 400**2)
    assert lumpy.high - lumpy.centre == pytest.approx(2 * (even.high - even.centre))


def test_a_band_needs_a_stake() -> None:
    with pytest.raises(ValueError, match="at least one stake"):
        rtp_band(Decimal("0.9"), Decimal("1"), 0, 0)


def test_the_difference_band_adds_variances() -> None:
    # sqrt(9 + 16) = 5, at 95%: 1.959964 * 5
    assert difference_band(9.0, 16.0, 0.95) == pytest.approx(9.79982, abs=1e-5)


def test_poisson_tails_by_hand() -> None:
    assert poisson_cdf(0, 2.0) == pytest.approx(math.exp(-2))
    assert poisson_cdf(2, 1.0) == pytest.approx(math.exp(-1) * 2.5)
    assert poisson_sf(3, 1.0) == pytest.approx(1 - math.exp(-1) * 2.5)
    assert poisson_sf(0, 5.0) == 1.0
    assert poisson_cdf(-1, 5.0) == 0.0
    assert poisson_cdf(3, 0.0) == 1.0 and poisson_sf(3, 0.0) == 0.0


def test_the_far_tail_is_summed_not_subtracted() -> None:
    # 1 - cdf would round to 0; the direct sum keeps it: Σ_{i≥10} e^-0.5 0.5^i / i!
    expected = sum(math.exp(-0.5) * 0.5**i / math.factorial(i) for i in range(10, 40))
    assert poisson_sf(10, 0.5) == pytest.approx(expected, rel=1e-9)
    assert 1e-11 < expected < 1e-9


@given(st.integers(0, 60), st.floats(0.01, 50.0))
def test_the_two_tails_meet(k: int, lam: float) -> None:
    assert poisson_cdf(k, lam) + poisson_sf(k + 1, lam) == pytest.approx(1.0, abs=1e-9)


@given(st.integers(1, 10_000), st.integers(1, 10_000))
def test_more_bets_of_the_same_stake_never_widen_the_band(n: int, extra: int) -> None:
    fewer = rtp_band(Decimal("0.96"), Decimal("2"), n * 10, n * 100)
    more = rtp_band(Decimal("0.96"), Decimal("2"), (n + extra) * 10, (n + extra) * 100)
    assert more.high - more.low < fewer.high - fewer.low


def test_ewma_moves_by_alpha_of_the_gap() -> None:
    e = Ewma(0.25, 8.0)
    assert e.update(16.0) == 10.0  # 8 + 0.25 * 8
    assert e.update(10.0) == 10.0 and e.seen == 2


def test_cusum_adds_excesses_over_the_slack_until_the_threshold() -> None:
    c = Cusum(slack=0.5, threshold=2.0)
    # high: 0.5, 1.0, 1.5, 2.0 (not over), 2.5 -> up
    assert [c.update(1.0) for _ in range(5)] == [0, 0, 0, 0, 1]
    c.reset()
    assert [c.update(-1.5) for _ in range(3)] == [0, 0, -1]  # low: 1, 2, 3


def test_binomial_lower_tail_by_hand() -> None:
    # P(X <= 1 | n=4, p=0.5) = (1 + 4) / 16
    assert binomial_cdf(1, 4, 0.5) == pytest.approx(5 / 16)
    assert binomial_cdf(0, 10, 0.25) == pytest.approx(0.75**10)
    assert binomial_cdf(4, 4, 0.3) == 1.0 and binomial_cdf(-1, 4, 0.3) == 0.0


@given(st.integers(0, 80), st.integers(1, 80), st.floats(0.01, 0.99))
def test_the_binomial_tail_grows_with_k(k: int, n: int, p: float) -> None:
    assert binomial_cdf(k, n, p) <= binomial_cdf(k + 1, n, p) + 1e-12
