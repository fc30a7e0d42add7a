"""``tally demo``: a ledger in one SQLite file, a few thousand transfers, the balances."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from tally.app.bootstrap import build_app
from tally.app.logging import configure_logging
from tally.app.settings import Settings
from tally.entrypoints.cli.common import console
from tally.kernel.money import format_amount
from tally.ledger.model import Account, AccountFlags, OwnerKind, TransferRequest

CURRENCIES = ("EUR", "JPY", "BTC")
PLAYERS_PER_CURRENCY = 200
STAKES = {"EUR": (10, 5_000), "JPY": (100, 50_000), "BTC": (1_000, 500_000)}


def demo(
    transfers: Annotated[int, typer.Option(help="how many bets and wins to post")] = 5_000,
    seed: Annotated[int, typer.Option(help="random seed of the demo activity")] = 7,
    data_dir: Annotated[Path, typer.Option(help="where the SQLite file goes")] = Path("data"),
) -> None:
    """Create a ledger, post bets and wins with a progress bar, and print the balances."""
    configure_logging("WARNING")
    path = data_dir / "demo.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    settings = Settings(mode="embedded", data_dir=data_dir, sqlite_path=path)
    rng = random.Random(seed)
    with build_app(settings) as tally:
        accounts: list[Account] = []
        for cur in CURRENCIES:
            accounts.append(
                Account(f"platform:cash:{cur}", OwnerKind.PLATFORM, "platform", cur, "cash")
            )
            accounts.append(
                Account(f"operator:op1:house:{cur}", OwnerKind.OPERATOR, "op1", cur, "house")
            )
            accounts.extend(
                Account(
                    f"player:p{i}:{cur}",
                    OwnerKind.PLAYER,
                    f"p{i}",
                    cur,
                    "wallet",
                    AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
                )
                for i in range(PLAYERS_PER_CURRENCY)
            )
        tally.ledger.create_accounts(accounts)
        deposits = [
            TransferRequest(
                f"deposit:{cur}:{i}",
                f"platform:cash:{cur}",
                f"player:p{i}:{cur}",
                STAKES[cur][1] * 4,
                cur,
                "deposit",
            )
            for cur in CURRENCIES
            for i in range(PLAYERS_PER_CURRENCY)
        ]
        tally.ledger.transfer(deposits)
        refused = 0
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("posting bets and wins", total=transfers)
            chunk: list[TransferRequest] = []
            for n in range(transfers):
                cur = rng.choice(CURRENCIES)
                player = f"player:p{rng.randrange(PLAYERS_PER_CURRENCY)}:{cur}"
                house = f"operator:op1:house:{cur}"
                low, high = STAKES[cur]
                amount = rng.randint(low, high)
                if rng.random() < 0.55:
                    chunk.append(TransferRequest(f"bet:{n}", player, house, amount, cur, "bet"))
                else:
                    chunk.append(TransferRequest(f"win:{n}", house, player, amount, cur, "win"))
                if len(chunk) == 250 or n == transfers - 1:
                    results = tally.ledger.transfer(chunk)
                    refused += sum(1 for r in results if not r.code.ok)
                    progress.advance(task, len(chunk))
                    chunk = []
        table = Table(title="Balances by owner (net credit)")
        table.add_column("owner")
        for cur in CURRENCIES:
            table.add_column(cur, justify="right")
        for kind, owner in ((OwnerKind.PLATFORM, "platform"), (OwnerKind.OPERATOR, "op1")):
            nets = {
                a.currency: b.net_credit for a, b in tally.ledger.balances_by_owner(kind, owner)
            }
            table.add_row(
                f"{kind.value} {owner}", *(format_amount(nets.get(c, 0), c) for c in CURRENCIES)
            )
        for i in range(3):
            nets = {
                a.currency: b.net_credit
                for a, b in tally.ledger.balances_by_owner(OwnerKind.PLAYER, f"p{i}")
            }
            table.add_row(f"player p{i}", *(format_amount(nets.get(c, 0), c) for c in CURRENCIES))
        console.print(table)
        totals = tally.ledger_store.totals_by_currency()
        for cur, b in sorted(totals.items()):
            verdict = (
                "[green]nets to zero[/green]"
                if b.debits_posted == b.credits_posted
                else "[red]DOES NOT NET[/red]"
            )
            console.print(
                f"{cur}: debits {format_amount(b.debits_posted, cur)} = credits "
                f"{format_amount(b.credits_posted, cur)}  {verdict}"
            )
        console.print(
            f"{transfers} transfers submitted, {refused} refused (insufficient funds), "
            f"kept in {path}.\nLook further: TALLY_SQLITE_PATH={path} tally ledger rejections"
        )
