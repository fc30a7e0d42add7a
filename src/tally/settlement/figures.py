"""Live settlement figures: totals, fees and commissions accrued, sliced as people ask.

Pure. Amounts of different currencies are never added together: currency is always one
of the dimensions of a row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from tally.kernel.money import parse_amount
from tally.settlement.contracts import ContractTerms, Totals
from tally.settlement.engine import OpenFigures
from tally.settlement.ports import StoredStatement


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
    *,
    statements: Sequence[StoredStatement] = (),
) -> list[AccrualRow]:
    """Provider fees per contract period and operator, in settlement currency.

    An open period has one row per contract version (its part of the period's fee, as
    accrued so far); a closed period has one row with what its statement says (the fee
    after carry-over and the minimum fee), naming the versions that earned in it. Each
    row says which (``version``, ``status``)."""
    where = where or {}
    currency_of = {(c.contract_id, c.version): c.settlement_currency for c in contracts}
    provider_of = {c.contract_id: c.provider for c in contracts}
    closed = {(s.contract_id, s.operator, s.period): s for s in statements}
    rows: list[tuple[tuple[str, str, str, str], AccrualRow]] = []

    def add(values: dict[Dimension, str], version: str, status: str, amount: int) -> None:
        if any(values.get(d) != v for d, v in where.items()):
            return
        key = (
            *((d.value, values[d]) for d in values),
            ("version", version),
            ("status", status),
        )
        order = (values[Dimension.CONTRACT], values[Dimension.OPERATOR], values[Dimension.PERIOD])
        rows.append(((*order, version), AccrualRow(key, amount)))

    for group, accrued in sorted(figures.fee_accrued.items()):
        contract_id, version, provider, operator, period = group
        if (contract_id, operator, period) in closed:
            continue
        values = {
            Dimension.CONTRACT: contract_id,
            Dimension.PROVIDER: provider,
            Dimension.OPERATOR: operator,
            Dimension.PERIOD: period,
            Dimension.CURRENCY: currency_of.get((contract_id, version), ""),
        }
        add(values, str(version), "open", accrued)
    for (contract_id, operator, period), stored in sorted(closed.items()):
        doc = json.loads(stored.document)
        currency = doc["currency"]
        versions = sorted({line["contract_version"] for line in doc["lines"]}) or [
            doc["contract"]["version"]
        ]
        values = {
            Dimension.CONTRACT: contract_id,
            Dimension.PROVIDER: provider_of.get(contract_id, doc["contract"]["provider"]),
            Dimension.OPERATOR: operator,
            Dimension.PERIOD: period,
            Dimension.CURRENCY: currency,
        }
        fee = parse_amount(doc["totals"]["fee"], currency, allow_negative=True)
        add(values, "+".join(str(v) for v in versions), "closed", fee)
    return [row for _, row in sorted(rows, key=lambda item: item[0])]


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
