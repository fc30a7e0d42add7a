"""Driving Tally the ways the world reaches it: signed callbacks, batch reports, feeds.

Each provider comes in one way (:func:`route_of`):
- callbacks: each round of play becomes the requests its provider would send: for the
  SoftSwiss protocol one ``/play`` with the bet and its wins, a ``/freespins`` for a
  bonus, a ``/rollback`` for a rollback (a provider whose protocol has no request builder
  here is driven through SoftSwiss's protocol under its own name);
- file: the provider sends a report (CSV, in its own time zone) every six hours;
- feed: the operators push that provider's play as canonical events, fifty at a time.

Faults act on the deliveries: some are delivered twice, neighbours swap places (so a
rollback may overtake its bet), some callbacks arrive malformed or wrongly signed, some
report lines and feed items are malformed; whatever is malformed must be refused and
kept, never applied, and everything else counted exactly once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import groupby
from zoneinfo import ZoneInfo

from tally.ingest.feeds import FeedService
from tally.ingest.files import FileImporter
from tally.ingest.lines import ReportFormat
from tally.kernel.clock import Clock
from tally.kernel.money import format_amount
from tally.providers.base import Inbound
from tally.providers.gateway import Gateway
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
    request: Request  # a callback; for a file, action = file name; for a feed, the push
    genuine: bool = True  # False: a malformed or wrongly signed extra delivery
    round_id: str = ""
    way: str = "callback"  # callback, file or feed
    operator: str = ""  # a feed's operator
    refusals: int = 0  # lines or items in it that must be refused


REPORT_ZONE = "Europe/Malta"  # the reporting provider's own time zone
REPORT_EVERY = timedelta(hours=6)
FEED_CHUNK = 50  # events per partner-feed push


@dataclass(frozen=True, slots=True)
class ProtocolFaults:
    duplicate: float = 0.0  # share of requests delivered a second time, later
    swap: float = 0.0  # share of neighbouring requests that change places
    malformed: float = 0.0  # share of requests followed by a malformed copy
    bad_signature: float = 0.0  # share followed by a copy signed with the wrong key
    # One calling provider goes quiet for this share of the run, then sends all it held
    # back at once (an outage followed by a burst).
    outage: float = 0.0
    # The reporting and feeding providers' clocks run this far ahead of ours (seconds;
    # negative: behind). Their times are theirs: kept as sent.
    skew_s: float = 0.0

    @classmethod
    def all_on(cls) -> ProtocolFaults:
        return cls(
            duplicate=0.03, swap=0.2, malformed=0.005, bad_signature=0.005, outage=0.1, skew_s=90
        )


def route_of(world: World) -> dict[str, str]:
    """How each provider's play reaches Tally: the first two by callbacks, then a report
    file, then a partner feed, in turn."""
    ways = ("callback", "callback", "file", "feed")
    return {p.id: ways[i % len(ways)] for i, p in enumerate(world.providers)}


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
    routes = route_of(world)
    played = list(plays)
    out: list[Delivery] = []
    by_round = groupby(
        sorted(played, key=lambda p: (p.round_id, p.occurred_at)), key=lambda p: p.round_id
    )
    rounds = sorted((list(group) for _, group in by_round), key=lambda g: g[0].occurred_at)
    skew = timedelta(seconds=faults.skew_s)
    bulk = _bulk(
        [
            replace(p, occurred_at=p.occurred_at + skew)
            for p in played
            if routes[p.provider] != "callback"
        ],
        routes,
        faults,
        rng,
    )
    for group in rounds:
        provider = group[0].provider
        if routes[provider] != "callback":
            continue
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
    if faults.outage and out:
        out = _outage(out, faults.outage, rng)
    # Reports and feeds go out in time order among the callbacks.
    for at, delivery in bulk:
        out.insert(_position(rounds, out, at), delivery)
    return out


def _outage(out: list[Delivery], share: float, rng: random.Random) -> list[Delivery]:
    """One provider's deliveries in a stretch of the run held back, then sent at once."""
    provider = rng.choice(sorted({d.provider for d in out}))
    start = rng.randrange(max(1, int(len(out) * (1 - share))))
    end = start + int(len(out) * share)
    held = [d for d in out[start:end] if d.provider == provider]
    kept = [d for d in out[start:end] if d.provider != provider]
    return out[:start] + kept + held + out[end:]


def _position(rounds: list[list[Play]], out: list[Delivery], at: datetime) -> int:
    """Roughly where, among the callbacks, something sent at ``at`` belongs."""
    if not rounds:
        return len(out)
    first, last = rounds[0][0].occurred_at, rounds[-1][0].occurred_at
    span = max((last - first).total_seconds(), 1.0)
    share = min(max((at - first).total_seconds() / span, 0.0), 1.0)
    return int(share * len(out))


