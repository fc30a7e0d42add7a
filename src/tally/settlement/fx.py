"""FX rates: lookup at an instant and exact conversion with one explicit rounding.

A rate says how many units of ``quote`` one unit of ``base`` buys from ``effective_at``
on, until a later rate for the same pair. Conversions go through minor units with
Decimal arithmetic and :func:`tally.kernel.money.round_minor`.
"""

from __future__ import annotations

import bisect
import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from tally.kernel.currency import is_known, scale_of
from tally.kernel.money import Rounding, round_minor


@dataclass(frozen=True, slots=True, order=True)
class FxRate:
    base: str
    quote: str
    effective_at: datetime
    rate: Decimal
    source: str = ""


class FxError(LookupError):
    """No rate for a pair at an instant, or a rate that cannot be used."""


class FxTable:
    """An in-memory, immutable view of rates, indexed by pair and time."""

    def __init__(self, rates: Iterable[FxRate]) -> None:
        by_pair: dict[tuple[str, str], list[FxRate]] = {}
        for rate in rates:
            by_pair.setdefault((rate.base, rate.quote), []).append(rate)
        self._rates = {pair: sorted(found) for pair, found in by_pair.items()}
        self._times = {pair: [r.effective_at for r in found] for pair, found in self._rates.items()}

    def rate(self, base: str, quote: str, at: datetime) -> Decimal:
        """The rate in force at ``at``; the inverse pair is used when only it is known."""
        if base == quote:
            return Decimal(1)
        direct = self._lookup(base, quote, at)
        if direct is not None:
            return direct.rate
        inverse = self._lookup(quote, base, at)
        if inverse is not None:
            return Decimal(1) / inverse.rate
        raise FxError(f"no {base}/{quote} rate in force at {at.isoformat()}")

    def _lookup(self, base: str, quote: str, at: datetime) -> FxRate | None:
        times = self._times.get((base, quote))
        if not times:
            return None
        index = bisect.bisect_right(times, at) - 1
        return self._rates[(base, quote)][index] if index >= 0 else None

    def convert(self, amount: int, source: str, target: str, at: datetime, mode: Rounding) -> int:
        """``amount`` minor units of ``source`` in minor units of ``target``, rounded once."""
        return self.converter(source, target, at, mode)(amount)

    def converter(
        self, source: str, target: str, at: datetime, mode: Rounding
    ) -> Callable[[int], int]:
        """:meth:`convert` for several amounts at one instant: the rate is looked up once
        (and must be in force, or :class:`FxError`), zero stays zero."""
        if source == target:
            return lambda amount: amount
        rate = self.rate(source, target, at)
        shift = scale_of(target) - scale_of(source)

        def convert(amount: int) -> int:
            return round_minor(Decimal(amount).scaleb(shift) * rate, mode) if amount else 0

        return convert


@dataclass(frozen=True, slots=True)
class CsvProblem:
    line: int
    reason: str
    text: str


def parse_rates_csv(text: str, *, source: str = "csv") -> tuple[list[FxRate], list[CsvProblem]]:
    """Parse ``base,quote,effective_at,rate`` lines; bad lines are returned with reasons.

    The header line is required; times must carry a zone; rates are decimal strings > 0.
    """
    rates: list[FxRate] = []
    problems: list[CsvProblem] = []
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != ["base", "quote", "effective_at", "rate"]:
        return [], [
            CsvProblem(1, "header must be: base,quote,effective_at,rate", ",".join(header or []))
        ]
    for number, row in enumerate(reader, start=2):
        line = ",".join(row)
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 4:
            problems.append(CsvProblem(number, f"expected 4 fields, found {len(row)}", line))
            continue
        base, quote, when_text, rate_text = (cell.strip() for cell in row)
        if not is_known(base) or not is_known(quote):
            problems.append(CsvProblem(number, f"unknown currency in {base}/{quote}", line))
            continue
        if base == quote:
            problems.append(CsvProblem(number, "base and quote are the same currency", line))
            continue
        try:
            when = datetime.fromisoformat(when_text)
        except ValueError:
            problems.append(CsvProblem(number, f"effective_at {when_text!r} is not ISO 8601", line))
            continue
        if when.tzinfo is None:
            problems.append(CsvProblem(number, "effective_at must carry a time zone", line))
            continue
        try:
            rate = Decimal(rate_text)
        except InvalidOperation:
            problems.append(CsvProblem(number, f"rate {rate_text!r} is not a decimal", line))
            continue
        if not rate.is_finite() or rate <= 0:
            problems.append(
                CsvProblem(number, f"rate {rate_text!r} must be a positive number", line)
            )
            continue
        rates.append(FxRate(base, quote, when, rate, source))
    return rates, problems
