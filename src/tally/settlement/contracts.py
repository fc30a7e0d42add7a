"""Contracts: versioned, effective-dated settlement terms, and how a fee follows from them.

Pure. Rates are Decimals (0.12 = 12 %); amounts are int minor units of the contract's
settlement currency. The fee for a period is computed from the period's totals in one
place (:func:`period_fee`), so live accruals (differences of that function over running
totals) telescope to the statement figure exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from tally.kernel.money import Rounding, round_minor
from tally.settlement.periods import PeriodKind


class Basis(StrEnum):
    GGR = "ggr"  # stakes minus wins
    NGR = "ngr"  # GGR minus the contract's named deductions


class Deduction(StrEnum):
    BONUSES = "bonuses"
    JACKPOT_CONTRIBUTIONS = "jackpot_contributions"
    GAMING_TAX = "gaming_tax"


class FxPolicy(StrEnum):
    EVENT_TIME = "event_time"  # convert each event at the rate of its instant
    PERIOD_END = "period_end"  # convert the period's totals at the rate at its end


@dataclass(frozen=True, slots=True)
class Tier:
    """From ``floor`` (minor units of basis in the period) upwards, ``rate`` applies (marginal)."""

    floor: int
    rate: Decimal


def flat(rate: str) -> tuple[Tier, ...]:
    return (Tier(0, Decimal(rate)),)


@dataclass(frozen=True, slots=True)
class Totals:
    """What a period (or the running part of one) adds up to, per game type, in minor units."""

    turnover: int = 0
    wins: int = 0
    bonuses: int = 0
    jackpot_contributions: int = 0

    @property
    def ggr(self) -> int:
        return self.turnover - self.wins

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.turnover + other.turnover,
            self.wins + other.wins,
            self.bonuses + other.bonuses,
            self.jackpot_contributions + other.jackpot_contributions,
        )


_NO_TOTALS: Mapping[str, Totals] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ContractTerms:
    """One version of a provider's terms (optionally overridden for one operator)."""

    contract_id: str
    version: int
    provider: str
    effective_from: datetime
    settlement_currency: str
    rates: Mapping[str, tuple[Tier, ...]]  # per game type; "*" is the default
    operator: str | None = None  # None: applies to every operator without an override
    basis: Basis = Basis.GGR
    deductions: frozenset[Deduction] = frozenset()
    gaming_tax_rate: Decimal = Decimal(0)  # on GGR, when GAMING_TAX is a deduction
    minimum_fee: int = 0
    carry_over_negative: bool = False
    fx_policy: FxPolicy = FxPolicy.EVENT_TIME
    period: PeriodKind = PeriodKind.MONTH
    timezone: str = "UTC"
    rounding: Rounding = Rounding.HALF_EVEN
    metadata: Mapping[str, str] = field(default_factory=dict)

    def tiers_for(self, game_type: str) -> tuple[Tier, ...]:
        tiers = self.rates.get(game_type) or self.rates.get("*")
        if tiers is None:
            raise KeyError(
                f"contract {self.contract_id} v{self.version} has no rate for {game_type}"
            )
        return tiers


class ContractError(ValueError):
    """Terms that cannot be applied (no version in force, malformed tiers, ...)."""


def validate_terms(terms: ContractTerms) -> list[str]:
    """Problems with a contract version, in words a finance person can act on."""
    problems: list[str] = []
    if terms.effective_from.tzinfo is None:
        problems.append("effective_from must carry a time zone")
    if not terms.rates:
        problems.append("at least one rate is needed (use '*' for every game type)")
    for game_type, tiers in terms.rates.items():
        if not tiers or tiers[0].floor != 0:
            problems.append(f"{game_type}: tiers must start at 0")
        floors = [t.floor for t in tiers]
        if floors != sorted(set(floors)):
            problems.append(f"{game_type}: tier floors must strictly increase")
        for tier in tiers:
            if not Decimal(0) <= tier.rate <= Decimal(1):
                problems.append(f"{game_type}: rate {tier.rate} is outside 0..1")
    if terms.minimum_fee < 0:
        problems.append("minimum fee cannot be negative")
    if not Decimal(0) <= terms.gaming_tax_rate <= Decimal(1):
        problems.append("gaming tax rate is outside 0..1")
    return problems


def in_force(
    versions: Sequence[ContractTerms], provider: str, operator: str, at: datetime
) -> ContractTerms:
    """The version that governs (provider, operator) at ``at``: an operator override wins."""
    best: ContractTerms | None = None
    for terms in versions:
        if terms.provider != provider or terms.effective_from > at:
            continue
        if terms.operator not in (None, operator):
            continue
        if best is None:
            best = terms
            continue
        specific, best_specific = terms.operator is not None, best.operator is not None
        if (specific, terms.effective_from, terms.version) > (
            best_specific,
            best.effective_from,
            best.version,
        ):
            best = terms
    if best is None:
        raise ContractError(f"no contract in force for provider {provider} at {at.isoformat()}")
    return best


