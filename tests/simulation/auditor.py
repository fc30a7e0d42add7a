"""The auditor: what every statement and commission must be, computed from the world.

Written apart from the engine and as plainly as possible: loops over the delivered
events, with the rules spelled out once here. It shares nothing with tally.settlement
but the plain data classes it reads (contracts, agents, events).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

from tally.settlement.engine import SettlementEvent
from tally.simulation.world import World

SCALE = {"EUR": 2, "GBP": 2, "JPY": 0, "BRL": 2, "CAD": 2}
MARCH, APRIL = "2026-03", "2026-04"


def half_even(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


@dataclass
class Expected:
    # (contract, operator, period) -> figures in settlement currency minor units
    turnover: dict[tuple[str, str, str], int]
    wins: dict[tuple[str, str, str], int]
    bonuses: dict[tuple[str, str, str], int]
    fee: dict[tuple[str, str, str], int]
    carried_out: dict[tuple[str, str, str], int]
    # (operator, agent, period, currency) -> commission
    commission: dict[tuple[str, str, str, str], int]


def audit(world: World, on_time: list[SettlementEvent], late: list[SettlementEvent]) -> Expected:
    contract_of = {c.provider: c for c in world.contracts}
    eur_per = {r.quote: r.rate for r in world.rates}  # 1 EUR buys this much of the quote
    parent = {p.agent: p.parent for p in world.placements}
    agent = {a.id: a for a in world.agents}

    # First delivery of every event, with its phase (1: before March closed, 2: after).
    first: dict[str, tuple[int, int, SettlementEvent]] = {}
    rollback_of: dict[str, tuple[int, int]] = {}
    for index, (phase, event) in enumerate([(1, e) for e in on_time] + [(2, e) for e in late]):
        if event.key in first:
            continue
        first[event.key] = (index, phase, event)
        if event.ref and event.ref not in rollback_of:
            rollback_of[event.ref] = (index, phase)

    # Sums by (contract, operator, period, game type, currency of the sum).
    sums: dict[tuple[str, str, str, str, str], list[Decimal]] = defaultdict(
        lambda: [Decimal(0)] * 3
    )
    commission: dict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal)

    def add(e: SettlementEvent, period: str, sign: int) -> None:
        c = contract_of[e.provider]
        amount = Decimal(e.amount * sign)
        currency = e.currency
        if currency != "EUR" and c.fx_policy.value == "event_time":
            amount = Decimal(
                half_even(amount * Decimal(10) ** (2 - SCALE[currency]) / eur_per[currency])
            )
            currency = "EUR"
        slot = {"bet": 0, "win": 1, "jackpot_win": 1, "bonus_win": 2}[e.kind.value]
        sums[(c.contract_id, e.operator, period, e.game_type, currency)][slot] += amount
        turnover = amount if slot == 0 else Decimal(0)
        ggr = amount if slot == 0 else (-amount if slot == 1 else Decimal(0))
        below_rolling = below_losing = Decimal(0)
        node: str | None = e.agent
        while node is not None:
            a = agent[node]
            commission[(e.operator, node, period, currency)] += (
                a.rolling_rate - below_rolling
            ) * turnover + (a.losing_rate - below_losing) * ggr
            below_rolling, below_losing = a.rolling_rate, a.losing_rate
            node = parent[node]

    for key, (index, phase, event) in first.items():
        if event.kind.value in ("rollback", "round_end"):
            continue
        c = contract_of[event.provider]
        local = event.occurred_at.astimezone(ZoneInfo(c.timezone))
        period = f"{local.year}-{local.month:02d}"
        booked = APRIL if (phase == 2 and period == MARCH) else period
        rollback = rollback_of.get(key)
        if rollback is not None and rollback[0] < index:
            continue  # its rollback came first: it counts for nothing
        add(event, booked, +1)
        if rollback is not None:
            add(event, APRIL if (rollback[1] == 2 and booked == MARCH) else booked, -1)

    # Convert what is still in another currency at the (constant) period-end rate.
    in_eur: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for (contract, operator, period, game_type, currency), values in sums.items():
        for slot, value in enumerate(values):
            if currency != "EUR":
                value = Decimal(
                    half_even(value * Decimal(10) ** (2 - SCALE[currency]) / eur_per[currency])
                )
            in_eur[(contract, operator, period, game_type)][slot] += int(value)

    expected = Expected({}, {}, {}, {}, {}, {})
    for c in world.contracts:
        for operator in (o.id for o in world.operators):
            carried = 0
            for period in (MARCH, APRIL):
                key = (c.contract_id, operator, period)
                raw = Decimal(0)
                totals = [0, 0, 0]
                for (cid, op, p, game_type), values in in_eur.items():
                    if (cid, op, p) != key:
                        continue
                    totals = [t + v for t, v in zip(totals, values, strict=True)]
                    ggr = values[0] - values[1]
                    raw += tiered(Decimal(ggr), game_type)
                net = half_even(raw) + carried
                carried = 0
                if net < 0:
                    carried = net if c.carry_over_negative else 0
                    net = 0
                fee = max(net, c.minimum_fee)
                expected.turnover[key], expected.wins[key], expected.bonuses[key] = totals
                expected.fee[key] = fee
                expected.carried_out[key] = carried
    expected.commission = {k: half_even(v) for k, v in commission.items()}
    return expected


def tiered(ggr: Decimal, game_type: str) -> Decimal:
    """The simulation's contracts: slots 12% up to 50,000.00 then 10%; others 8%."""
    if game_type != "slots":
        return ggr * Decimal("0.08")
    if ggr <= 5_000_000:
        return ggr * Decimal("0.12")
    return 5_000_000 * Decimal("0.12") + (ggr - 5_000_000) * Decimal("0.10")
