"""Live settlement figures: totals, fees and commissions accrued, sliced as people ask.

Pure. Amounts of different currencies are never added together: currency is always one
of the dimensions of a row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from tally.settlement.contracts import ContractTerms, Totals
from tally.settlement.engine import OpenFigures


class Dimension(StrEnum):
    PROVIDER = "provider"
    OPERATOR = "operator"
    REGION = "region"
    GAME_TYPE = "game_type"
    PERIOD = "period"
    CONTRACT = "contract"
    CURRENCY = "currency"


@dataclass(frozen=True, slots=True)
class TotalsRow:
    key: tuple[tuple[str, str], ...]  # (dimension, value) pairs, in the order asked
    totals: Totals

    @property
    def ngr(self) -> int:
        """GGR less bonuses and jackpot contributions (a contract may deduct less)."""
        t = self.totals
        return t.ggr - t.bonuses - t.jackpot_contributions


@dataclass(frozen=True, slots=True)
class AccrualRow:
    key: tuple[tuple[str, str], ...]
    accrued: int


def _bucket_value(bucket: object, dimension: Dimension) -> str:
    if dimension is Dimension.CONTRACT:
        return str(getattr(bucket, "contract_id"))  # noqa: B009 - one spelling per dimension
    return str(getattr(bucket, dimension.value))


def live_totals(
    figures: OpenFigures,
    by: Sequence[Dimension],
    where: Mapping[Dimension, str] | None = None,
) -> list[TotalsRow]:
    """Turnover, wins, GGR, bonuses and NGR, grouped by ``by`` (plus currency)."""
    where = where or {}
    dims = [d for d in by if d is not Dimension.CURRENCY] + [Dimension.CURRENCY]
    rows: dict[tuple[tuple[str, str], ...], Totals] = {}
    for bucket, totals in figures.totals.items():
        if any(_bucket_value(bucket, d) != v for d, v in where.items()):
            continue
        key = tuple((d.value, _bucket_value(bucket, d)) for d in dims)
        rows[key] = rows.get(key, Totals()) + totals
    return [TotalsRow(k, v) for k, v in sorted(rows.items())]


def fees_accrued(
    figures: OpenFigures,
    contracts: Sequence[ContractTerms],
    where: Mapping[Dimension, str] | None = None,
) -> list[AccrualRow]:
    """Provider fees accrued per contract period and operator, in settlement currency."""
    where = where or {}
    currency_of = {(c.contract_id, c.version): c.settlement_currency for c in contracts}
    rows: list[AccrualRow] = []
    for group, accrued in sorted(figures.fee_accrued.items()):
        contract_id, version, provider, operator, period = group
        values = {
            Dimension.CONTRACT: contract_id,
            Dimension.PROVIDER: provider,
            Dimension.OPERATOR: operator,
            Dimension.PERIOD: period,
            Dimension.CURRENCY: currency_of.get((contract_id, version), ""),
        }
        if any(values.get(d) != v for d, v in where.items()):
            continue
        key = (*((d.value, values[d]) for d in values), ("version", str(version)))
        rows.append(AccrualRow(key, accrued))
    return rows


def commissions_accrued(
    figures: OpenFigures, *, agent: str | None = None, operator: str | None = None
) -> list[AccrualRow]:
    """Partner commission accrued per agent, operator, period and currency."""
    rows: list[AccrualRow] = []
    for (op, ag, period, currency), accrued in sorted(figures.commission_accrued.items()):
        if (agent is not None and ag != agent) or (operator is not None and op != operator):
            continue
        key = (("agent", ag), ("operator", op), ("period", period), ("currency", currency))
        rows.append(AccrualRow(key, accrued))
    return rows