def basis_amount(terms: ContractTerms, totals: Totals) -> Decimal:
    """The amount the rate applies to, exact (gaming tax may leave fractions of a unit).

    Gaming tax is the rate times GGR, signed: a losing line's share is negative, so the
    lines of a period add up to the rate times the period's GGR however its GGR splits
    into game types and versions (ADR 0018)."""
    amount = Decimal(totals.ggr)
    if terms.basis is Basis.NGR:
        if Deduction.BONUSES in terms.deductions:
            amount -= totals.bonuses
        if Deduction.JACKPOT_CONTRIBUTIONS in terms.deductions:
            amount -= totals.jackpot_contributions
        if Deduction.GAMING_TAX in terms.deductions:
            amount -= Decimal(totals.ggr) * terms.gaming_tax_rate
    return amount


def tiered(amount: Decimal, tiers: Sequence[Tier]) -> Decimal:
    """Marginal tiers: each slice of the amount pays its own tier's rate.

    A negative amount (the provider's games paid out more than they took) is charged
    at the first tier's rate, giving a negative fee that carry-over rules deal with.
    """
    if amount <= 0:
        return amount * tiers[0].rate
    fee = Decimal(0)
    for index, tier in enumerate(tiers):
        upper = Decimal(tiers[index + 1].floor) if index + 1 < len(tiers) else None
        if amount <= tier.floor:
            break
        top = amount if upper is None else min(amount, upper)
        fee += (top - tier.floor) * tier.rate
    return fee


def version_fees(
    versions: Sequence[tuple[ContractTerms, Mapping[str, Totals]]],
) -> list[tuple[ContractTerms, Decimal]]:
    """The exact fee each version earned in one period, in the order they took effect.

    The tier ladder is the period's, per game type: the volume earned under an earlier
    version climbs it first, and a later version goes on from where the ladder stands,
    each slice at its own version's tiers. So a version change that leaves the tiers
    alone leaves the fee alone (ADR 0018). Game types and versions with nothing in
    them are left out, so a figure that nets to zero counts as absent."""
    position: dict[str, Decimal] = {}
    out: list[tuple[ContractTerms, Decimal]] = []
    for terms, by_game_type in sorted(
        versions, key=lambda item: (item[0].effective_from, item[0].version)
    ):
        exact = Decimal(0)
        earned = False
        for game_type, totals in sorted(by_game_type.items()):
            if totals == Totals():
                continue
            earned = True
            tiers = terms.tiers_for(game_type)
            start = position.get(game_type, Decimal(0))
            end = start + basis_amount(terms, totals)
            exact += tiered(end, tiers) - tiered(start, tiers)
            position[game_type] = end
        if earned:
            out.append((terms, exact))
    return out


def fee_parts(
    versions: Sequence[tuple[ContractTerms, Mapping[str, Totals]]],
) -> list[tuple[ContractTerms, int]]:
    """Each version's part of the period's fee, which is rounded once (in the rounding
    mode of the last version that earned): a part is the rounded running sum through
    its version minus the one before it, so the parts add up to the fee exactly."""
    exact = version_fees(versions)
    if not exact:
        return []
    mode = exact[-1][0].rounding
    parts: list[tuple[ContractTerms, int]] = []
    running = Decimal(0)
    before = 0
    for terms, fee in exact:
        running += fee
        rounded = round_minor(running, mode)
        parts.append((terms, rounded - before))
        before = rounded
    return parts


def running_fee(terms: ContractTerms, by_game_type: Mapping[str, Totals]) -> int:
    """The fee earned by these totals under one version before period-end rules, rounded
    once."""
    return sum(part for _, part in fee_parts([(terms, by_game_type)]))


@dataclass(frozen=True, slots=True)
class PeriodFee:
    """How a period's fee follows from its totals; every figure is minor units."""

    basis: int  # rounded, for display
    fee_before_rules: int
    carried_in: int  # negative basis fee carried from the previous period (<= 0)
    minimum_fee_topup: int
    fee: int  # what the provider is owed for the period
    carried_out: int  # negative fee carried to the next period (<= 0)
    # A carry brought in while the terms at the period's end have no carry-over: not
    # taken off this period's fee, and not carried on (<= 0).
    carry_lapsed: int = 0


def apply_period_rules(
    terms: ContractTerms, fee_before_rules: int, basis: int, carried_in: int = 0
) -> PeriodFee:
    """Close a period's fee: carry-over first, then the minimum fee.

    The carry-over rule is the period's terms', both ways: without carry-over a period
    neither carries a negative fee out nor takes one in (a carry brought in lapses)."""
    lapsed = 0
    if not terms.carry_over_negative:
        lapsed, carried_in = carried_in, 0
    net = fee_before_rules + carried_in
    carried_out = 0
    if net < 0:
        if terms.carry_over_negative:
            carried_out = net
        # Without carry-over a negative period is simply worth nothing to the provider.
        net = 0
    topup = max(0, terms.minimum_fee - net)
    return PeriodFee(basis, fee_before_rules, carried_in, topup, net + topup, carried_out, lapsed)


def period_fee(
    terms: ContractTerms, by_game_type: Mapping[str, Totals], carried_in: int = 0
) -> PeriodFee:
    """A period's fee from its totals under one set of terms."""
    basis_total = sum((basis_amount(terms, t) for t in by_game_type.values()), Decimal(0))
    return apply_period_rules(
        terms,
        running_fee(terms, by_game_type),
        round_minor(basis_total, terms.rounding),
        carried_in,
    )
