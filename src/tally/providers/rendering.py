"""JSON answers whose amounts are exact decimal numbers, shared by the adapters.

Protocols that answer balances as JSON numbers (``10.5``) must not pass through a float:
the amount is written from minor units as a decimal literal and spliced in as is.
"""

from __future__ import annotations

import json

from tally.kernel.money import format_amount


def number(minor: int, currency: str) -> str:
    """An amount as a JSON number literal with the currency's digits (``"10.50"`` -> 10.50)."""
    return format_amount(minor, currency)


def text(value: object) -> str:
    """Any other value, JSON-encoded."""
    return json.dumps(value)


def render(fields: list[tuple[str, str]]) -> bytes:
    """A JSON object from already-encoded values, in the given order."""
    return ("{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in fields) + "}").encode()
