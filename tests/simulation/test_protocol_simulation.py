"""A seeded world driven the ways it reaches Tally (signed callbacks, report files,
partner feeds), every fault on, checked against an auditor that knows only the plays.

On failure the seed is in the test id; replay it with ``make sim SEED=<seed>``.
"""

from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tally.adapters.memory.ingest import MemoryImportProgress
from tally.ingest.feeds import FeedService
from tally.ingest.files import FileImporter
from tally.kernel.clock import FixedClock
from tally.quarantine.inputs import Reason
from tally.settlement.service import SettlementWorker
from tally.settlement.source import LogSource
from tally.simulation.activity import generate
from tally.simulation.protocols import (
    Delivery,
    Doors,
    ProtocolFaults,
    deliveries,
    expected_balances,
    protocol_of,
    route_of,
    simulation_secret,
)
from tally.simulation.world import build_world
from tests.simulation.test_settlement_simulation import SEEDS
from tests.support.providers import gateway_world
from tests.support.settlement import BY, TestWorker

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
FUNDING = 10**9  # minor units per wallet: no bet is refused for funds


@pytest.mark.parametrize("seed", SEEDS)
def test_a_world_driven_through_signed_callbacks_matches_the_auditor(
    seed: int, tmp_path: Path
) -> None:
    world = build_world(seed, START, players=80)
    plays = list(generate(world, minutes=8 * 60, rounds_per_minute=5))
    protocols = protocol_of(world)
    secrets = {(p, "auth_token"): simulation_secret(p) for p in protocols}
    games = {g.id: g.game_type for p in world.providers for g in p.games}
    clock = FixedClock(START)
    rng = random.Random(seed)
    sent = deliveries(world, plays, ProtocolFaults.all_on(), rng)
    with gateway_world(
        tmp_path,
        clock,
        secrets,
        protocols,
        game_type=lambda _provider, game: games.get(game, "other"),
    ) as gw:
        for player in world.players:
            gw.open_player(
                player.id,
                player.currency,
                FUNDING,
                operator=player.operator,
                region=player.region,
                agent=player.agent,
            )

        progress = MemoryImportProgress()
        doors = Doors(
            gw.gateway,
            FeedService(gw.log, gw.quarantine, clock),
            FileImporter(gw.log, gw.quarantine, progress, clock),
            clock,
        )

        def send(delivery: Delivery) -> int:
            return doors.send(delivery)

        # Rounds go out in windows, each window's requests concurrently: within a window
        # anything may overtake anything.
        statuses: list[int] = []
        with ThreadPoolExecutor(8) as pool:
            for start in range(0, len(sent), 64):
                window = sent[start : start + 64]
                statuses += pool.map(send, window)
        genuine = [d.genuine for d in sent]
        assert all(s == 200 for s, ok in zip(statuses, genuine, strict=True) if ok), seed
        assert all(s != 200 for s, ok in zip(statuses, genuine, strict=True) if not ok), seed

        # Every wallet holds what the plays that came by callbacks say, to the minor unit.
        routes = route_of(world)
        assert set(routes.values()) == {"callback", "file", "feed"}
        for (player, currency), balance in expected_balances(plays, FUNDING, routes).items():
            assert gw.balance(player, currency) == balance, (seed, player)

        # Every play is in the log once, with its amount; nothing else but round ends. (A
        # rollback carries the amount it voided when its original was known, else 0.)
        logged = [e for e in gw.events() if e.kind.value != "round_end"]
        assert len({e.key for e in gw.events()}) == len(gw.events())
        want = Counter((p.kind, p.player, 0 if p.kind == "rollback" else p.amount) for p in plays)
        got = Counter(
            (e.kind.value, e.player, 0 if e.kind.value == "rollback" else e.amount) for e in logged
        )
        assert got == want, (seed, got - want, want - got)

        # Refused deliveries are kept, with their reasons; nothing else is.
        kept = Counter(q.refused.reason for q in gw.quarantine.entries(limit=100_000).items)
        refusals = genuine.count(False) + sum(d.refusals for d in sent)
        assert sum(kept.values()) == refusals, (seed, kept)
        assert set(kept) <= {Reason.MALFORMED, Reason.BAD_SIGNATURE}

        # The ledger nets to zero in every currency.
        for currency, b in gw.wallet.ledger.store.totals_by_currency().items():
            assert b.debits_posted == b.credits_posted, currency

        # Settlement takes the whole log, refusing nothing (the statements' arithmetic is
        # audited by the settlement simulation; here the log is what is on trial).
        settle = TestWorker(
            world.contracts, agents=world.agents, placements=world.placements, rates=world.rates
        )
        worker = SettlementWorker(
            LogSource(gw.log), settle.store, settle.config, settle.clock, by=BY
        )
        assert worker.drain() == gw.log.head()
        assert settle.store.problems() == [], seed
