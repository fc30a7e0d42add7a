"""Currencies and their minor-unit scales (ISO 4217 plus a few crypto assets)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# Scale = number of decimal digits of the minor unit. Deliberately explicit: an
# unknown currency is refused rather than guessed at.
_SCALES: dict[str, int] = {
    "AUD": 2,
    "BRL": 2,
    "CAD": 2,
    "CHF": 2,
    "CLP": 0,
    "CNY": 2,
    "CZK": 2,
    "DKK": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "HUF": 2,
    "IDR": 2,
    "INR": 2,
    "ISK": 0,
    "JPY": 0,
    "KRW": 0,
    "KWD": 3,
    "BHD": 3,
    "MXN": 2,
    "MYR": 2,
    "NOK": 2,
    "NZD": 2,
    "PEN": 2,
    "PHP": 2,
    "PLN": 2,
    "RON": 2,
    "SEK": 2,
    "SGD": 2,
    "THB": 2,
    "TRY": 2,
    "TWD": 2,
    "USD": 2,
    "VND": 0,
    "ZAR": 2,
    "BTC": 8,
    "ETH": 18,
    "USDT": 6,
}

SCALES: Mapping[str, int] = MappingProxyType(_SCALES)


class UnknownCurrency(ValueError):
    """The currency code is not one Tally knows the scale of."""

    def __init__(self, code: object) -> None:
        super().__init__(f"unknown currency {code!r}")
        self.code = code


def is_known(code: object) -> bool:
    return isinstance(code, str) and code in _SCALES


def scale_of(code: str) -> int:
    """Digits after the decimal point of the currency's minor unit."""
    try:
        return _SCALES[code]
    except (KeyError, TypeError):
        raise UnknownCurrency(code) from None
