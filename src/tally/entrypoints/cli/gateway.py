"""``tally gateway`` and ``tally wallet``: the provider-facing gateway and players' wallets."""

from __future__ import annotations

from typing import Annotated

import typer

from tally.app.bootstrap import (
    App,
    Backoffice,
    WalletGateway,
    backoffice_wallet_gateway,
    build_backoffice,
)
from tally.app.keys import load_keys
from tally.app.runtime import PROMPT_GC_THRESHOLDS, hand_off_promptly, settle_heap
from tally.audit.service import Auditing
from tally.entrypoints.cli.common import CLI_ACTOR, console, err_console, open_app
from tally.entrypoints.cli.tables import Table
from tally.kernel.money import MoneyError, format_amount, parse_amount
from tally.providers.registry import PROTOCOLS, Registry
from tally.wallet.model import Wallet

gateway_app = typer.Typer(no_args_is_help=True, help="The provider gateway (wallet callbacks).")
wallet_app = typer.Typer(no_args_is_help=True, help="Players' wallets (wallet mode).")


def open_gateway(
    tally: App, backoffice: Backoffice, providers: list[str] | None = None
) -> WalletGateway:
    """The wallet gateway of ``tally``; ``providers`` as ``id=protocol`` (default: each
    protocol as a provider of its own name)."""
    registry = Registry()
    for spec in providers or [f"{p}={p}" for p in PROTOCOLS]:
        provider, _, protocol = spec.partition("=")
        try:
            registry.register(provider, protocol or provider)
        except KeyError as exc:
            raise typer.BadParameter(str(exc)) from None
    return backoffice_wallet_gateway(tally, backoffice, registry)


@gateway_app.command("serve")
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8100,
    provider: Annotated[
        list[str] | None,
        typer.Option(help="id=protocol, repeatable (default: one provider per protocol)"),
    ] = None,
    fronts: Annotated[
        int,
        typer.Option(
            min=0,
            max=64,
            help="HTTP front processes (ADR 0017); 0: HTTP in this process. On 2 cores, "
            "2 fronts halved the median latency at 3,000 callbacks/s and took the "
            "most served from 3,200/s to 3,600/s.",
        ),
    ] = 0,
    metrics_port: Annotated[
        int,
        typer.Option(
            min=0,
            max=65535,
            help="serve Prometheus metrics (callbacks by provider and status, their "
            "latency, ledger commits) on 127.0.0.1:PORT; 0: none",
        ),
    ] = 0,
) -> None:
    """Serve /providers/{provider}/{action} until stopped (Ctrl-C)."""
    import uvicorn

    from tally.app.metrics import Metrics, serve_metrics
    from tally.entrypoints.gateway.app import create_gateway_api
    from tally.entrypoints.gateway.fronts import serve_with_fronts
    from tally.entrypoints.serving import uvicorn_config

    metrics = Metrics() if metrics_port else None
    on_commit = metrics.observe_commit if metrics else None
    with open_app(gateway=True, on_commit=on_commit) as tally:
        backoffice = build_backoffice(tally)
        parts = open_gateway(tally, backoffice, provider)
        api = create_gateway_api(parts.gateway, tally.clock, metrics)
        stop_metrics = None
        settle_heap(PROMPT_GC_THRESHOLDS)
        hand_off_promptly()
        try:
            if metrics:
                try:
                    stop_metrics = serve_metrics(metrics, metrics_port)
                except OSError as exc:
                    raise typer.BadParameter(f"metrics port {metrics_port}: {exc}") from None
            console.print(
                f"gateway on http://{host}:{port}/providers/<provider>/<action> for "
                f"{', '.join(parts.gateway.registry.providers())}"
                + (f", {fronts} HTTP front processes" if fronts else "")
                + (f"; metrics on http://127.0.0.1:{metrics_port}/metrics" if metrics else "")
                + "; Ctrl-C stops it"
            )
            if fronts:
                serve_with_fronts(api, host, port, fronts)
                return
            config = uvicorn_config(
                api,
                tally.settings.trusted_proxies,
                host=host,
                port=port,
                log_level="warning",
                access_log=False,
            )
            uvicorn.Server(config).run()
        finally:
            if stop_metrics is not None:
                stop_metrics()
            parts.close()
            backoffice.close()


