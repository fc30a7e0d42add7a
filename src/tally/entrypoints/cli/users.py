"""``tally users ...``: create staff users (the first admin, too) from the command line."""

from __future__ import annotations

from typing import Annotated

import typer

from tally.app.bootstrap import build_backoffice
from tally.auth.model import OwnerRef
from tally.auth.policy import Role
from tally.auth.service import AuthError
from tally.entrypoints.cli.common import CLI_ACTOR, console, err_console, open_app

app = typer.Typer(help="Staff users and their roles.", no_args_is_help=True)


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


def _by_name(username: str, action: str) -> None:
    tally = open_app()
    bo = build_backoffice(tally)
    try:
        user = bo.store.get_user_by_name(username)
        if user is None:
            err_console.print(f"[red]no user {username!r}[/red]")
            raise typer.Exit(1)
        if action == "reset-mfa":
            bo.auth.reset_mfa(CLI_ACTOR, user.id, source="cli")
        else:
            bo.auth.unlock_user(CLI_ACTOR, user.id, source="cli")
    finally:
        bo.close()
        tally.close()
    console.print(f"{action}: done for {username}")


@app.command("reset-mfa")
def reset_mfa(username: str) -> None:
    """Forget a user's TOTP secret (a lost phone); they enrol again at next login. Audited."""
    _by_name(username, "reset-mfa")


@app.command()
def unlock(username: str) -> None:
    """Lift every login wait of a username (throttling after failed logins). Audited."""
    _by_name(username, "unlock")


@app.command("list")
def list_users() -> None:
    """Every user with roles, MFA and lock state."""
    from tally.entrypoints.cli.tables import Table

    tally = open_app()
    bo = build_backoffice(tally)
    table = Table("username", "id", "roles", "scope", "mfa", "disabled", "locked until")
    try:
        cursor: str | None = None
        while True:
            page = bo.auth.list_users(cursor=cursor, limit=500)
            for u in page.items:
                table.add_row(
                    u.username,
                    u.id,
                    ",".join(sorted(u.roles)),
                    ",".join(sorted(str(o) for o in u.scope)),
                    "yes" if u.mfa_enabled else "no",
                    "yes" if u.disabled else "no",
                    u.locked_until.isoformat() if u.locked_until else "",
                )
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    finally:
        bo.close()
        tally.close()
    console.print(table)
