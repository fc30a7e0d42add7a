"""Seeded, labelled incidents for the risk watch's benchmark (in the spirit of NAB).

:func:`plan` draws incidents of each kind at seeded times (in the busy hours of the
region they hit, where a person would expect them to be caught), and :func:`stream`
draws a world's activity minute by minute, as :mod:`tally.simulation.activity` does,
with those incidents in it. Every event carries both times: when the provider says it
happened and when we recorded it, in the order we recorded it (a late batch is late).

The games here pay exactly what they are certified for (each win a capped exponential
multiple, no jackpots), so a clean week is clean by construction and an RTP drift is
the only reason a game pays more.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from tally.simulation.world import HOURLY, WEEKLY, Game, World

OUTAGE = "provider_outage"
RTP_DRIFT = "rtp_drift"
BONUS_RING = "bonus_ring"
ROLLBACK_STORM = "rollback_storm"
LATE_BATCH = "late_batch"
SURGE = "traffic_surge"
KINDS = (OUTAGE, RTP_DRIFT, BONUS_RING, ROLLBACK_STORM, LATE_BATCH, SURGE)

# Named limits of the generator.
ROLLBACK_SHARE = 0.01
BONUS_SHARE = 0.02
MAX_WIN_MULTIPLIER = 500
RECORD_DELAY_S = 2  # a callback is recorded within this many seconds
# What each incident does.
DURATION_MIN = {
    OUTAGE: 30,
    RTP_DRIFT: 8 * 60,
    BONUS_RING: 4 * 60,
    ROLLBACK_STORM: 20,
    LATE_BATCH: 40,
    SURGE: 30,
}
STORM_SHARE = 0.5  # bets rolled back during a storm
SURGE_FACTOR = 3.0
DRIFT_FACTOR = Decimal("1.6")  # the drifting game pays this times its certified RTP
RING_PLAYERS = 4
RING_ROUNDS_PER_MINUTE = 5.0  # bots churn rounds for the bonus
RING_BONUS_SHARE = 0.6
BUSY_LOCAL_HOURS = range(10, 22)


@dataclass(frozen=True, slots=True)
class Incident:
    kind: str
    start: datetime
    end: datetime
    region: str = ""
    provider: str = ""
    game: str = ""
    operator: str = ""
    agent: str = ""
    players: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Record:
    """One event as the log records it."""

    tx_id: str
    round_id: str
    kind: str
    provider: str
    operator: str
    player: str
    game: str
    game_type: str
    amount: int
    currency: str
    region: str
    agent: str
    occurred_at: datetime
    recorded_at: datetime
    ref: str = ""


@dataclass(slots=True)
class _Live:
    """The incidents under way at one minute, indexed for the generator."""

    outages: set[tuple[str, str]] = field(default_factory=set)
    late: dict[tuple[str, str], datetime] = field(default_factory=dict)
    storms: set[tuple[str, str]] = field(default_factory=set)
    surges: set[str] = field(default_factory=set)
    drifts: set[str] = field(default_factory=set)
    rings: list[Incident] = field(default_factory=list)


def plan(
    world: World,
    *,
    minutes: int,
    per_kind: int,
    seed: int,
    after: int = 0,
    kinds: Sequence[str] = KINDS,
) -> list[Incident]:
    """``per_kind`` incidents of each kind, spread over ``minutes`` from ``after`` minutes
    past the world's start without overlapping (one incident at a time, so each alert has
    one incident to answer for)."""
    rng = random.Random(seed)
    total = per_kind * len(kinds)
    if total == 0:
        return []
    slot = minutes // total
    order = [k for k in kinds for _ in range(per_kind)]
    rng.shuffle(order)
    regions = [r for r in world.regions if r.weight >= 0.5]  # busy enough to judge fast
    found: list[Incident] = []
    for i, kind in enumerate(order):
        duration = DURATION_MIN[kind]
        # The first minute in the slot (after a quiet lead) at which some busy region is
        # in its busy hours; the incident hits one of the regions that are.
        begin = after + i * slot + min(90, slot // 4)
        start = world.start + timedelta(minutes=begin)
        awake = regions
        for m in range(begin, max(begin + 1, after + (i + 1) * slot - duration)):
            at = world.start + timedelta(minutes=m)
            awake = [
                r for r in regions if at.astimezone(ZoneInfo(r.timezone)).hour in BUSY_LOCAL_HOURS
            ]
            if awake:
                start = at
                break
        region = rng.choice(awake or regions)
        end = start + timedelta(minutes=duration)
        provider = rng.choice(world.providers)
        if kind == RTP_DRIFT:
            game = max(provider.games, key=lambda g: (g.hit_rate, g.id))
            found.append(Incident(kind, start, end, provider=provider.id, game=game.id))
        elif kind == BONUS_RING:
            agent = rng.choice([o for op in world.operators for o in op.stores])
            pool = [p for p in world.players if p.agent == agent] or list(world.players)
            players = tuple(sorted(p.id for p in rng.sample(pool, min(RING_PLAYERS, len(pool)))))
            operator = next(p.operator for p in world.players if p.id == players[0])
            found.append(
                Incident(kind, start, end, operator=operator, agent=agent, players=players)
            )
        elif kind == SURGE:
            found.append(Incident(kind, start, end, region=region.code))
        else:
            found.append(Incident(kind, start, end, region=region.code, provider=provider.id))
    return sorted(found, key=lambda x: x.start)


def _live(incidents: Sequence[Incident], now: datetime) -> _Live:
    live = _Live()
    for x in incidents:
        if not x.start <= now < x.end:
            continue
        if x.kind == OUTAGE:
            live.outages.add((x.region, x.provider))
        elif x.kind == LATE_BATCH:
            live.late[(x.region, x.provider)] = x.end
        elif x.kind == ROLLBACK_STORM:
            live.storms.add((x.region, x.provider))
        elif x.kind == SURGE:
            live.surges.add(x.region)
        elif x.kind == RTP_DRIFT:
            live.drifts.add(x.game)
        elif x.kind == BONUS_RING:
            live.rings.append(x)
    return live


def _win(rng: random.Random, stake: int, rtp: Decimal, hit_rate: float) -> int:
    if rng.random() >= hit_rate:
        return 0
    return int(stake * min(rng.expovariate(hit_rate / float(rtp)), MAX_WIN_MULTIPLIER))


class _Draw:
    """The generator's state: the seeded draws and the records not yet due."""

    def __init__(self, world: World, seed: int) -> None:
        self.rng = random.Random(seed)
        self.world = world
        self.games = {p.id: p.games for p in world.providers}
        self.providers = [p.id for p in world.providers]
        self.zones = {r.code: ZoneInfo(r.timezone) for r in world.regions}
        self.players = {p.id: p for p in world.players}
        self.by_region: dict[str, list[int]] = {}
        for index, player in enumerate(world.players):
            self.by_region.setdefault(player.region, []).append(index)
        self.pending: list[tuple[datetime, int, Record]] = []
        self.counter = 0
        self.seq = 0

    def push(self, r: Record) -> None:
        self.seq += 1
        heapq.heappush(self.pending, (r.recorded_at, self.seq, r))

    def due(self, before: datetime) -> Iterator[Record]:
        while self.pending and self.pending[0][0] < before:
            yield heapq.heappop(self.pending)[2]

    def minute(self, now: datetime, rounds_per_minute: float, live: _Live) -> None:
        rng = self.rng
        for region in self.world.regions:
            members = self.by_region.get(region.code)
            if not members:
                continue
            local = now.astimezone(self.zones[region.code])
            expected = (
                rounds_per_minute * region.weight * HOURLY[local.hour] * WEEKLY[local.weekday()]
            )
            if region.code in live.surges:
                expected *= SURGE_FACTOR
            count = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
            for _ in range(count):
                player = self.world.players[rng.choice(members)]
                provider = rng.choice(self.providers)
                if (player.region, provider) in live.outages:
                    continue  # the provider is down here: its callbacks never come
                game = rng.choice(self.games[provider])
                at = now + timedelta(seconds=rng.randrange(60), microseconds=rng.randrange(10**6))
                self.round(player.id, provider, game, at, live)
        for ring in live.rings:
            for pid in ring.players:
                n = int(RING_ROUNDS_PER_MINUTE)
                n += 1 if rng.random() < RING_ROUNDS_PER_MINUTE - n else 0
                for _ in range(n):
                    provider = rng.choice(self.providers)
                    at = now + timedelta(seconds=rng.randrange(60))
                    self.round(pid, provider, rng.choice(self.games[provider]), at, live)

    def round(self, player_id: str, provider: str, game: Game, at: datetime, live: _Live) -> None:
        rng = self.rng
        self.counter += 1
        player = self.players[player_id]
        delay = timedelta(seconds=rng.randrange(RECORD_DELAY_S + 1))
        held = live.late.get((player.region, provider))
        if held is not None:
            delay = held - at + timedelta(seconds=rng.randrange(60))
        stake = max(1, int(player.mean_stake * rng.lognormvariate(0, 0.5)))
        round_id = f"{provider}-r{self.counter}"
        bet = Record(
            f"{round_id}-bet",
            round_id,
            "bet",
            provider,
            player.operator,
            player.id,
            game.id,
            game.game_type,
            stake,
            player.currency,
            player.region,
            player.agent,
            at,
            at + delay,
        )
        self.push(bet)
        rtp = game.rtp * DRIFT_FACTOR if game.id in live.drifts else game.rtp
        win = _win(rng, stake, rtp, game.hit_rate)
        if win:
            self.follow(bet, delay, "win", "win", win, 2)
        ring = any(player.id in x.players for x in live.rings)
        if rng.random() < (RING_BONUS_SHARE if ring else BONUS_SHARE):
            self.follow(bet, delay, "fs", "bonus_win", stake * rng.randint(1, 20), 4)
        storm = (player.region, provider) in live.storms
        if rng.random() < (STORM_SHARE if storm else ROLLBACK_SHARE):
            self.follow(bet, delay, "rb", "rollback", stake, 5, ref=bet.tx_id)

    def follow(
        self,
        bet: Record,
        delay: timedelta,
        suffix: str,
        kind: str,
        amount: int,
        after: int,
        ref: str = "",
    ) -> None:
        """A later action of the bet's round, recorded as late as the bet was."""
        when = bet.occurred_at + timedelta(seconds=after)
        self.push(
            replace(
                bet,
                tx_id=f"{bet.round_id}-{suffix}",
                kind=kind,
                amount=amount,
                occurred_at=when,
                recorded_at=when + delay,
                ref=ref,
            )
        )


def stream(
    world: World,
    *,
    minutes: int,
    rounds_per_minute: float,
    incidents: Sequence[Incident] = (),
    seed: int | None = None,
) -> Iterator[Record]:
    """Records for ``minutes`` of simulated time from the world's start, in the order
    they are recorded."""
    draw = _Draw(world, world.seed if seed is None else seed)
    for minute in range(minutes):
        now = world.start + timedelta(minutes=minute)
        draw.minute(now, rounds_per_minute, _live(incidents, now))
        yield from draw.due(now + timedelta(minutes=1))
    while draw.pending:
        yield heapq.heappop(draw.pending)[2]
