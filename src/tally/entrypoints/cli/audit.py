"""``tally audit ...``: verify the hash-chained audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tally.adapters.bundle_dir import read_bundle
from tally.app.bootstrap import build_backoffice
from tally.audit.chain import Anchor
from tally.entrypoints.cli.common import console, err_console, open_app
from tally.entrypoints.cli.tables import Table
from tally.exports.bundle import MANIFEST, PUBLIC_KEY, audit_anchor, check_bundle
from tally.security.signing import verify_signature

app = typer.Typer(help="The audit trail.", no_args_is_help=True)


def _bundle_anchor(path: Path) -> Anchor:
    """The audit head an export bundle's signed manifest publishes (the signature checked)."""
    try:
        files = read_bundle(path)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"{path}: not a readable bundle ({exc})") from None
    if PUBLIC_KEY not in files:
        raise typer.BadParameter(f"{path}: the bundle holds no {PUBLIC_KEY} to check it with")
    try:
        problems = check_bundle(files, files[PUBLIC_KEY], verify_signature)
    except ValueError as exc:
        raise typer.BadParameter(f"{path}: {exc}") from None
    if problems:
        raise typer.BadParameter(f"{path}: the bundle does not verify: {problems[0]}")
    try:
        anchor = audit_anchor(files[MANIFEST])
    except ValueError as exc:
        raise typer.BadParameter(f"{path}: {exc}") from None
    if anchor is None:
        raise typer.BadParameter(f"{path}: its manifest publishes no audit head")
    return anchor


@app.command()
def verify(
    anchor: Annotated[
        list[str] | None,
        typer.Option(
            help="a head published earlier, SEQ:HASH (from an export manifest's audit_head "
            "or the tally_audit_head_seq metric): the trail must still hold it"
        ),
    ] = None,
    anchor_bundle: Annotated[
        list[Path] | None,
        typer.Option(help="an export bundle (directory or zip) whose audit_head anchors the trail"),
    ] = None,
) -> None:
    """Check every record's hash and link; name any edited, deleted, inserted or moved one.

    Without an anchor, a trail rolled back to a saved copy of the file cannot be told
    from an intact one: give the last head you kept outside the database."""
    try:
        anchors = [Anchor.parse(a) for a in anchor or []]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--anchor") from None
    anchors += [_bundle_anchor(p) for p in anchor_bundle or []]
    tally = open_app()
    bo = build_backoffice(tally)
    try:
        checked, problems = bo.audit.verify(anchors)
    finally:
        bo.close()
        tally.close()
    if not problems:
        against = f", and against {len(anchors)} anchor(s)" if anchors else ""
        console.print(f"audit chain intact: {checked} records verified{against}")
        return
    table = Table("seq", "finding", "detail")
    for p in problems:
        table.add_row(str(p.seq), p.finding.value, p.detail)
    err_console.print(table)
    err_console.print(f"[red]audit chain broken: {len(problems)} problem(s) in {checked} records")
    raise typer.Exit(1)