def _bulk(
    plays: list[Play], routes: dict[str, str], faults: ProtocolFaults, rng: random.Random
) -> list[tuple[datetime, Delivery]]:
    """Report files and feed pushes for the providers that do not call back."""
    out: list[tuple[datetime, Delivery]] = []
    zone = ZoneInfo(REPORT_ZONE)
    files: dict[tuple[str, datetime], list[Play]] = {}
    feeds: dict[tuple[str, str], list[Play]] = {}
    for p in sorted(plays, key=lambda p: p.occurred_at):
        if routes[p.provider] == "file":
            start = p.occurred_at.replace(minute=0, second=0, microsecond=0)
            start -= timedelta(hours=start.hour % int(REPORT_EVERY.total_seconds() // 3600))
            files.setdefault((p.provider, start), []).append(p)
        else:
            feeds.setdefault((p.provider, p.operator), []).append(p)
    for (provider, start), rows in files.items():
        lines = [REPORT_COLUMNS]
        refusals = 0
        for p in rows:
            lines.append(_report_line(p, zone))
            if rng.random() < faults.duplicate:
                lines.append(lines[-1])  # a line the provider repeated
            if rng.random() < faults.malformed:
                lines.append(f"{p.tx_id}-x,bet,{p.round_id},{p.operator},{p.player}")
                refusals += 1
        name = f"{provider}-{start:%Y%m%dT%H}.csv"
        body = ("\n".join(lines) + "\n").encode()
        delivery = Delivery(provider, Request(name, body, {}), way="file", refusals=refusals)
        out.append((start + REPORT_EVERY, delivery))
    for (provider, operator), rows in feeds.items():
        for i in range(0, len(rows), FEED_CHUNK):
            chunk = rows[i : i + FEED_CHUNK]
            items: list[object] = [_feed_item(p) for p in chunk]
            refusals = 0
            if rng.random() < faults.malformed * FEED_CHUNK:
                items.append({"kind": "bet", "note": "an item missing its fields"})
                refusals = 1
            body = json.dumps(items, separators=(",", ":")).encode()
            push = Delivery(
                provider,
                Request("feed", body, {}),
                way="feed",
                operator=operator,
                refusals=refusals,
            )
            out.append((chunk[-1].occurred_at, push))
            if rng.random() < faults.duplicate:
                out.append((chunk[-1].occurred_at, replace(push, refusals=refusals)))
    out.sort(key=lambda item: item[0])
    return out


REPORT_COLUMNS = (
    "tx_id,kind,round_id,operator,player,game,game_type,amount,currency,occurred_at,ref"
)


def _report_line(p: Play, zone: ZoneInfo) -> str:
    local = p.occurred_at.astimezone(zone).replace(tzinfo=None).isoformat()
    amount = format_amount(p.amount, p.currency)
    return (
        f"{p.tx_id},{p.kind},{p.round_id},{p.operator},{p.player},{p.game},{p.game_type},"
        f"{amount},{p.currency},{local},{p.ref}"
    )


def _feed_item(p: Play) -> dict[str, object]:
    return {
        "schema_version": 1,
        "provider": p.provider,
        "provider_tx_id": p.tx_id,
        "kind": p.kind,
        "round_id": p.round_id,
        "operator": p.operator,
        "player": p.player,
        "game": p.game,
        "game_type": p.game_type,
        "amount": format_amount(0 if p.kind == "rollback" else p.amount, p.currency),
        "currency": p.currency,
        "occurred_at": p.occurred_at.isoformat(),
        "channel": "api",
        "region": p.region,
        "agent": p.agent,
        "ref": f"{p.provider}:{p.ref}:bet" if p.ref else "",
    }


def expected_balances(
    plays: Iterable[Play], funding: int, routes: dict[str, str]
) -> dict[tuple[str, str], int]:
    """What every wallet must hold afterwards, computed from the plays alone (only play
    that came in by callbacks moves wallets)."""
    played = [p for p in plays if routes[p.provider] == "callback"]
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


@dataclass
class Doors:
    """Where deliveries go in: the gateway, the feed service and the report importer."""

    gateway: Gateway
    feeds: FeedService
    importer: FileImporter
    clock: Clock
    # Callbacks over real HTTP to the gateway's server when set (base URL -> status).
    post: Callable[[str, bytes, dict[str, str]], int] | None = None

    def send(self, d: Delivery) -> int:
        """Deliver one; an HTTP-like status (200: taken, item by item for bulk ones)."""
        if d.way == "feed":
            self.feeds.push(d.operator, d.request.body, channel="simulation")
            return 200
        if d.way == "file":
            fmt = ReportFormat(d.provider, ZoneInfo(REPORT_ZONE))
            self.importer.run(d.request.action, d.request.body, fmt)
            return 200
        r = d.request
        if self.post is not None:
            return self.post(f"/providers/{d.provider}/{r.action}", r.body, r.headers)
        return self.gateway.handle(
            d.provider, Inbound(r.action, r.body, self.clock.now(), r.headers)
        ).status
