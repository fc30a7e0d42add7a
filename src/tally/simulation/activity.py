"""Seeded player activity over simulated time, with daily and weekly seasonality.

Each round is a bet, maybe a win (drawn from the game's RTP and hit rate), now and then a
jackpot or a bonus win, and now and then a rollback of the bet. Output is a time-ordered
list of :class:`Play` records that drivers turn into provider calls.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from tally.simulation.world import HOURLY, WEEKLY, World

# Named limits of the generator.
STEP = timedelta(minutes=1)  # activity is drawn minute by minute
ROLLBACK_SHARE = 0.01  # bets later rolled back by the provider
BONUS_SHARE = 0.02  # rounds that end with a free-spin (bonus) win
MAX_WIN_MULTIPLIER = 500


@dataclass(frozen=True, slots=True)
class Play:
    """One provider action, as the provider would report it."""

    tx_id: str  # the provider's transaction id
    round_id: str
    kind: str  # bet, win, jackpot_win, bonus_win, rollback
    provider: str
    operator: str
    player: str
    game: str
    game_type: str
    amount: int  # minor units of ``currency``
    currency: str
    region: str
    agent: str
    occurred_at: datetime
    ref: str = ""  # rollback: the tx id it voids


def _follow(bet: Play, suffix: str, kind: str, amount: int, delay: int, ref: str = "") -> Play:
    """A later action of the same round."""
    return replace(
        bet,
        tx_id=f"{bet.round_id}-{suffix}",
        kind=kind,
        amount=amount,
        occurred_at=bet.occurred_at + timedelta(seconds=delay),
        ref=ref,
    )


def _win(rng: random.Random, stake: int, rtp: Decimal, hit_rate: float) -> int:
    if rng.random() >= hit_rate:
        return 0
    mean = float(rtp) / hit_rate
    multiplier = min(rng.expovariate(1 / mean), MAX_WIN_MULTIPLIER)
    return int(stake * multiplier)


def generate(
    world: World, *, minutes: int, rounds_per_minute: float, seed: int | None = None
) -> Iterator[Play]:
    """Plays for ``minutes`` of simulated time from the world's start, in time order."""
    rng = random.Random(world.seed if seed is None else seed)
    games = {p.id: p.games for p in world.providers}
    providers = [p.id for p in world.providers]
    zones = {r.code: ZoneInfo(r.timezone) for r in world.regions}
    by_region: dict[str, list[int]] = {}
    for index, player in enumerate(world.players):
        by_region.setdefault(player.region, []).append(index)
    counter = 0
    for minute in range(minutes):
        now = world.start + STEP * minute
        for region in world.regions:
            members = by_region.get(region.code)
            if not members:
                continue
            local = now.astimezone(zones[region.code])
            expected = (
                rounds_per_minute * region.weight * HOURLY[local.hour] * WEEKLY[local.weekday()]
            )
            count = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
            for _ in range(count):
                counter += 1
                player = world.players[rng.choice(members)]
                provider = rng.choice(providers)
                game = rng.choice(games[provider])
                at = now + timedelta(seconds=rng.randrange(60), microseconds=rng.randrange(10**6))
                stake = max(1, int(player.mean_stake * rng.lognormvariate(0, 0.5)))
                round_id = f"{provider}-r{counter}"
                bet = Play(
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
                )
                yield bet

                win = _win(rng, stake, game.rtp, game.hit_rate)
                if win:
                    yield _follow(bet, "win", "win", win, 2)
                if game.jackpot_odds and rng.random() < game.jackpot_odds:
                    yield _follow(bet, "jp", "jackpot_win", stake * rng.randint(200, 2_000), 3)
                if rng.random() < BONUS_SHARE:
                    yield _follow(bet, "fs", "bonus_win", stake * rng.randint(1, 20), 4)
                if rng.random() < ROLLBACK_SHARE:
                    yield _follow(bet, "rb", "rollback", stake, 5, ref=bet.tx_id)
