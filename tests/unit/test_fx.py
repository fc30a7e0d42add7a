"""FX lookup at an instant, exact conversion with one rounding, and CSV import."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tally.kernel.money import Rounding
from tally.settlement.fx import FxError, FxRate, FxTable, parse_rates_csv

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TABLE = FxTable(
    [
        FxRate("EUR", "USD", T0, Decimal("1.10")),
        FxRate("EUR", "USD", T0 + timedelta(days=1), Decimal("1.20")),
        FxRate("USD", "JPY", T0, Decimal("150")),
        FxRate("BTC", "EUR", T0, Decimal("60000")),
    ]
)


def test_the_rate_in_force_is_the_latest_at_or_before_the_instant() -> None:
    assert TABLE.rate("EUR", "USD", T0) == Decimal("1.10")
    assert TABLE.rate("EUR", "USD", T0 + timedelta(hours=23)) == Decimal("1.10")
    assert TABLE.rate("EUR", "USD", T0 + timedelta(days=1)) == Decimal("1.20")


def test_there_is_no_rate_before_the_first_one() -> None:
    with pytest.raises(FxError, match="no EUR/USD rate"):
        TABLE.rate("EUR", "USD", T0 - timedelta(seconds=1))


def test_the_inverse_pair_is_used_when_only_it_is_known() -> None:
    # 1 JPY = 1/150 USD: 15,000 JPY is 100.00 USD.
    assert TABLE.convert(15_000, "JPY", "USD", T0, Rounding.HALF_EVEN) == 10_000


def test_conversion_respects_both_scales_and_rounds_once() -> None:
    # 12.34 EUR * 1.10 = 13.574 USD -> 13.57 (half-even) / 13.58 (up only above half)
    assert TABLE.convert(1_234, "EUR", "USD", T0, Rounding.HALF_EVEN) == 1_357
    # 100.00 USD -> 15,000 JPY (scale 2 -> 0)
    assert TABLE.convert(10_000, "USD", "JPY", T0, Rounding.HALF_EVEN) == 15_000
    # 0.00012345 BTC * 60,000 = 7.407 EUR -> 7.41 (HALF_UP) / 7.40 (DOWN)
    assert TABLE.convert(12_345, "BTC", "EUR", T0, Rounding.HALF_UP) == 741
    assert TABLE.convert(12_345, "BTC", "EUR", T0, Rounding.DOWN) == 740


def test_a_csv_import_keeps_good_lines_and_names_every_bad_one() -> None:
    text = (
        "base,quote,effective_at,rate\n"
        "EUR,USD,2026-03-01T00:00:00+00:00,1.0850\n"
        "EUR,XXX,2026-03-01T00:00:00+00:00,1\n"
        "EUR,USD,2026-03-01T00:00:00,1.1\n"
        "EUR,USD,yesterday,1.1\n"
        "EUR,USD,2026-03-02T00:00:00+00:00,-1\n"
        "EUR,USD,2026-03-02T00:00:00+00:00,1.1,extra\n"
        "EUR,EUR,2026-03-02T00:00:00+00:00,1\n"
        "EUR,JPY,2026-03-02T00:00:00+01:00,nan\n"
    )
    rates, problems = parse_rates_csv(text, source="ecb")
    assert rates == [
        FxRate("EUR", "USD", datetime(2026, 3, 1, tzinfo=UTC), Decimal("1.0850"), "ecb")
    ]
    assert [(p.line, p.reason) for p in problems] == [
        (3, "unknown currency in EUR/XXX"),
        (4, "effective_at must carry a time zone"),
        (5, "effective_at 'yesterday' is not ISO 8601"),
        (6, "rate '-1' must be a positive number"),
        (7, "expected 4 fields, found 5"),
        (8, "base and quote are the same currency"),
        (9, "rate 'nan' must be a positive number"),
    ]


def test_a_csv_without_the_header_is_refused_whole() -> None:
    rates, problems = parse_rates_csv("EUR,USD,2026-03-01T00:00:00+00:00,1.1\n")
    assert rates == []
    assert problems[0].reason == "header must be: base,quote,effective_at,rate"
