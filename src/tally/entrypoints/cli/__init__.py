"""The ``tally`` command line (Typer + Rich). Each command group lives in its own module."""

from __future__ import annotations

import typer

from tally.entrypoints.cli import bench, demo, ledger, settlement

app = typer.Typer(
    name="tally",
    help="Tally: real-time settlement back-office.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(ledger.app, name="ledger")
app.add_typer(bench.app, name="bench")
app.add_typer(settlement.contracts_app, name="contracts")
app.add_typer(settlement.fx_app, name="fx")
app.add_typer(settlement.partners_app, name="partners")
app.add_typer(settlement.settlement_app, name="settlement")
app.command("demo")(demo.demo)


def main() -> None:
    app()
