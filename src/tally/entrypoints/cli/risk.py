"""``tally risk``: the risk watch over the event log, its forecasts and game figures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer

from tally.app.bootstrap import RiskParts, build_risk_watch
from tally.app.logging import configure_logging
from tally.app.settings import Settings
from tally.entrypoints.cli.common import console, err_console
from tally.entrypoints.cli.tables import Table
from tally.kernel.clock import SystemClock
from tally.risk.detectors.rtp import ConfigRefused, GameRtp

risk_app = typer.Typer(
    no_args_is_help=True,
    help="Risk watch: detectors over the event log, forecasts, certified game figures.",
)
games_app = typer.Typer(no_args_is_help=True, help="Certified RTP and volatility per game.")
risk_app.add_typer(games_app, name="games")


@contextmanager
def _parts() -> Iterator[RiskParts]:
    settings = Settings.from_env()
    configure_logging(settings.log_level, json=settings.log_json)
    parts = build_risk_watch(settings, SystemClock())
    try:
        yield parts
    finally:
        parts.close()


@risk_app.command("watch")
def watch(
    follow: Annotated[
        bool, typer.Option(help="keep watching (until interrupted) instead of draining once")
    ] = False,
) -> None:
    """Run the risk watch: read the event log from its committed position, feed the
    detectors, hand their signals to the alerts."""
    with _parts() as parts:
        if follow:
            console.print("watching the event log (Ctrl-C to stop)")
            try:
                parts.watch.run()
            except KeyboardInterrupt:
                parts.watch.stop()
            return
        read = parts.watch.drain()
        console.print(f"watched {read:,} events; position {parts.watch.position:,}")


@risk_app.command("forecast")
def forecast(
    refit: Annotated[bool, typer.Option(help="refit from the watch's series first")] = True,
    metric: Annotated[str, typer.Option(help="turnover, ggr, players or bets")] = "",
    region: Annotated[str, typer.Option()] = "",
    provider: Annotated[str, typer.Option()] = "",
    hours: Annotated[int, typer.Option(min=1, max=168, help="24 (a day) up to 168")] = 24,
) -> None:
    """Refit the forecasts (turnover, GGR, active players per region and provider) and
    show the next hours with their 80% and 95% intervals."""
    with _parts() as parts:
        if refit:
            count = parts.forecasts.refit()
            console.print(f"refit: {count:,} hourly points stored")
        fitted_at, points = parts.store.latest(metric=metric, region=region, provider=provider)
        if fitted_at is None:
            err_console.print("[yellow]no forecast yet: the watch needs two days of series[/]")
            raise typer.Exit(1)
        table = Table(
            "series",
            "hour (UTC)",
            "mean",
            "80%",
            "95%",
            title=f"fitted {fitted_at:%Y-%m-%d %H:%M}Z",
        )
        by_series: dict[str, int] = {}
        for p in points:
            by_series[p.series] = by_series.get(p.series, 0) + 1
            if by_series[p.series] > hours:
                continue
            table.add_row(
                p.series,
                f"{p.hour:%Y-%m-%d %H:%M}",
                f"{p.mean:,.0f}",
                f"{p.lo80:,.0f} - {p.hi80:,.0f}",
                f"{p.lo95:,.0f} - {p.hi95:,.0f}",
            )
        console.print(table)


@games_app.command("set")
def games_set(
    game: Annotated[str, typer.Argument()],
    rtp: Annotated[str, typer.Option(help="certified RTP in (0, 1], e.g. 0.96")],
    volatility: Annotated[str, typer.Option(help="sd of one bet's return per unit stake")],
    max_win: Annotated[
        int, typer.Option(help="largest certified win, times the bet (0: none)")
    ] = 0,
) -> None:
    """Save a game's certified figures; bad ones are refused now, not when they fire."""
    try:
        figures = GameRtp(game, Decimal(rtp), Decimal(volatility), max_win)
    except (ConfigRefused, InvalidOperation) as e:
        err_console.print(f"[red]refused: {e or 'not a decimal number'}[/red]")
        raise typer.Exit(2) from None
    with _parts() as parts:
        parts.store.save(figures)
    console.print(f"saved {game}: RTP {figures.certified_rtp}, volatility {figures.volatility}")


@games_app.command("list")
def games_list() -> None:
    with _parts() as parts:
        table = Table("game", "certified RTP", "volatility", "max win x")
        for g in parts.store.all():
            table.add_row(
                g.game, str(g.certified_rtp), str(g.volatility), str(g.max_win_multiplier)
            )
        console.print(table)
