"""Statements: the frozen document a closed period produces.

Pure. A statement holds its line items and the totals they come from; its JSON form is
canonical (sorted keys, amounts as decimal strings, no wall-clock time), so rebuilding
the ledger from the event log gives a byte-identical document with the same SHA-256.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tally.kernel.money import format_amount, round_minor
from tally.settlement.contracts import (
    ContractTerms,
    PeriodFee,
    Totals,
    apply_period_rules,
    basis_amount,
    fee_parts,
)
from tally.settlement.periods import Period

STATEMENT_SCHEMA = "tally.statement/1"


@dataclass(frozen=True, slots=True)
class StatementLine:
    version: int  # the contract version the figures were earned under
    game_type: str
    totals: Totals
    basis: str  # exact, as a decimal string in minor units (gaming tax may leave fractions)


@dataclass(frozen=True, slots=True)
class Statement:
    terms: ContractTerms
    operator: str
    period: Period
    lines: tuple[StatementLine, ...]
    fee: PeriodFee
    accrued_before_close: int

    @property
    def close_adjustment(self) -> int:
        """What closing posts on top of the live accruals (minimum fee, carry-over)."""
        return self.fee.fee - self.accrued_before_close

    def to_dict(self) -> dict[str, Any]:
        cur = self.terms.settlement_currency

        def amount(minor: int) -> str:
            return format_amount(minor, cur)

        total = sum((line.totals for line in self.lines), Totals())
        return {
            "schema": STATEMENT_SCHEMA,
            "contract": {
                "id": self.terms.contract_id,
                "version": self.terms.version,
                "provider": self.terms.provider,
                "basis": self.terms.basis.value,
                "deductions": sorted(d.value for d in self.terms.deductions),
                "minimum_fee": amount(self.terms.minimum_fee),
                "carry_over_negative": self.terms.carry_over_negative,
                "fx_policy": self.terms.fx_policy.value,
            },
            "operator": self.operator,
            "period": {
                "label": self.period.label,
                "start": self.period.start.isoformat(),
                "end": self.period.end.isoformat(),
                "timezone": self.terms.timezone,
            },
            "currency": cur,
            "lines": [
                {
                    "contract_version": line.version,
                    "game_type": line.game_type,
                    "turnover": amount(line.totals.turnover),
                    "wins": amount(line.totals.wins),
                    "ggr": amount(line.totals.ggr),
                    "bonuses": amount(line.totals.bonuses),
                    "jackpot_contributions": amount(line.totals.jackpot_contributions),
                    "basis_minor": line.basis,
                }
                for line in self.lines
            ],
            "totals": {
                "turnover": amount(total.turnover),
                "wins": amount(total.wins),
                "ggr": amount(total.ggr),
                "bonuses": amount(total.bonuses),
                "jackpot_contributions": amount(total.jackpot_contributions),
                "basis": amount(self.fee.basis),
                "fee_before_rules": amount(self.fee.fee_before_rules),
                "carried_in": amount(self.fee.carried_in),
                "minimum_fee_topup": amount(self.fee.minimum_fee_topup),
                "fee": amount(self.fee.fee),
                "carried_out": amount(self.fee.carried_out),
                "carry_lapsed": amount(self.fee.carry_lapsed),
                "accrued_before_close": amount(self.accrued_before_close),
                "close_adjustment": amount(self.close_adjustment),
            },
        }

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), sort_keys=True, indent=2) + "\n").encode()

    def to_csv(self) -> bytes:
        doc = self.to_dict()
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        columns = [
            "contract_version",
            "game_type",
            "turnover",
            "wins",
            "ggr",
            "bonuses",
            "jackpot_contributions",
        ]
        writer.writerow(["contract", doc["contract"]["id"], "version", doc["contract"]["version"]])
        writer.writerow(
            ["operator", self.operator, "period", self.period.label, "currency", doc["currency"]]
        )
        writer.writerow(columns)
        for line in doc["lines"]:
            writer.writerow([line[c] for c in columns])
        writer.writerow([])
        for name, value in doc["totals"].items():
            writer.writerow([name, value])
        return out.getvalue().encode()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_json()).hexdigest()


def build_statement(
    versions: Sequence[tuple[ContractTerms, Mapping[str, Totals]]],
    rules: ContractTerms,
    operator: str,
    period: Period,
    *,
    carried_in: int,
    accrued_before_close: int,
) -> Statement:
    """A period's statement: each version's totals earn under that version's rates, on
    the period's one tier ladder, and the fee is rounded once (ADR 0018); the period
    rules (carry-over, minimum fee) are those of ``rules``, the version in force at the
    period's end.

    A line whose figures are all zero (e.g. a bet and its rollback) is left out: the
    same facts give the same statement whatever order they arrived in."""
    lines: list[StatementLine] = []
    basis = Decimal(0)
    for terms, by_game_type in sorted(versions, key=lambda item: item[0].version):
        for game_type, totals in sorted(by_game_type.items()):
            if totals == Totals():
                continue
            line_basis = basis_amount(terms, totals)
            basis += line_basis
            lines.append(StatementLine(terms.version, game_type, totals, str(line_basis)))
    raw = sum(part for _, part in fee_parts(versions))
    fee = apply_period_rules(rules, raw, round_minor(basis, rules.rounding), carried_in)
    return Statement(rules, operator, period, tuple(lines), fee, accrued_before_close)
