"""``tally users ...``: create staff users (the first admin, too) from the command line."""

from __future__ import annotations

from typing import Annotated

import typer

from tally.app.bootstrap import build_backoffice
from tally.auth.model import OwnerRef
from tally.auth.policy import Role
from tally.auth.service import AuthError
from tally.entrypoints.cli.common import console, err_console, open_app

app = typer.Typer(help="Staff users and their roles.", no_args_is_help=True)
CLI_ACTOR = "system:cli"


@app.command()
def create(
    username: str,
    role: Annotated[list[Role], typer.Option("--role", help="repeat for several roles")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="for partners: an owner it may see, e.g. partner:p1"),
    ] = None,
) -> None:
    """Create a user. Admin and finance users enrol TOTP at their first login."""
    tally = open_app()
    bo = build_backoffice(tally)
    try:
        owners = frozenset(OwnerRef.parse(s) for s in scope or [])
        user = bo.auth.create_user(
            CLI_ACTOR, username, password, frozenset(role), scope=owners, source="cli"
        )
    except (AuthError, ValueError) as exc:
        err_console.print(f"[red]{getattr(exc, 'message', exc)}[/red]")
        raise typer.Exit(1) from None
    finally:
        bo.close()
        tally.close()
    console.print(f"created user {user.username} ({user.id}) with roles {sorted(user.roles)}")