@gateway_app.command("secret")
def secret(
    provider: str,
    name: str,
    value: Annotated[
        str, typer.Option(prompt=True, hide_input=True, help="read from a prompt if not given")
    ],
) -> None:
    """Set a provider credential (sealed at rest, audited, never printed)."""
    with open_app() as tally:
        backoffice = build_backoffice(tally)
        try:
            backoffice.provider_secrets.set(provider, name, value, actor=CLI_ACTOR, source="cli")
        finally:
            backoffice.close()
    console.print(f"set {provider}/{name}")


@gateway_app.command("protocols")
def protocols() -> None:
    """The provider protocols Tally speaks."""
    table = Table("protocol", "follows", "secrets")
    for name in PROTOCOLS:
        registry = Registry()
        adapter = registry.register(name, name)
        table.add_row(name, adapter.protocol, ", ".join(adapter.secret_names))
    console.print(table)


@wallet_app.command("open")
def open_wallet(
    player: str,
    operator: Annotated[str, typer.Option()],
    currency: Annotated[str, typer.Option()],
    region: Annotated[str, typer.Option()] = "",
    agent: Annotated[str, typer.Option(help="the partner-tree store the player belongs to")] = "",
) -> None:
    """Open a player's wallet (idempotent)."""
    with open_app() as tally:
        backoffice = build_backoffice(tally)
        parts = open_gateway(tally, backoffice)
        try:
            wallet = parts.wallet.open(
                Wallet(player, operator, currency.upper(), region, agent),
                by=Auditing(backoffice.store, CLI_ACTOR, "cli"),
            )
        except ValueError as exc:
            err_console.print(f"[red]refused:[/red] {exc}")
            raise typer.Exit(1) from None
        finally:
            parts.close()
            backoffice.close()
        console.print(f"opened {wallet.account_id}")


@wallet_app.command("deposit")
def deposit(
    player: str,
    amount: str,
    currency: Annotated[str, typer.Option()],
    reference: Annotated[str, typer.Option(help="the cashier's id for it (idempotency key)")],
) -> None:
    """Money into a wallet from the operator's side; a repeated reference counts once."""
    with open_app() as tally:
        backoffice = build_backoffice(tally)
        parts = open_gateway(tally, backoffice)
        try:
            wallet = parts.wallet.find(player, currency.upper())
            if wallet is None:
                err_console.print(f"[red]no {currency} wallet for {player}[/red]")
                raise typer.Exit(1)
            try:
                minor = parse_amount(amount, wallet.currency)
            except (MoneyError, ValueError) as exc:
                err_console.print(f"[red]refused:[/red] {exc}")
                raise typer.Exit(1) from None
            result = parts.wallet.deposit(
                wallet, minor, reference, by=Auditing(backoffice.store, CLI_ACTOR, "cli")
            )
            balance = parts.wallet.balance(wallet)
        finally:
            parts.close()
            backoffice.close()
        if not result.code.ok:
            err_console.print(f"[red]refused:[/red] {result.code.slug}")
            raise typer.Exit(1)
        shown = format_amount(balance, wallet.currency)
        console.print(f"{result.code.slug}; balance {shown} {wallet.currency}")


@wallet_app.command("session")
def session(
    player: str, provider: Annotated[str, typer.Option()], currency: Annotated[str, typer.Option()]
) -> None:
    """A session token for a game launch (protocols that carry one)."""
    from tally.providers.sessions import SessionTokens

    with open_app() as tally:
        tokens = SessionTokens(load_keys(tally.settings).secret)
        console.print(tokens.issue(provider, player, currency.upper(), tally.clock.now()))
