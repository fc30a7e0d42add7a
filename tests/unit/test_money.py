"""Money kernel: exact parsing, refusal instead of rounding, one named rounding function."""

from __future__ import annotations

import decimal
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.kernel.currency import SCALES, UnknownCurrency, is_known, scale_of
from tally.kernel.money import (
    INT64_MAX,
    Money,
    MoneyError,
    Rounding,
    decimal_to_minor,
    format_amount,
    parse_amount,
    parse_minor,
    round_minor,
    round_to_minor,
)


def reason_of(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(MoneyError) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    return info.value.reason


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.34", "EUR", 1234),
        ("0.01", "EUR", 1),
        ("12", "EUR", 1200),
        ("12.3", "EUR", 1230),
        ("12.340", "EUR", 1234),  # trailing zeros carry no precision
        ("1500", "JPY", 1500),
        ("1500.00", "JPY", 1500),
        ("0.00000001", "BTC", 1),
        ("21000000", "BTC", 2_100_000_000_000_000),
        ("1.234", "KWD", 1234),
        ("1E+2", "EUR", 10_000),
        ("0", "EUR", 0),
    ],
)
def test_a_decimal_string_becomes_exact_minor_units_at_the_currency_scale(
    text: str, currency: str, minor: int
) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("12.345", "EUR"),
        ("0.001", "EUR"),
        ("1.5", "JPY"),
        ("0.000000001", "BTC"),
        ("1e-3", "EUR"),
        ("1.2345", "KWD"),
    ],
)
def test_excess_precision_is_refused_not_rounded(text: str, currency: str) -> None:
    assert reason_of(parse_amount, text, currency) == "amount_excess_precision"


def test_excess_precision_beyond_sixty_significant_digits_is_refused_not_rounded() -> None:
    # 0.01 followed by a 1 at the 63rd decimal place: not a whole number of cents.
    text = "0.01" + "0" * 60 + "1"
    assert reason_of(parse_amount, text, "EUR") == "amount_excess_precision"


def test_a_vanishingly_small_amount_is_refused_not_flushed_to_zero() -> None:
    assert reason_of(parse_amount, "1e-999999999", "EUR") == "amount_excess_precision"


def test_an_astronomically_large_exponent_is_refused_as_too_large() -> None:
    assert reason_of(parse_amount, "1e999999", "EUR") == "amount_too_large"
    assert reason_of(parse_amount, "1e30", "EUR") == "amount_too_large"
    # At Decimal's own exponent limit the value cannot even be scaled: still refused.
    assert reason_of(parse_amount, "1E+999999999999999999", "EUR") == "amount_too_large"
    assert reason_of(parse_amount, "-1E+999999999999999999", "EUR") == "amount_negative"
    assert parse_amount("0E+999999999999999999", "EUR") == 0
    assert reason_of(parse_amount, "1E+999999999999999999", "EUR") == "amount_too_large"
    assert reason_of(parse_amount, "-1E+999999999999999999", "EUR") == "amount_negative"


def test_the_largest_64_bit_amount_is_accepted_and_one_more_is_refused() -> None:
    assert parse_amount(str(INT64_MAX), "JPY") == INT64_MAX
    assert reason_of(parse_amount, str(INT64_MAX + 1), "JPY") == "amount_too_large"
    assert parse_minor(INT64_MAX) == INT64_MAX
    assert reason_of(parse_minor, INT64_MAX + 1) == "amount_too_large"


def test_a_string_of_thousands_of_digits_is_refused_as_too_large_not_crashed_on() -> None:
    # Python refuses int() of more than 4,300 digits with a ValueError: the digits must
    # never reach int() unchecked, with or without a sign or a fraction.
    for text in ("1" * 5_000, "-" + "1" * 5_000, "1" * 5_000 + ".5"):
        assert reason_of(parse_amount, text, "EUR", allow_negative=True) == "amount_too_large"


def test_plain_negative_amounts_parse_exactly_when_allowed() -> None:
    assert parse_amount("-12.3", "EUR", allow_negative=True) == -1230
    assert parse_amount("-0.00", "EUR", allow_negative=True) == 0
    assert reason_of(parse_amount, "-12.3", "EUR") == "amount_negative"


