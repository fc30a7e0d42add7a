"""``tally demo``: Tally embedded, a simulated minute of activity, statements, balances."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from tally.app.bootstrap import App, build_app
from tally.app.logging import configure_logging
from tally.app.settings import Settings
from tally.entrypoints.cli.common import console
from tally.entrypoints.cli.simulate import DEFAULT_START, run_simulation, write_statements
from tally.entrypoints.cli.tables import Table
from tally.kernel.clock import FixedClock
from tally.kernel.money import format_amount
from tally.ledger.model import TransferRequest
from tally.simulation.world import World
from tally.wallet.model import deposits_account, wallet_account


def demo(
    seconds: Annotated[float, typer.Option(help="about how long the simulation runs")] = 60.0,
    rate: Annotated[float, typer.Option(help="signed provider callbacks per second")] = 600.0,
    seed: Annotated[int, typer.Option(help="the world and its activity follow from it")] = 7,
    data_dir: Annotated[Path, typer.Option(help="where the SQLite file goes")] = Path("data"),
    serve: Annotated[
        bool, typer.Option(help="leave the console and the API running at the end")
    ] = True,
    port: Annotated[int, typer.Option(help="the API's port")] = 8000,
) -> None:
    """Run Tally embedded on a simulated world for about a minute, then close and report."""
    configure_logging("WARNING")
    path = data_dir / "demo.sqlite"
    data_dir.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    settings = Settings(mode="embedded", data_dir=data_dir, sqlite_path=path)
    console.rule("Tally demo: embedded, one SQLite file")
    begin = datetime.fromisoformat(DEFAULT_START)
    with build_app(settings, FixedClock(begin)) as tally:
        run, statements = run_simulation(
            tally,
            seed=seed,
            seconds=seconds,
            rate=rate,
            faults=True,
            start=begin,
            players=2_000,
        )
        written = write_statements(statements, data_dir / "statements")
        totals = Table(
            "currency",
            "debits posted",
            "credits posted",
            "nets to zero",
            title="The ledger: every currency nets to zero",
        )
        for currency, b in sorted(tally.ledger_store.totals_by_currency().items()):
            nets = b.debits_posted == b.credits_posted and b.debits_pending == b.credits_pending
            totals.add_row(
                currency,
                format_amount(b.debits_posted, currency),
                format_amount(b.credits_posted, currency),
                "[green]yes[/green]" if nets else "[red]NO[/red]",
            )
        console.print(totals)
        problems = tally.settlement_store.problems()
        wallet, refusal = _show_a_refusal(tally, run.world)
    refused = getattr(run, "refused", 0)
    console.print(
        f"{run.fed:,} signed provider callbacks delivered (with duplicates, reordering, "
        f"rollbacks before their bets, malformed and forged ones); {refused:,} refused and "
        f"kept in the input quarantine (`tally quarantine list`); {len(problems)} events "
        f"refused by settlement; {len(statements)} periods closed."
    )
    console.print(f"Statements (JSON and CSV, {len(written)} files): {data_dir / 'statements'}")
    console.print(refusal)
    console.print(
        "Look further (players' wallets are named player:<player>:wallet:<currency>, "
        f"players pl000001 to pl{len(run.world.players):06d}):"
    )
    for command in LOOK_FURTHER:
        # soft_wrap: a command cut in two at the terminal's edge cannot be pasted.
        console.print(
            f"  TALLY_SQLITE_PATH={path} .venv/bin/tally {command.format(wallet=wallet)}",
            soft_wrap=True,
        )
    if serve:
        _serve(settings, port)


# What the demo suggests next ({wallet}: the demo's sample wallet); the README's own
# examples read the same data (tests/integration/test_cli_readme.py runs both lists).
LOOK_FURTHER = (
    "settlement figures --by provider,game_type",
    "settlement statements",
    "ledger totals",
    "ledger balance {wallet}",
    "ledger transfers {wallet} --limit 10",
    "ledger rejections",
    "contracts list",
    "partners tree op1",
    "quarantine list",
    "events tail",
    "audit verify",
)


def _show_a_refusal(tally: App, world: World) -> tuple[str, str]:
    """Ask for one withdrawal beyond a wallet's balance, so that the demo shows the ledger
    refusing a request and keeping it with its reason (every wallet is funded far beyond
    its bets, so the simulation itself is never refused). Returns the wallet and a line
    saying what happened."""
    player = next((p for p in world.players if p.currency == "EUR"), world.players[0])
    wallet = wallet_account(player.id, player.currency)
    balance = tally.ledger.balance(wallet)
    available = balance.net_credit if balance is not None else 0
    [result] = tally.ledger.transfer(
        [
            TransferRequest(
                f"demo:overdraft:{wallet}",
                wallet,
                deposits_account(player.operator, player.currency),
                available + 1,
                player.currency,
                "withdrawal",
            )
        ]
    )
    asked = format_amount(available + 1, player.currency)
    return wallet, (
        f"A withdrawal of {asked} {player.currency} from {wallet}, one more than its "
        f"balance: {result.code.slug} (kept with its reason: `tally ledger rejections`)."
    )


def _serve(settings: Settings, port: int) -> None:
    """Leave the back-office console and API running on the demo's file, with a read-only
    user."""
    import os
    import secrets

    from tally.app.bootstrap import build_backoffice
    from tally.auth.policy import Role
    from tally.entrypoints.cli.serve import serve

    password = secrets.token_urlsafe(12)
    tally = build_app(settings)
    backoffice = build_backoffice(tally)
    try:
        backoffice.auth.create_user(
            "system:demo", "demo-auditor", password, frozenset({Role.AUDITOR}), source="demo"
        )
    finally:
        backoffice.close()
        tally.close()
    os.environ["TALLY_DATA_DIR"] = str(settings.data_dir)
    os.environ["TALLY_SQLITE_PATH"] = str(settings.sqlite_path)
    console.rule("The back-office console and API")
    console.print(
        f"Console: http://127.0.0.1:{port}/console/ (log in as below)\n"
        f"API: http://127.0.0.1:{port}/docs (OpenAPI); health: http://127.0.0.1:{port}/health\n"
        f"Log in (read-only, everything): user demo-auditor, password {password}\n"
        f"  curl -s -X POST http://127.0.0.1:{port}/v1/auth/login -H 'content-type: "
        f'application/json\' -d \'{{"username": "demo-auditor", "password": '
        f'"{password}"}}\'\n'
        "Stop it with Ctrl-C."
    )
    serve(host="127.0.0.1", port=port, tls_cert=None, tls_key=None)
