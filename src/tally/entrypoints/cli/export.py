"""``tally export ...``: signed regulator exports, and their offline verification."""

from __future__ import annotations

import zipfile
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from tally.adapters.bundle_dir import read_bundle, write_bundle
from tally.app.bootstrap import build_backoffice
from tally.auth.model import OwnerRef
from tally.entrypoints.cli.common import CLI_ACTOR, console, err_console, open_app
from tally.exports.bundle import PUBLIC_KEY, check_bundle
from tally.security.signing import verify_signature

app = typer.Typer(help="Regulator exports.", no_args_is_help=True)


def _instant(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise typer.BadParameter(f"{text!r} needs a time zone, e.g. 2026-01-01T00:00:00Z")
    return when


@app.command()
def period(
    start: Annotated[str, typer.Option(help="ISO 8601 instant, inclusive")],
    end: Annotated[str, typer.Option(help="ISO 8601 instant, exclusive")],
    out: Annotated[Path, typer.Option(help="the bundle directory to create")],
    owner: Annotated[
        str | None, typer.Option(help="only transfers touching this owner, e.g. operator:op1")
    ] = None,
) -> None:
    """Export transfers, accounts and audit records of a period as a signed bundle."""
    try:
        owner_ref = OwnerRef.parse(owner) if owner else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    tally = open_app()
    bo = build_backoffice(tally)
    try:
        files = bo.exports.export(
            _instant(start), _instant(end), owner=owner_ref, actor=CLI_ACTOR, source="cli"
        )
    except ValueError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        bo.close()
        tally.close()
    write_bundle(out, files)
    console.print(f"export written to {out} ({len(files)} files, manifest signed)")


@app.command("verify")
def verify_bundle(
    bundle: Path,
    public_key: Annotated[
        Path | None, typer.Option(help="the exporter's Ed25519 public key (PEM)")
    ] = None,
) -> None:
    """Check a bundle offline: the manifest's signature and every file's SHA-256.

    Exit 0: verified; 1: the bundle fails (each problem named); 2: it cannot be checked
    (unreadable, or no public key to check it with)."""
    try:
        files = read_bundle(bundle)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        err_console.print(f"[red]cannot read the bundle {bundle}: {exc}[/red]")
        raise typer.Exit(2) from None
    if public_key is None:
        if PUBLIC_KEY not in files:
            err_console.print(
                f"[red]the bundle holds no {PUBLIC_KEY}: give the exporter's public key "
                "with --public-key[/red]"
            )
            raise typer.Exit(2)
        err_console.print(
            "[yellow]no --public-key given: checking against the key inside the bundle, "
            "which proves integrity but not who made it[/yellow]"
        )
        pem = files[PUBLIC_KEY]
    else:
        try:
            pem = public_key.read_bytes()
        except OSError as exc:
            err_console.print(f"[red]cannot read the public key {public_key}: {exc}[/red]")
            raise typer.Exit(2) from None
    try:
        problems = check_bundle(files, pem, verify_signature)
    except ValueError as exc:  # the key is not a PEM public key
        err_console.print(f"[red]cannot check the bundle with that public key: {exc}[/red]")
        raise typer.Exit(2) from None
    if problems:
        for p in problems:
            err_console.print(f"[red]{p}[/red]")
        raise typer.Exit(1)
    console.print(f"bundle verified: signature valid, {len(files) - 3} files match the manifest")
