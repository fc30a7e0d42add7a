"""``tally bench ...``: benchmark scripts (figures, never timed tests)."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Benchmarks: print figures, save JSON and a PNG chart under bench/results/.",
    no_args_is_help=True,
)
