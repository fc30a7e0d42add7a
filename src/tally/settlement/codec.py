"""Plain-data (JSON) forms of contracts, agents, placements and FX rates.

Decimals travel as strings, times as ISO 8601 with offset. ``*_from_dict`` refuse
malformed input with a :class:`ContractError` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tally.kernel.money import Rounding
from tally.settlement.contracts import (
    Basis,
    ContractError,
    ContractTerms,
    Deduction,
    FxPolicy,
    Tier,
)
from tally.settlement.fx import FxRate
from tally.settlement.partners import Agent, Placement
from tally.settlement.periods import PeriodKind


def terms_to_dict(t: ContractTerms) -> dict[str, Any]:
    return {
        "contract_id": t.contract_id,
        "version": t.version,
        "provider": t.provider,
        "operator": t.operator,
        "effective_from": t.effective_from.isoformat(),
        "settlement_currency": t.settlement_currency,
        "rates": {
            game_type: [{"floor": tier.floor, "rate": str(tier.rate)} for tier in tiers]
            for game_type, tiers in sorted(t.rates.items())
        },
        "basis": t.basis.value,
        "deductions": sorted(d.value for d in t.deductions),
        "gaming_tax_rate": str(t.gaming_tax_rate),
        "minimum_fee": t.minimum_fee,
        "carry_over_negative": t.carry_over_negative,
        "fx_policy": t.fx_policy.value,
        "period": t.period.value,
        "timezone": t.timezone,
        "rounding": t.rounding.name.lower(),
        "metadata": dict(t.metadata),
    }


def _field(data: Mapping[str, Any], name: str, kind: type) -> Any:
    if name not in data:
        raise ContractError(f"{name} is required")
    value = data[name]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ContractError(f"{name} must be an integer")
    if not isinstance(value, kind):
        raise ContractError(f"{name} must be a {kind.__name__}")
    return value


def _decimal(value: Any, name: str) -> Decimal:
    if not isinstance(value, str):
        raise ContractError(f"{name} must be a decimal string, not {type(value).__name__}")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise ContractError(f"{name} {value!r} is not a decimal") from None
    if not result.is_finite():
        raise ContractError(f"{name} {value!r} is not finite")
    return result


def _instant(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise ContractError(f"{name} must be an ISO 8601 string")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ContractError(f"{name} {value!r} is not ISO 8601") from None
    if when.tzinfo is None:
        raise ContractError(f"{name} must carry a time zone")
    return when


def _enum(enum: Any, value: Any, name: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise ContractError(f"{name} {value!r} is not one of: {allowed}") from None


def terms_from_dict(data: Mapping[str, Any]) -> ContractTerms:
    rates_data = _field(data, "rates", dict)
    rates: dict[str, tuple[Tier, ...]] = {}
    for game_type, tiers in rates_data.items():
        if not isinstance(tiers, list):
            raise ContractError(f"rates.{game_type} must be a list of tiers")
        parsed: list[Tier] = []
        for tier in tiers:
            if not isinstance(tier, dict):
                raise ContractError(f"rates.{game_type} holds a tier that is not an object")
            rate = _decimal(tier.get("rate"), f"rates.{game_type}.rate")
            parsed.append(Tier(_field(tier, "floor", int), rate))
        rates[str(game_type)] = tuple(parsed)
    rounding_name = str(data.get("rounding", "half_even")).upper()
    if rounding_name not in Rounding.__members__:
        raise ContractError(f"rounding {data.get('rounding')!r} is not a known mode")
    operator = data.get("operator")
    if operator is not None and not isinstance(operator, str):
        raise ContractError("operator must be a string or null")
    return ContractTerms(
        contract_id=_field(data, "contract_id", str),
        version=_field(data, "version", int),
        provider=_field(data, "provider", str),
        operator=operator,
        effective_from=_instant(data.get("effective_from"), "effective_from"),
        settlement_currency=_field(data, "settlement_currency", str),
        rates=rates,
        basis=_enum(Basis, data.get("basis", "ggr"), "basis"),
        deductions=frozenset(_enum(Deduction, d, "deductions") for d in data.get("deductions", [])),
        gaming_tax_rate=_decimal(data.get("gaming_tax_rate", "0"), "gaming_tax_rate"),
        minimum_fee=int(data.get("minimum_fee", 0)),
        carry_over_negative=bool(data.get("carry_over_negative", False)),
        fx_policy=_enum(FxPolicy, data.get("fx_policy", "event_time"), "fx_policy"),
        period=_enum(PeriodKind, data.get("period", "month"), "period"),
        timezone=str(data.get("timezone", "UTC")),
        rounding=Rounding[rounding_name],
        metadata={str(k): str(v) for k, v in dict(data.get("metadata") or {}).items()},
    )


def agent_to_dict(a: Agent) -> dict[str, Any]:
    return {
        "id": a.id,
        "operator": a.operator,
        "rolling_rate": str(a.rolling_rate),
        "losing_rate": str(a.losing_rate),
        "effective_from": a.effective_from.isoformat(),
    }


def agent_from_dict(data: Mapping[str, Any]) -> Agent:
    return Agent(
        id=_field(data, "id", str),
        operator=_field(data, "operator", str),
        rolling_rate=_decimal(data.get("rolling_rate"), "rolling_rate"),
        losing_rate=_decimal(data.get("losing_rate"), "losing_rate"),
        effective_from=_instant(data.get("effective_from"), "effective_from"),
    )


def placement_to_dict(p: Placement) -> dict[str, Any]:
    return {"agent": p.agent, "parent": p.parent, "effective_from": p.effective_from.isoformat()}


def placement_from_dict(data: Mapping[str, Any]) -> Placement:
    parent = data.get("parent")
    if parent is not None and not isinstance(parent, str):
        raise ContractError("parent must be a string or null")
    return Placement(
        _field(data, "agent", str), parent, _instant(data.get("effective_from"), "effective_from")
    )


def rate_to_dict(r: FxRate) -> dict[str, Any]:
    return {
        "base": r.base,
        "quote": r.quote,
        "effective_at": r.effective_at.isoformat(),
        "rate": str(r.rate),
        "source": r.source,
    }


def rate_from_dict(data: Mapping[str, Any]) -> FxRate:
    return FxRate(
        base=_field(data, "base", str),
        quote=_field(data, "quote", str),
        effective_at=_instant(data.get("effective_at"), "effective_at"),
        rate=_decimal(data.get("rate"), "rate"),
        source=str(data.get("source", "")),
    )
