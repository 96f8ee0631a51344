"""``tradecredit console``: the reviewers who may log in to the console."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tradecredit.cli_support import config_of, stage
from tradecredit.serving.console.users import opened_users
from tradecredit.workspace import Workspace

app = typer.Typer(help="Risk reviewer console users (the console itself is served by `tradecredit serve` at /console).", no_args_is_help=True)


@app.command("add-user")
def add_user(
    ctx: typer.Context,
    user_name: Annotated[str, typer.Argument(help="Lower-case letters, digits, '.', '_' or '-'.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input (for scripts).")] = False,
    replace: Annotated[bool, typer.Option(help="Set a new password for an existing user (ends their sessions).")] = False,
) -> None:
    """Add a reviewer who may log in (the password is stored as an Argon2id hash)."""
    ws: Workspace = ctx.obj.workspace
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with stage(), opened_users(config_of(ctx), ws) as auth:
        auth.add_user(user_name, password, replace=replace)
    typer.echo(f"User '{user_name}' can log in to the console (users in {ws.users_db}).")


@app.command("disable-user")
def disable_user(ctx: typer.Context, user_name: str) -> None:
    """Stop a reviewer from logging in, and end their sessions (their past actions stay in the log)."""
    with stage(), opened_users(config_of(ctx), ctx.obj.workspace) as auth:
        auth.disable_user(user_name)
    typer.echo(f"User '{user_name}' is disabled.")


@app.command("users")
def list_users(ctx: typer.Context) -> None:
    """The console's users."""
    with stage(), opened_users(config_of(ctx), ctx.obj.workspace) as auth:
        for name, created, disabled in auth.users():
            state = "disabled" if disabled else "active"
            typer.echo(f"{name}\t{state}\tadded {created[:19]}")