@pytest.mark.parametrize("value", [12.34, 1.0, 0.0, Decimal("1.00"), 100, None, True])
def test_amounts_that_are_not_strings_are_refused(value: object) -> None:
    assert reason_of(parse_amount, value, "EUR") == "amount_must_be_string"


@pytest.mark.parametrize(
    "text",
    [
        *["", " 1.00", "1.00 ", "abc", "1,00", "NaN", "Infinity", "-Infinity", "sNaN", "1..0"],
        # Read as numbers by Decimal, never meant as amounts: other scripts' digits,
        # full-width digits, digit group underscores.
        *["\u0661\u0662", "\u0661.\u0665\u0660", "\uff11\uff10", "1_000", "1_000.00", "1e1_0"],
    ],
)
def test_malformed_or_non_finite_text_is_refused(text: str) -> None:
    assert reason_of(parse_amount, text, "EUR") == "amount_malformed"


def test_negative_amounts_are_refused_unless_allowed() -> None:
    assert reason_of(parse_amount, "-1.00", "EUR") == "amount_negative"
    assert parse_amount("-1.00", "EUR", allow_negative=True) == -100
    assert parse_amount("-0.00", "EUR") == 0


def test_an_unknown_currency_is_refused_rather_than_guessed() -> None:
    with pytest.raises(UnknownCurrency):
        parse_amount("1.00", "XXX")
    with pytest.raises(UnknownCurrency):
        Money(1, "eur")
    assert not is_known("XXX")
    assert not is_known(None)


def test_currency_scales_are_those_of_the_design() -> None:
    assert (scale_of("EUR"), scale_of("JPY"), scale_of("BTC")) == (2, 0, 8)


@pytest.mark.parametrize("value", [1.0, 12.5, float("nan")])
def test_floats_are_refused_as_minor_units(value: float) -> None:
    assert reason_of(parse_minor, value) == "amount_must_be_integer"


@pytest.mark.parametrize("value", [True, "1.5", "12a", "", " 1", "١٢", None])
def test_non_integers_are_refused_as_minor_units(value: object) -> None:
    assert reason_of(parse_minor, value) == "amount_must_be_integer"


def test_minor_units_may_arrive_as_digit_strings() -> None:
    assert parse_minor("1234") == 1234
    assert parse_minor("-5", allow_negative=True) == -5
    assert reason_of(parse_minor, "-5") == "amount_negative"


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (1234, "EUR", "12.34"),
        (5, "EUR", "0.05"),
        (-5, "EUR", "-0.05"),
        (0, "EUR", "0.00"),
        (1500, "JPY", "1500"),
        (1, "BTC", "0.00000001"),
    ],
)
def test_formatting_gives_major_units_with_every_minor_digit(
    minor: int, currency: str, text: str
) -> None:
    assert format_amount(minor, currency) == text


@settings(max_examples=200, deadline=None)
@given(
    minor=st.integers(min_value=-INT64_MAX, max_value=INT64_MAX),
    currency=st.sampled_from(sorted(SCALES)),
)
def test_formatting_then_parsing_gives_back_the_same_minor_units(minor: int, currency: str) -> None:
    assert parse_amount(format_amount(minor, currency), currency, allow_negative=True) == minor


@settings(max_examples=200, deadline=None)
@given(
    value=st.decimals(allow_nan=False, allow_infinity=False, places=12),
    currency=st.sampled_from(["EUR", "JPY", "BTC", "KWD"]),
)
def test_parsing_accepts_exactly_the_amounts_with_no_digit_below_the_minor_unit(
    value: Decimal, currency: str
) -> None:
    scale = scale_of(currency)
    # Independent check: value * 10**scale is whole, computed with ample precision.
    with decimal.localcontext(decimal.Context(prec=200)):
        shifted = value * (Decimal(10) ** scale)
        whole = shifted == shifted.to_integral_value()
    text = format(value, "f")
    if not whole:
        assert reason_of(parse_amount, text, currency, allow_negative=True) == (
            "amount_excess_precision"
        )
    elif abs(shifted) > INT64_MAX:
        assert reason_of(parse_amount, text, currency, allow_negative=True) == "amount_too_large"
    else:
        assert parse_amount(text, currency, allow_negative=True) == int(shifted)


