"""The risk watch over simulated activity: certified games, events, a scored run."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from tally.events.model import Event, EventKind
from tally.risk.detectors.model import Detector, Said, WatchEvent
from tally.risk.detectors.rtp import GameRtp, volatility_of
from tally.risk.watch import Pipeline, default_detectors
from tally.simulation.incidents import MAX_WIN_MULTIPLIER, Incident, Record, plan, stream
from tally.simulation.scoring import Score, score
from tally.simulation.world import World


def certified_games(world: World) -> list[GameRtp]:
    """Each simulated game's certificate: its RTP, the volatility its win law implies,
    and the cap on one win."""
    return [
        GameRtp(g.id, g.rtp, volatility_of(g.rtp, Decimal(str(g.hit_rate))), MAX_WIN_MULTIPLIER)
        for p in world.providers
        for g in p.games
    ]


def watch_event(r: Record) -> WatchEvent:
    return WatchEvent(
        f"{r.provider}:{r.tx_id}:{r.kind}",
        r.kind,
        r.provider,
        r.operator,
        r.player,
        r.game,
        r.round_id,
        r.amount,
        r.currency,
        r.region,
        r.agent,
        int(r.recorded_at.timestamp()),
        int(r.occurred_at.timestamp()),
    )


def events(records: Iterable[Record]) -> Iterator[WatchEvent]:
    return (watch_event(r) for r in records)


@dataclass(slots=True)
class Run:
    incidents: list[Incident]
    said: list[Said]
    events: int
    score: Score


def run(
    world: World,
    *,
    minutes: int,
    rounds_per_minute: float,
    per_kind: int,
    seed: int,
    warmup_minutes: int = 0,
    detectors: Callable[[World], Sequence[Detector]] | None = None,
) -> Run:
    """Simulate ``warmup_minutes`` of clean activity then ``minutes`` with ``per_kind``
    incidents of each kind; watch it all; score what was said after the warm-up."""
    incidents = plan(world, minutes=minutes, per_kind=per_kind, seed=seed, after=warmup_minutes)
    shift = timedelta(minutes=warmup_minutes)
    pipeline = Pipeline((detectors or (lambda w: default_detectors(certified_games(w))))(world))
    said: list[Said] = []
    count = 0
    records = stream(
        world,
        minutes=warmup_minutes + minutes,
        rounds_per_minute=rounds_per_minute,
        incidents=incidents,
        seed=seed,
    )
    start = int((world.start + shift).timestamp())
    batch: list[WatchEvent] = []
    for e in events(records):
        batch.append(e)
        if len(batch) >= 10_000:
            pipeline.feed(batch, said)
            count += len(batch)
            batch = []
    pipeline.feed(batch, said)
    count += len(batch)
    end = int((world.start + shift + timedelta(minutes=minutes)).timestamp())
    pipeline.advance(end, said)
    scored = [s for s in said if int(s.at.timestamp()) >= start]
    return Run(incidents, scored, count, score(incidents, scored))


def to_event(r: Record) -> Event:
    """The canonical event the log keeps for a record."""
    return Event(
        provider=r.provider,
        provider_tx_id=r.tx_id,
        kind=EventKind(r.kind),
        round_id=r.round_id,
        operator=r.operator,
        player=r.player,
        game=r.game,
        game_type=r.game_type,
        amount=r.amount,
        currency=r.currency,
        occurred_at=r.occurred_at,
        recorded_at=r.recorded_at,
        region=r.region,
        agent=r.agent,
        ref=f"{r.provider}:{r.ref}:bet" if r.ref else "",
    )
