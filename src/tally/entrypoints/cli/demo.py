"""``tally demo``: Tally embedded, a simulated minute of activity, statements, balances."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from tally.app.bootstrap import build_app
from tally.app.logging import configure_logging
from tally.app.settings import Settings
from tally.entrypoints.cli.common import console
from tally.entrypoints.cli.simulate import DEFAULT_START, run_simulation, write_statements
from tally.entrypoints.cli.tables import Table
from tally.kernel.clock import FixedClock
from tally.kernel.money import format_amount


def demo(
    seconds: Annotated[float, typer.Option(help="about how long the simulation runs")] = 60.0,
    rate: Annotated[float, typer.Option(help="signed provider callbacks per second")] = 600.0,
    seed: Annotated[int, typer.Option(help="the world and its activity follow from it")] = 7,
    data_dir: Annotated[Path, typer.Option(help="where the SQLite file goes")] = Path("data"),
    serve: Annotated[bool, typer.Option(help="leave the API running at the end")] = True,
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
    refused = getattr(run, "refused", 0)
    console.print(
        f"{run.fed:,} signed provider callbacks delivered (with duplicates, reordering, "
        f"rollbacks before their bets, malformed and forged ones); {refused:,} refused and "
        f"kept in the input quarantine (`tally quarantine list`); {len(problems)} events "
        f"refused by settlement; {len(statements)} periods closed."
    )
    console.print(f"Statements (JSON and CSV, {len(written)} files): {data_dir / 'statements'}")
    console.print("Look further:")
    for command in (
        "settlement figures --by provider,game_type",
        "settlement statements",
        "ledger totals",
        "contracts list",
        "partners tree op1",
        "quarantine list",
        "events tail",
    ):
        console.print(f"  TALLY_SQLITE_PATH={path} .venv/bin/tally {command}")
    if serve:
        _serve(settings, port)


def _serve(settings: Settings, port: int) -> None:
    """Leave the back-office API running on the demo's file, with a read-only user."""
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
    console.rule("The back-office API")
    console.print(
        f"API: http://127.0.0.1:{port}/docs (OpenAPI); health: http://127.0.0.1:{port}/health\n"
        f"Log in (read-only, everything): user demo-auditor, password {password}\n"
        f"  curl -s -X POST http://127.0.0.1:{port}/v1/auth/login -H 'content-type: "
        f'application/json\' -d \'{{"username": "demo-auditor", "password": '
        f'"{password}"}}\'\n'
        "Stop it with Ctrl-C."
    )
    serve(host="127.0.0.1", port=port, tls_cert=None, tls_key=None)
