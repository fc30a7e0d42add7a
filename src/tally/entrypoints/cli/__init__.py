"""The ``tally`` command line (Typer + Rich). Each command group lives in its own module."""

from __future__ import annotations

import typer

from tally.entrypoints.cli import (
    alerts,
    audit,
    dashboards,
    demo,
    events,
    export,
    gateway,
    ingest,
    ledger,
    lifecycle,
    payouts,
    reconcile,
    risk,
    serve,
    settlement,
    simulate,
    users,
)

app = typer.Typer(
    name="tally",
    help="Tally: real-time settlement back-office.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(ledger.app, name="ledger")
app.add_typer(settlement.contracts_app, name="contracts")
app.add_typer(settlement.fx_app, name="fx")
app.add_typer(settlement.partners_app, name="partners")
app.add_typer(settlement.settlement_app, name="settlement")
app.command("demo")(demo.demo)
app.command("simulate")(simulate.simulate)
app.add_typer(users.app, name="users")
app.add_typer(audit.app, name="audit")
app.add_typer(export.app, name="export")
app.command("serve")(serve.serve)
app.add_typer(gateway.gateway_app, name="gateway")
app.add_typer(gateway.wallet_app, name="wallet")
app.add_typer(events.events_app, name="events")
app.add_typer(events.quarantine_app, name="quarantine")
app.add_typer(ingest.import_app, name="import")
app.add_typer(ingest.feeds_app, name="feeds")
app.add_typer(reconcile.reconcile_app, name="reconcile")
app.add_typer(payouts.payouts_app, name="payouts")
app.add_typer(alerts.alerts_app, name="alerts")
app.add_typer(dashboards.dashboards_app, name="dashboards")
app.add_typer(risk.risk_app, name="risk")
app.add_typer(lifecycle.archive_app, name="archive")
app.add_typer(lifecycle.backup_app, name="backup")
app.add_typer(lifecycle.retention_app, name="retention")
app.command("maintain")(lifecycle.maintain)


def main() -> None:
    app()
