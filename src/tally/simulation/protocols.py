"""Driving Tally through the providers' own protocols: signed callbacks, with faults.

Each round of generated play becomes the requests its provider would send: for the
SoftSwiss protocol one ``/play`` with the bet and its wins, a ``/freespins`` for a bonus,
a ``/rollback`` for a rollback. Faults act on the requests: some are delivered twice,
neighbours swap places (so a rollback may overtake its bet), some arrive malformed or
wrongly signed (extra deliveries, which must be refused and kept, never applied).

A provider whose protocol has no request builder here is driven through SoftSwiss's
protocol under its own name (the gateway is told so), so every world can be driven.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby

from tally.providers.softswiss.adapter import SIGN_HEADER
from tally.providers.softswiss.client import Request, SoftSwissClient
from tally.simulation.activity import Play
from tally.simulation.world import World

DRIVEN_PROTOCOLS = ("softswiss",)  # protocols the driver can speak as a provider


def simulation_secret(provider: str) -> str:
    """The credential a simulated provider signs with (set in the gateway before a run)."""
    return f"sim-secret-{provider}"


@dataclass(frozen=True, slots=True)
class Delivery:
    provider: str
    request: Request
    genuine: bool = True  # False: a malformed or wrongly signed extra delivery
    round_id: str = ""


@dataclass(frozen=True, slots=True)
class ProtocolFaults:
    duplicate: float = 0.0  # share of requests delivered a second time, later
    swap: float = 0.0  # share of neighbouring requests that change places
    malformed: float = 0.0  # share of requests followed by a malformed copy
    bad_signature: float = 0.0  # share followed by a copy signed with the wrong key

    @classmethod
    def all_on(cls) -> ProtocolFaults:
        return cls(duplicate=0.03, swap=0.2, malformed=0.005, bad_signature=0.005)


def protocol_of(world: World) -> dict[str, str]:
    """Which protocol each provider is driven (and registered) with."""
    return {
        p.id: p.protocol if p.protocol in DRIVEN_PROTOCOLS else "softswiss" for p in world.providers
    }


def round_requests(plays: Sequence[Play], client: SoftSwissClient) -> list[Request]:
    bet = plays[0]
    actions: list[tuple[str, str, int]] = []
    extra: list[Request] = []
    for play in plays:
        if play.kind == "bet":
            actions.append(("bet", play.tx_id, play.amount))
        elif play.kind == "win":
            actions.append(("win", play.tx_id, play.amount))
        elif play.kind == "jackpot_win":
            actions.append(("jackpot", play.tx_id, play.amount))
        elif play.kind == "bonus_win":
            extra.append(client.freespins(play.player, play.currency, play.tx_id, play.amount))
        elif play.kind == "rollback":
            extra.append(
                client.rollback(
                    play.player, play.currency, play.game, play.round_id, play.tx_id, play.ref
                )
            )
    main = client.play(bet.player, bet.currency, bet.game, bet.round_id, actions, finished=True)
    return [main, *extra]


def deliveries(
    world: World, plays: Iterable[Play], faults: ProtocolFaults, rng: random.Random
) -> list[Delivery]:
    """The requests for ``plays`` (in time order) as they reach the gateway."""
    clients = {p: SoftSwissClient(simulation_secret(p)) for p in protocol_of(world)}
    out: list[Delivery] = []
    by_round = groupby(
        sorted(plays, key=lambda p: (p.round_id, p.occurred_at)), key=lambda p: p.round_id
    )
    rounds = sorted((list(group) for _, group in by_round), key=lambda g: g[0].occurred_at)
    for group in rounds:
        provider = group[0].provider
        for request in round_requests(group, clients[provider]):
            out.append(Delivery(provider, request, round_id=group[0].round_id))
            if rng.random() < faults.malformed:
                broken = request.body[: max(1, len(request.body) // 2)]
                out.append(
                    Delivery(
                        provider,
                        Request(request.action, broken, request.headers),
                        False,
                        group[0].round_id,
                    )
                )
            if rng.random() < faults.bad_signature:
                forged = hmac.new(b"not-the-secret", request.body, hashlib.sha256).hexdigest()
                headers = {**request.headers, SIGN_HEADER: forged}
                out.append(
                    Delivery(
                        provider,
                        Request(request.action, request.body, headers),
                        False,
                        group[0].round_id,
                    )
                )
    for i in range(len(out) - 1):
        if rng.random() < faults.swap:
            out[i], out[i + 1] = out[i + 1], out[i]
    for delivery in list(out):
        if delivery.genuine and rng.random() < faults.duplicate:
            out.insert(rng.randrange(len(out) + 1), delivery)
    return out


Send = Callable[[Delivery], int]  # delivers one request, returns the HTTP status


def expected_balances(plays: Iterable[Play], funding: int) -> dict[tuple[str, str], int]:
    """What every wallet must hold afterwards, computed from the plays alone."""
    played = list(plays)
    rolled_back = {p.ref for p in played if p.kind == "rollback"}
    out: dict[tuple[str, str], int] = {}
    for p in played:
        key = (p.player, p.currency)
        out.setdefault(key, funding)
        if p.kind == "bet" and p.tx_id not in rolled_back:
            out[key] -= p.amount
        elif p.kind in ("win", "jackpot_win", "bonus_win"):
            out[key] += p.amount
    return out