@pytest.mark.parametrize(
    ("value", "mode", "minor"),
    [
        ("1.005", Rounding.HALF_UP, 101),
        ("1.005", Rounding.HALF_EVEN, 100),
        ("1.015", Rounding.HALF_EVEN, 102),
        ("1.009", Rounding.DOWN, 100),
        ("-1.001", Rounding.DOWN, -100),
        ("-1.001", Rounding.FLOOR, -101),
        ("-1.005", Rounding.HALF_UP, -101),
    ],
)
def test_round_to_minor_rounds_with_the_mode_it_is_given(
    value: str, mode: Rounding, minor: int
) -> None:
    assert round_to_minor(Decimal(value), "EUR", mode) == minor


def test_round_to_minor_rounds_once_even_beyond_sixty_significant_digits() -> None:
    # 0.4999... cents (70 nines) is below half a cent: HALF_UP must give 0, not 1.
    value = Decimal("0.004" + "9" * 70)
    assert round_to_minor(value, "EUR", Rounding.HALF_UP) == 0
    assert round_to_minor(value, "EUR", Rounding.DOWN) == 0
    assert round_minor(Decimal("0.4" + "9" * 70), Rounding.HALF_UP) == 0


def test_round_to_minor_respects_each_currency_scale() -> None:
    assert round_to_minor(Decimal("1234.5"), "JPY", Rounding.HALF_EVEN) == 1234
    assert round_to_minor(Decimal("0.000000015"), "BTC", Rounding.HALF_UP) == 2


@settings(max_examples=200, deadline=None)
@given(value=st.decimals(allow_nan=False, allow_infinity=False, places=6))
def test_round_to_minor_lands_within_one_minor_unit_of_the_exact_amount(value: Decimal) -> None:
    with decimal.localcontext(decimal.Context(prec=200)):
        exact = value * 100
        for mode in Rounding:
            rounded = round_to_minor(value, "EUR", mode)
            assert abs(Decimal(rounded) - exact) < 1
            if mode is Rounding.FLOOR:
                assert Decimal(rounded) <= exact
            if mode in (Rounding.HALF_UP, Rounding.HALF_EVEN):
                assert abs(Decimal(rounded) - exact) <= Decimal("0.5")


def test_parsing_never_rounds_a_value_that_round_to_minor_would_change() -> None:
    for text in ["0.005", "0.015", "2.675"]:
        assert reason_of(parse_amount, text, "EUR") == "amount_excess_precision"
        assert round_to_minor(Decimal(text), "EUR", Rounding.HALF_EVEN) >= 0


def test_decimal_to_minor_converts_exactly_or_refuses() -> None:
    assert decimal_to_minor(Decimal("12.34"), "EUR") == 1234
    assert reason_of(decimal_to_minor, Decimal("12.345"), "EUR") == "amount_excess_precision"


def test_money_adds_and_subtracts_only_within_one_currency() -> None:
    a = Money.parse("10.50", "EUR")
    b = Money(25, "EUR")
    assert a + b == Money(1075, "EUR")
    assert a - b == Money(1025, "EUR")
    assert str(Money(1075, "EUR")) == "10.75 EUR"
    assert reason_of(lambda: a + Money(1, "USD")) == "currency_mismatch"
    assert reason_of(lambda: a - Money(1, "JPY")) == "currency_mismatch"


@pytest.mark.parametrize("minor", [1.5, True, "100"])
def test_money_refuses_anything_but_integer_minor_units(minor: object) -> None:
    assert reason_of(Money, minor, "EUR") == "amount_must_be_integer"


def test_json_nesting_is_judged_the_same_whatever_the_recursion_limit() -> None:
    import sys

    from tally.kernel.limits import JSON_MAX_DEPTH, json_too_deep

    deep = "[" * 5_000
    flat = '{"a": "[[[[' + "{" * 100 + '", "b": [1, 2, {"c": 3}]}'
    before = sys.getrecursionlimit()
    try:
        for limit in (1_000, 20_000):
            sys.setrecursionlimit(limit)
            assert json_too_deep(deep)
            assert not json_too_deep(flat)  # brackets inside strings are not nesting
    finally:
        sys.setrecursionlimit(before)
    assert not json_too_deep("[" * JSON_MAX_DEPTH + "]" * JSON_MAX_DEPTH)
    assert json_too_deep("[" * (JSON_MAX_DEPTH + 1))
