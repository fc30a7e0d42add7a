"""Money as integer minor units with a per-currency scale.

Amounts enter Tally as strings (or ints of minor units), never floats; text is
parsed with Decimal and excess precision is *refused*, never rounded. The one
place that rounds is :func:`round_to_minor`, with an explicit mode.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from tally.kernel.currency import scale_of

INT64_MAX = 2**63 - 1


class MoneyError(ValueError):
    """An amount could not be accepted exactly; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Rounding(Enum):
    """Rounding modes allowed in money code; the choice is always explicit."""

    HALF_EVEN = decimal.ROUND_HALF_EVEN
    HALF_UP = decimal.ROUND_HALF_UP
    DOWN = decimal.ROUND_DOWN
    FLOOR = decimal.ROUND_FLOOR


_WHOLE_DIGITS_MAX = len(str(INT64_MAX))
_POW10 = tuple(10**i for i in range(40))
_CONTEXT = decimal.Context(prec=60, traps=[decimal.InvalidOperation, decimal.Overflow])


def parse_amount(text: object, currency: str, *, allow_negative: bool = False) -> int:
    """Parse a decimal string in major units (``"12.34"`` EUR) into minor units (1234).

    Refuses floats, non-numbers, exponents that hide precision, and any digit
    finer than the currency's minor unit.
    """
    scale = scale_of(currency)
    if isinstance(text, bool) or not isinstance(text, str):
        kind = type(text).__name__
        raise MoneyError("amount_must_be_string", f"amounts travel as decimal strings, got {kind}")
    # Most amounts are plain ASCII digits, at most 19 whole (the 64-bit range) and at most
    # the currency's places: exact in ints, without Decimal. Anything else the strict way.
    negative = allow_negative and text.startswith("-")
    whole, dot, fraction = (text[1:] if negative else text).partition(".")
    if (
        whole.isdigit()
        and len(whole) <= _WHOLE_DIGITS_MAX
        and text.isascii()
        and (fraction.isdigit() and len(fraction) <= scale if dot else True)
    ):
        minor: int = (
            int(whole + fraction) * _POW10[scale - len(fraction)] if dot
            else int(whole) * _POW10[scale]
        )  # fmt: skip
        if minor <= INT64_MAX:
            return -minor if negative else minor
    stripped = text.strip()
    # Decimal alone would also read other scripts' digits ("١٢") and "1_000" as numbers.
    if not stripped or stripped != text or not text.isascii() or "_" in text:
        raise MoneyError("amount_malformed", f"{text!r} is not a decimal amount")
    try:
        value = Decimal(stripped)
    except decimal.InvalidOperation:
        raise MoneyError("amount_malformed", f"{text!r} is not a decimal amount") from None
    if not value.is_finite():
        raise MoneyError("amount_malformed", f"{text!r} is not a finite amount")
    return decimal_to_minor(value, currency, allow_negative=allow_negative, _scale=scale)


def decimal_to_minor(
    value: Decimal, currency: str, *, allow_negative: bool = False, _scale: int | None = None
) -> int:
    """Exact conversion of a Decimal in major units to minor units, or MoneyError."""
    scale = scale_of(currency) if _scale is None else _scale
    try:
        minor = _shift(value, scale)
    except decimal.DecimalException:
        # Only an exponent at Decimal's own limit gets here (1E+999999999999999999 cannot
        # be moved by the scale): zero, or a whole number far beyond 64 bits.
        if not value:
            return 0
        if value < 0 and not allow_negative:
            raise MoneyError("amount_negative", f"{value} is negative") from None
        raise MoneyError("amount_too_large", f"{value} {currency} is out of range") from None
    if minor != minor.to_integral_value(context=_CONTEXT):
        raise MoneyError(
            "amount_excess_precision",
            f"{value} has more than {scale} decimal places for {currency}",
        )
    if minor < 0 and not allow_negative:
        raise MoneyError("amount_negative", f"{value} is negative")
    # Compare as Decimal first: int() of a huge exponent would build a gigantic integer.
    if minor.copy_abs() > INT64_MAX:
        raise MoneyError("amount_too_large", f"{value} {currency} exceeds the 64-bit range")
    return int(minor)


def _shift(value: Decimal, places: int) -> Decimal:
    """``value * 10**places`` exactly.

    ``Decimal.scaleb`` rounds to the context's precision (and under- or overflows), which
    would silently round amounts before the exactness check or the one rounding step.
    """
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise MoneyError("amount_malformed", f"{value} is not a finite amount")
    return Decimal((sign, digits, exponent + places))


def parse_minor(value: object, *, allow_negative: bool = False) -> int:
    """Accept an amount already in integer minor units (int or digit string)."""
    if isinstance(value, bool):
        raise MoneyError("amount_must_be_integer", "a boolean is not an amount")
    if isinstance(value, int):
        result = value
    elif isinstance(value, str) and value.lstrip("-").isdigit() and value.isascii():
        result = int(value)
    elif isinstance(value, float):
        raise MoneyError("amount_must_be_integer", f"float {value!r} refused; use minor units")
    else:
        raise MoneyError("amount_must_be_integer", f"{value!r} is not an integer amount")
    if result < 0 and not allow_negative:
        raise MoneyError("amount_negative", f"{result} is negative")
    if abs(result) > INT64_MAX:
        raise MoneyError("amount_too_large", f"{result} exceeds the 64-bit range")
    return result


def format_amount(minor: int, currency: str) -> str:
    """Minor units to a decimal string in major units: 1234 EUR -> ``"12.34"``."""
    scale = scale_of(currency)
    sign = "-" if minor < 0 else ""
    digits = str(abs(minor))
    if scale == 0:
        return sign + digits
    digits = digits.rjust(scale + 1, "0")
    return f"{sign}{digits[:-scale]}.{digits[-scale:]}"


def round_minor(value: Decimal, mode: Rounding) -> int:
    """The one rounding function: an exact amount of minor units to a whole minor unit.

    Every computed amount that may carry fractions (fees, commissions, FX) passes here,
    with the rounding mode its contract names.
    """
    return int(value.to_integral_value(rounding=mode.value, context=_CONTEXT))


def round_to_minor(value: Decimal, currency: str, mode: Rounding) -> int:
    """A Decimal in major units to minor units, rounded by :func:`round_minor`."""
    return round_minor(_shift(value, scale_of(currency)), mode)


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount of one currency, for code that is not on a hot path."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        scale_of(self.currency)
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise MoneyError("amount_must_be_integer", f"{self.minor!r} is not minor units")

    @classmethod
    def parse(cls, text: str, currency: str, *, allow_negative: bool = False) -> Money:
        return cls(parse_amount(text, currency, allow_negative=allow_negative), currency)

    def __str__(self) -> str:
        return f"{format_amount(self.minor, self.currency)} {self.currency}"

    def __add__(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise MoneyError("currency_mismatch", f"{self.currency} + {other.currency}")
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise MoneyError("currency_mismatch", f"{self.currency} - {other.currency}")
        return Money(self.minor - other.minor, self.currency)
