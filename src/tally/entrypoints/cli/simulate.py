"""``tally simulate``: a seeded world's activity through settlement, with a live view."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Group
from rich.live import Live
from rich.panel import Panel

from tally.adapters.memory.settlement import MemoryEventSource
from tally.app.bootstrap import (
    App,
    Backoffice,
    backoffice_wallet_gateway,
    build_app,
    build_backoffice,
)
from tally.app.logging import configure_logging
from tally.app.settings import Settings
from tally.audit.service import Auditing
from tally.entrypoints.cli.common import console
from tally.entrypoints.cli.tables import Table
from tally.kernel.clock import FixedClock
from tally.kernel.money import format_amount
from tally.providers.registry import Registry
from tally.settlement.figures import Dimension, fees_accrued, live_totals
from tally.settlement.statements import Statement
from tally.simulation.faults import Faults
from tally.simulation.protocols import ProtocolFaults, protocol_of, simulation_secret
from tally.simulation.run import GatewayRun, SimulationRun
from tally.simulation.world import World, build_world

DEFAULT_START = "2026-03-31T00:00:00+00:00"


def _view(run: SimulationRun) -> Group:
    snap = run.snapshot()
    rate = snap.settled / snap.elapsed_s if snap.elapsed_s > 0 else 0.0
    header = (
        f"simulated time [bold]{snap.sim_time:%Y-%m-%d %H:%M} UTC[/bold]   "
        f"events in [bold]{snap.fed:,}[/bold]   settled [bold]{snap.settled:,}[/bold]   "
        f"[green]{rate:,.0f} events/s[/green]   lag {snap.fed - snap.settled:,}"
    )
    ggr = Table("provider", "currency", "turnover", "GGR", title="GGR by provider", expand=True)
    for row in live_totals(snap.figures, [Dimension.PROVIDER]):
        key = dict(row.key)
        cur = key["currency"]
        ggr.add_row(
            key["provider"],
            cur,
            format_amount(row.totals.turnover, cur),
            format_amount(row.totals.ggr, cur),
        )
    by_operator: dict[tuple[str, str], int] = defaultdict(int)
    for fee in fees_accrued(snap.figures, run.world.contracts):
        key = dict(fee.key)
        by_operator[(key["operator"], key["currency"])] += fee.accrued
    commissions: dict[tuple[str, str], int] = defaultdict(int)
    for (operator, _agent, _period, currency), amount in snap.figures.commission_accrued.items():
        commissions[(operator, currency)] += amount
    accruals = Table(
        "operator",
        "currency",
        "provider fees accrued",
        "commissions accrued",
        title="Accruals by operator",
        expand=True,
    )
    for operator, currency in sorted(set(by_operator) | set(commissions)):
        accruals.add_row(
            operator,
            currency,
            format_amount(by_operator.get((operator, currency), 0), currency),
            format_amount(commissions.get((operator, currency), 0), currency),
        )
    return Group(Panel(header, title="Tally simulation"), ggr, accruals)


def write_statements(statements: list[Statement], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for s in statements:
        stem = f"{s.terms.contract_id}_{s.operator}_{s.period.label}"
        for suffix, body in ((".json", s.to_json()), (".csv", s.to_csv())):
            path = directory / f"{stem}{suffix}"
            path.write_bytes(body)
            written.append(path)
    return written


Via = Literal["gateway", "direct"]
SIMULATION_ACTOR = "system:simulation"


def run_simulation(
    tally: App,
    *,
    seed: int,
    seconds: float,
    rate: float,
    faults: bool,
    start: datetime,
    players: int,
    via: Via = "gateway",
) -> tuple[SimulationRun, list[Statement]]:
    """``via`` gateway: signed callbacks through the wallet gateway into the event log
    (``tally`` must run on a FixedClock at ``start``); direct: events straight to
    settlement."""
    world = build_world(seed, start, players=players)
    backoffice = build_backoffice(tally)
    closing: list[Callable[[], None]] = [backoffice.close]
    # About 36 simulated hours, whatever the rate: rounds yield ~1.6 events (~1.2 requests).
    per_round = 1.6 if via == "direct" else 1.2
    common: dict[str, Any] = {
        "faults": Faults.all_on() if faults else Faults(),
        "events_per_second": rate,
        "by": Auditing(backoffice.store, SIMULATION_ACTOR, "simulation"),
        "rounds_per_minute": max(1.0, rate * seconds / (36 * 60) / per_round),
    }
    if via == "direct":
        run = SimulationRun(
            world,
            tally.settlement_config,
            tally.settlement_store,
            source=MemoryEventSource(),
            **common,
        )
    else:
        run = _gateway_run(tally, backoffice, world, faults, common, closing)
    with console.status("generating the world's activity"):
        total = run.prepare()
    what = "events" if via == "direct" else "signed provider callbacks"
    console.print(
        f"world seed {seed}: {len(world.providers)} providers, "
        f"{len(world.operators)} operators, {len(world.players)} players; "
        f"{total:,} {what} to deliver at about {rate:,.0f}/s"
    )
    try:
        return _drive(run)
    finally:
        for close in closing:
            close()


def _gateway_run(
    tally: App,
    backoffice: Backoffice,
    world: World,
    faults: bool,
    common: dict[str, Any],
    closing: list[Callable[[], None]],
) -> GatewayRun:
    games = {g.id: g.game_type for p in world.providers for g in p.games}
    registry = Registry()
    for provider, protocol in protocol_of(world).items():
        registry.register(provider, protocol)
        backoffice.provider_secrets.set(
            provider, "auth_token", simulation_secret(provider), actor=SIMULATION_ACTOR
        )
    parts = backoffice_wallet_gateway(
        tally, backoffice, registry, game_type=lambda _provider, game: games.get(game, "other")
    )
    closing.insert(0, parts.close)
    # uvicorn and httpx load only for a run through the gateway.
    from tally.entrypoints.gateway.local import served

    return GatewayRun(
        world,
        tally.settlement_config,
        tally.settlement_store,
        gateway=parts.gateway,
        log=parts.log,
        wallets=parts.wallet,
        feeds=backoffice.ingest.feeds,
        importer=backoffice.ingest.importer,
        protocol_faults=ProtocolFaults.all_on() if faults else ProtocolFaults(),
        worker_restarts=faults,
        serve=served,
        **common,
    )


def _drive(run: SimulationRun) -> tuple[SimulationRun, list[Statement]]:
    stop = threading.Event()
    feeder = threading.Thread(target=run.feed, args=(stop.is_set,), daemon=True)
    feeder.start()
    try:
        with Live(_view(run), console=console, refresh_per_second=4) as live:
            while feeder.is_alive() or run.worker.position < run.fed:
                feeder.join(timeout=0.25)
                live.update(_view(run))
    except KeyboardInterrupt:
        stop.set()
        feeder.join()
        console.print("[yellow]stopped early[/yellow]")
    run.wait_settled()
    with console.status("closing the periods that ended"):
        statements = run.close_ended_periods()
    return run, statements


def simulate(
    seed: Annotated[int, typer.Option(help="the world and its activity follow from it")] = 7,
    seconds: Annotated[float, typer.Option(help="about how long to run")] = 60.0,
    rate: Annotated[
        float, typer.Option(help="callbacks (gateway) or events (direct) per second")
    ] = 600.0,
    faults: Annotated[bool, typer.Option(help="duplicates, reordering, late events")] = True,
    players: Annotated[int, typer.Option(help="players in the world")] = 2_000,
    start: Annotated[str, typer.Option(help="simulated start (ISO, with zone)")] = DEFAULT_START,
    via: Annotated[
        str, typer.Option(help="gateway: signed provider callbacks; direct: events to settlement")
    ] = "gateway",
) -> None:
    """Generate a world, drive Tally with its activity live, close the periods that ended."""
    configure_logging("WARNING")
    settings = Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    begin = datetime.fromisoformat(start).astimezone(UTC)
    with build_app(settings, FixedClock(begin)) as tally:
        _, statements = run_simulation(
            tally,
            seed=seed,
            seconds=seconds,
            rate=rate,
            faults=faults,
            start=begin,
            players=players,
            via="direct" if via == "direct" else "gateway",
        )
        paths = write_statements(statements, settings.data_dir / "statements")
    console.print(
        f"{len(statements)} statements closed; written under "
        f"{settings.data_dir / 'statements'} ({len(paths)} files)"
    )
