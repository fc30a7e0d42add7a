"""A seeded world: providers, operators with partner trees, players, regions, games.

Pure and deterministic: the same seed and size give the same world, byte for byte, so a
failing simulation can be replayed exactly from its seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tally.settlement.contracts import ContractTerms, FxPolicy, Tier
from tally.settlement.fx import FxRate
from tally.settlement.partners import Agent, Placement
from tally.settlement.periods import PeriodKind


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    timezone: str
    currency: str
    # Relative activity by local hour (0-23) and weekday (Mon=0), from typical traffic.
    weight: float


REGIONS = (
    Region("eu", "Europe/Malta", "EUR", 1.0),
    Region("uk", "Europe/London", "GBP", 0.6),
    Region("jp", "Asia/Tokyo", "JPY", 0.5),
    Region("br", "America/Sao_Paulo", "BRL", 0.4),
    Region("ca", "America/Toronto", "CAD", 0.3),
)

# Local-hour profile: quiet nights, a lunchtime bump, an evening peak.
HOURLY = (
    0.35,
    0.25,
    0.18,
    0.12,
    0.10,
    0.10,
    0.15,
    0.25,
    0.35,
    0.45,
    0.55,
    0.65,
    0.75,
    0.70,
    0.65,
    0.65,
    0.70,
    0.80,
    0.95,
    1.00,
    1.00,
    0.90,
    0.70,
    0.50,
)
# Weekday profile: busier Friday to Sunday.
WEEKLY = (0.85, 0.85, 0.90, 0.95, 1.10, 1.25, 1.15)


@dataclass(frozen=True, slots=True)
class Game:
    id: str
    provider: str
    game_type: str
    rtp: Decimal  # return to player, e.g. 0.96
    hit_rate: float  # share of rounds that pay something
    jackpot_odds: float  # chance per round of a jackpot win


@dataclass(frozen=True, slots=True)
class Provider:
    id: str
    protocol: str  # which adapter speaks for it
    games: tuple[Game, ...]


@dataclass(frozen=True, slots=True)
class Player:
    id: str
    operator: str
    region: str
    currency: str
    agent: str  # the store the player belongs to
    mean_stake: int  # minor units
    activity: float  # relative sessions per hour


@dataclass(frozen=True, slots=True)
class Operator:
    id: str
    stores: tuple[str, ...]


@dataclass(slots=True)
class World:
    seed: int
    start: datetime
    regions: tuple[Region, ...]
    providers: tuple[Provider, ...]
    operators: tuple[Operator, ...]
    players: tuple[Player, ...]
    agents: list[Agent] = field(default_factory=list)
    placements: list[Placement] = field(default_factory=list)
    contracts: list[ContractTerms] = field(default_factory=list)
    rates: list[FxRate] = field(default_factory=list)

    def region(self, code: str) -> Region:
        return next(r for r in self.regions if r.code == code)


PROTOCOLS = ("softswiss", "pragmatic", "hub88", "evolution")
GAME_TYPES = {
    "slots": (Decimal("0.96"), 0.28),
    "live": (Decimal("0.985"), 0.45),
    "table": (Decimal("0.975"), 0.42),
    "crash": (Decimal("0.97"), 0.50),
}
# Settlement rates per euro, per region currency (a few fixed points; the simulation
# moves them a little each day).
EUR_RATES = {
    "EUR": Decimal("1"),
    "GBP": Decimal("0.86"),
    "JPY": Decimal("162.4"),
    "BRL": Decimal("5.42"),
    "CAD": Decimal("1.47"),
}


def build_world(
    seed: int,
    start: datetime,
    *,
    providers: int = 4,
    operators: int = 3,
    players: int = 300,
    stores_per_operator: int = 4,
) -> World:
    """A world of the given size. Every choice comes from ``random.Random(seed)``."""
    rng = random.Random(seed)
    provider_list: list[Provider] = []
    for p in range(providers):
        pid = f"prov{p + 1}"
        games = tuple(
            Game(
                f"{pid}-g{g + 1}",
                pid,
                game_type,
                GAME_TYPES[game_type][0] - Decimal(rng.randrange(0, 30)) / 1000,
                GAME_TYPES[game_type][1],
                0.0005 if game_type == "slots" else 0.0,
            )
            for g, game_type in enumerate(rng.sample(sorted(GAME_TYPES), k=rng.randint(2, 4)))
        )
        provider_list.append(Provider(pid, PROTOCOLS[p % len(PROTOCOLS)], games))

    operator_list: list[Operator] = []
    agents: list[Agent] = []
    placements: list[Placement] = []
    for o in range(operators):
        oid = f"op{o + 1}"
        hq, sub = f"{oid}-hq", f"{oid}-sub"
        agents += [
            Agent(hq, oid, Decimal("0.020"), Decimal("0.30"), start),
            Agent(sub, oid, Decimal("0.015"), Decimal("0.25"), start),
        ]
        placements += [Placement(hq, None, start), Placement(sub, hq, start)]
        stores = []
        for d in range(2):
            dist = f"{oid}-dist{d + 1}"
            agents.append(Agent(dist, oid, Decimal("0.010"), Decimal("0.20"), start))
            placements.append(Placement(dist, sub, start))
            for s in range(stores_per_operator // 2):
                store = f"{oid}-store{d + 1}{s + 1}"
                rate = Decimal(rng.choice(["0.004", "0.005", "0.006"]))
                agents.append(Agent(store, oid, rate, Decimal("0.10"), start))
                placements.append(Placement(store, dist, start))
                stores.append(store)
        operator_list.append(Operator(oid, tuple(stores)))

    player_list: list[Player] = []
    for n in range(players):
        operator = rng.choice(operator_list)
        region = rng.choices(REGIONS, weights=[r.weight for r in REGIONS])[0]
        scale = 100 if region.currency == "JPY" else 1
        player_list.append(
            Player(
                f"pl{n + 1:06d}",
                operator.id,
                region.code,
                region.currency,
                rng.choice(operator.stores),
                int(rng.lognormvariate(5.3, 0.8)) * scale + scale,
                rng.lognormvariate(0, 0.6),
            )
        )

    contracts = [
        ContractTerms(
            f"{p.id}-std",
            1,
            p.id,
            start,
            "EUR",
            {
                "slots": (Tier(0, Decimal("0.12")), Tier(5_000_000, Decimal("0.10"))),
                "*": (Tier(0, Decimal("0.08")),),
            },
            minimum_fee=rng.choice([0, 50_000, 100_000]),
            carry_over_negative=rng.random() < 0.5,
            fx_policy=FxPolicy.EVENT_TIME if i % 2 == 0 else FxPolicy.PERIOD_END,
            period=PeriodKind.MONTH,
            timezone=rng.choice(["UTC", "Europe/Malta", "Asia/Tokyo"]),
        )
        for i, p in enumerate(provider_list)
    ]
    rates = [
        FxRate("EUR", currency, start, rate, "simulation")
        for currency, rate in EUR_RATES.items()
        if currency != "EUR"
    ]
    return World(
        seed,
        start,
        REGIONS,
        tuple(provider_list),
        tuple(operator_list),
        tuple(player_list),
        agents,
        placements,
        contracts,
        rates,
    )
