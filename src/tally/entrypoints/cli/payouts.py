"""``tally payouts``: counterparties, runs (maker-checker), and the payout worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from tally.app.bootstrap import Backoffice, build_backoffice
from tally.audit.service import Auditing
from tally.entrypoints.cli.common import CLI_ACTOR, console, err_console, open_app
from tally.entrypoints.cli.tables import Table
from tally.kernel.money import format_amount
from tally.payouts.model import Counterparty, CounterpartyKind, PayoutRefused, Run, RunScope
from tally.payouts.service import PayoutService, PayoutWorker

payouts_app = typer.Typer(
    no_args_is_help=True,
    help="Pay what closed periods left owed: counterparties, runs, approvals, the worker.",
)

As = Annotated[
    str | None,
    typer.Option("--as", help="the finance user acting (by username); else system:cli"),
]


@contextmanager
def _service(user: str | None) -> Iterator[tuple[PayoutService, Auditing, Backoffice]]:
    with open_app() as tally:
        backoffice = build_backoffice(tally)
        try:
            actor = CLI_ACTOR
            if user is not None:
                found = backoffice.store.get_user_by_name(user)
                if found is None:
                    err_console.print(f"[red]no user {user!r}[/red]")
                    raise typer.Exit(2)
                actor = f"user:{found.id}"
            yield backoffice.payouts, Auditing(backoffice.store, actor, "cli"), backoffice
        finally:
            backoffice.close()


def _refused(exc: PayoutRefused) -> typer.Exit:
    err_console.print(f"[red]refused ({exc.code.slug}), nothing moved: {exc.message}[/red]")
    return typer.Exit(2)


def _show(run: Run) -> None:
    console.print(
        f"run {run.id} ({run.scope}) by {run.maker}: {run.status.value}"
        + (f", approved by {run.approver}" if run.approver else "")
    )
    table = Table("counterparty", "currency", "owed", "owing", "net", "paid by", "carried")
    for ln in run.lines:
        c = ln.currency
        table.add_row(
            ln.counterparty, c, format_amount(ln.owed, c), format_amount(ln.owing, c),
            format_amount(ln.net, c), ln.payout_id or "-", format_amount(ln.carried, c),
        )  # fmt: skip
    console.print(table)


@payouts_app.command("counterparty")
def counterparty(
    kind: Annotated[CounterpartyKind, typer.Argument(help="provider or partner")],
    party: Annotated[str, typer.Argument(help="the provider's or agent's id")],
    name: Annotated[str, typer.Option(help="the beneficiary's name")],
    rail: Annotated[str, typer.Option(help="the rail that pays it (internal, ...)")],
    account: Annotated[str, typer.Option(help="IBAN, PSP payee id or Tally account")],
    bic: Annotated[str, typer.Option(help="the bank's BIC")] = "",
    blocked: Annotated[bool, typer.Option(help="refuse every run that would pay it")] = False,
    user: As = None,
) -> None:
    """Register (or change, or block) a counterparty's payment details."""
    cp = Counterparty(Counterparty.key(kind, party), kind, party, name, rail, account, bic, blocked)
    with _service(user) as (service, by, _):
        try:
            service.register_counterparty(cp, by)
        except PayoutRefused as exc:
            raise _refused(exc) from None
    console.print(f"counterparty {cp.id}: {rail} {account}" + (" (blocked)" if blocked else ""))


@payouts_app.command("build")
def build(
    scope: Annotated[str, typer.Option(help="all, provider or partner")] = "all",
    party: Annotated[str, typer.Option(help="the provider, or the agent whose subtree")] = "",
    currency: Annotated[str, typer.Option(help="only this currency")] = "",
    user: As = None,
) -> None:
    """Build a run from closed periods' unpaid payables (netted; below minimum carried)."""
    with _service(user) as (service, by, _):
        try:
            run = service.build_run(RunScope(scope, party, currency), by)
        except PayoutRefused as exc:
            raise _refused(exc) from None
    _show(run)


@payouts_app.command("approve")
def approve(
    run_id: Annotated[str, typer.Argument()],
    totp: Annotated[str, typer.Option("--totp", help="a fresh TOTP code of the approver")],
    user: Annotated[str, typer.Option("--as", help="the approving finance user")],
) -> None:
    """Approve a run over the policy's amount: another user than its maker, a fresh code."""
    with _service(user) as (service, by, _):
        try:
            run = service.approve(run_id, totp, by)
        except PayoutRefused as exc:
            raise _refused(exc) from None
    console.print(f"run {run.id} approved by {run.approver}")


@payouts_app.command("list")
def list_runs(limit: Annotated[int, typer.Option(min=1, max=1_000)] = 20) -> None:
    """The latest runs, newest first."""
    with _service(None) as (service, _, _bo):
        runs = service.runs(limit)
    table = Table("run", "scope", "status", "maker", "approver", "totals")
    for r in runs:
        totals = ", ".join(f"{format_amount(v, c)} {c}" for c, v in sorted(r.totals.items()))
        table.add_row(r.id, r.scope, r.status.value, r.maker, r.approver or "-", totals)
    console.print(table)


@payouts_app.command("show")
def show(run_id: Annotated[str, typer.Argument()]) -> None:
    """A run's lines and its payouts' states."""
    with _service(None) as (service, _, _bo):
        run = service.run(run_id)
        if run is None:
            err_console.print(f"[red]no run {run_id}[/red]")
            raise typer.Exit(1)
        payouts = service.payouts_of_run(run_id)
    _show(run)
    table = Table("payout", "counterparty", "amount", "rail", "state", "reference", "reason")
    for p in payouts:
        table.add_row(
            p.id, p.counterparty, f"{format_amount(p.amount, p.currency)} {p.currency}",
            p.rail, p.state.value, p.rail_reference or "-", p.reason or "-",
        )  # fmt: skip
    console.print(table)


@payouts_app.command("positions")
def positions() -> None:
    """Per counterparty and currency: owed, paid, in flight, carried forward."""
    with _service(None) as (service, _, _bo):
        found = service.positions()
    table = Table("counterparty", "currency", "owed", "paid", "in flight", "carried forward")
    for p in found:
        c = p.currency
        table.add_row(
            p.counterparty, c, format_amount(p.owed, c), format_amount(p.paid, c),
            format_amount(p.in_flight, c), format_amount(p.carried_forward, c),
        )  # fmt: skip
    console.print(table)


@payouts_app.command("work")
def work(
    follow: Annotated[bool, typer.Option(help="keep running (else stop when none is due)")] = False,
) -> None:
    """Run the payout worker: reserve, submit, ask, post or void each due payout."""
    with _service(None) as (service, _, _bo):
        worker = PayoutWorker(service)
        if not follow:
            moved = worker.drain()
            console.print(f"{moved} payout steps taken; none is due now")
            return
        worker.start()
        console.print("payout worker running; ^C stops it")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            worker.stop()
