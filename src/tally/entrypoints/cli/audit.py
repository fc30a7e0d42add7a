"""``tally audit ...``: verify the hash-chained audit trail."""

from __future__ import annotations

import typer

from tally.app.bootstrap import build_backoffice
from tally.entrypoints.cli.common import console, err_console, open_app
from tally.entrypoints.cli.tables import Table

app = typer.Typer(help="The audit trail.", no_args_is_help=True)


@app.command()
def verify() -> None:
    """Check every record's hash and link; name any edited, deleted, inserted or moved one."""
    tally = open_app()
    bo = build_backoffice(tally)
    try:
        checked, problems = bo.audit.verify()
    finally:
        bo.close()
        tally.close()
    if not problems:
        console.print(f"audit chain intact: {checked} records verified")
        return
    table = Table("seq", "finding", "detail")
    for p in problems:
        table.add_row(str(p.seq), p.finding.value, p.detail)
    err_console.print(table)
    err_console.print(f"[red]audit chain broken: {len(problems)} problem(s) in {checked} records")
    raise typer.Exit(1)
