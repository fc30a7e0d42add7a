"""``tally ledger ...``: look at accounts, balances, transfers and rejections."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from tally.entrypoints.cli.common import console, err_console, open_app
from tally.entrypoints.cli.tables import Table
from tally.kernel.money import format_amount
from tally.ledger.model import Balance, OwnerKind

app = typer.Typer(help="Accounts, balances, transfers and rejections.", no_args_is_help=True)


def _parse_instant(text: str | None) -> datetime | None:
    if text is None:
        return None
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise typer.BadParameter("give a time zone, e.g. 2026-11-25T10:00:00+00:00")
    return when


def _balance_row(currency: str, b: Balance) -> list[str]:
    return [
        format_amount(b.debits_posted, currency),
        format_amount(b.credits_posted, currency),
        format_amount(b.debits_pending, currency),
        format_amount(b.credits_pending, currency),
        format_amount(b.net_credit, currency),
    ]


_BALANCE_HEADERS = ["debits posted", "credits posted", "debits pending", "credits pending", "net"]


@app.command()
def balance(
    account_id: str,
    at: Annotated[str | None, typer.Option(help="ISO 8601 instant with time zone")] = None,
) -> None:
    """An account's balance now, or as it stood at an instant."""
    with open_app() as tally:
        account = tally.ledger.account(account_id)
        found = tally.ledger.balance(account_id, _parse_instant(at))
        if account is None or found is None:
            err_console.print(f"[red]account {account_id!r} not found[/red]")
            raise typer.Exit(1)
        table = Table("account", "currency", *_BALANCE_HEADERS)
        table.add_row(account_id, account.currency, *_balance_row(account.currency, found))
        console.print(table)


@app.command()
def transfers(
    account_id: str,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    cursor: Annotated[str | None, typer.Option(help="continue after this cursor")] = None,
) -> None:
    """An account's transfers, oldest first, one page at a time."""
    with open_app() as tally:
        page = tally.ledger.account_transfers(account_id, cursor=cursor, limit=limit)
        table = Table("id", "kind", "debit", "credit", "amount", "code", "recorded at")
        for t in page.items:
            table.add_row(
                t.id,
                t.kind.value,
                t.debit_account_id,
                t.credit_account_id,
                f"{format_amount(t.amount, t.currency)} {t.currency}",
                t.code,
                t.recorded_at.isoformat(),
            )
        console.print(table)
        if page.next_cursor:
            console.print(f"more: --cursor {page.next_cursor}")


@app.command()
def owner(
    kind: OwnerKind,
    owner_id: str,
    currency: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Balances of every account an owner holds."""
    with open_app() as tally:
        table = Table("account", "purpose", "currency", *_BALANCE_HEADERS)
        for account, b in tally.ledger.balances_by_owner(kind, owner_id, currency):
            table.add_row(
                account.id, account.purpose, account.currency, *_balance_row(account.currency, b)
            )
        console.print(table)


@app.command()
def totals() -> None:
    """Per currency, all debits and all credits: they must be equal."""
    with open_app() as tally:
        table = Table("currency", *_BALANCE_HEADERS[:4], "nets to zero")
        for currency, b in sorted(tally.ledger_store.totals_by_currency().items()):
            nets = b.debits_posted == b.credits_posted and b.debits_pending == b.credits_pending
            table.add_row(
                currency, *_balance_row(currency, b)[:4], "yes" if nets else "[red]NO[/red]"
            )
        console.print(table)


@app.command()
def rejections(
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    cursor: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Refused transfer requests, kept with their reason."""
    with open_app() as tally:
        page = tally.ledger.rejections(cursor=cursor, limit=limit)
        table = Table("transfer id", "reason", "rejected at", "request")
        for r in page.items:
            table.add_row(r.transfer_id, r.code.slug, r.rejected_at.isoformat(), repr(r.request))
        console.print(table)
        if page.next_cursor:
            console.print(f"more: --cursor {page.next_cursor}")
