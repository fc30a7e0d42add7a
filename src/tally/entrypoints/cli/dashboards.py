"""``tally dashboards export``: the Grafana dashboard and Prometheus rules, as code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tally.app.dashboards import write
from tally.entrypoints.cli.common import console

dashboards_app = typer.Typer(help="Grafana dashboards and Prometheus alerting rules.")


@dashboards_app.command("export")
def export(
    out: Annotated[Path, typer.Option(help="folder to write them into")] = Path("deploy"),
) -> None:
    """Write the Grafana dashboard, its provisioning file and the Prometheus rules (all
    generated from tally.app.dashboards, the same catalogue the console draws from)."""
    for path in write(out):
        console.print(str(path))
