"""``tradecredit console``: the reviewers who may log in to the console."""

from __future__ import annotations

import secrets
import sys
from typing import Annotated

import typer

from tradecredit.cli_support import config_of, fail
from tradecredit.config import PlatformConfig
from tradecredit.workspace import Workspace

app = typer.Typer(help="Risk reviewer console users (the console itself is served by `tradecredit serve` at /console).", no_args_is_help=True)
DEMO_USER = "demo"


def demo_login(cfg: PlatformConfig, ws: Workspace) -> tuple[str, str]:
    """A fresh password for the demo's reviewer, written to a file only its owner can read."""
    from tradecredit.serving.console.auth import ConsoleAuth, users_db

    password = secrets.token_urlsafe(12)
    auth = ConsoleAuth(users_db(ws.root), cfg.console)
    try:
        auth.add_user(DEMO_USER, password, replace=True)
    finally:
        auth.close()
    secret = ws.root / "console" / "demo-login.txt"
    secret.write_text(f"user: {DEMO_USER}\npassword: {password}\n", encoding="utf-8")
    secret.chmod(0o600)
    return DEMO_USER, password


@app.command("add-user")
def add_user(
    ctx: typer.Context,
    user_name: Annotated[str, typer.Argument(help="Lower-case letters, digits, '.', '_' or '-'.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input (for scripts).")] = False,
    replace: Annotated[bool, typer.Option(help="Set a new password for an existing user (ends their sessions).")] = False,
) -> None:
    """Add a reviewer who may log in (the password is stored as an Argon2id hash)."""
    from tradecredit.serving.console.auth import AuthError, ConsoleAuth, users_db

    cfg = config_of(ctx)
    ws: Workspace = ctx.obj.workspace
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    auth = ConsoleAuth(users_db(ws.root), cfg.console)
    try:
        auth.add_user(user_name, password, replace=replace)
    except AuthError as exc:
        raise fail(str(exc)) from None
    finally:
        auth.close()
    typer.echo(f"User '{user_name}' can log in to the console (users in {users_db(ws.root)}).")


@app.command("disable-user")
def disable_user(ctx: typer.Context, user_name: str) -> None:
    """Stop a reviewer from logging in, and end their sessions (their past actions stay in the log)."""
    from tradecredit.serving.console.auth import AuthError, ConsoleAuth, users_db

    ws: Workspace = ctx.obj.workspace
    auth = ConsoleAuth(users_db(ws.root), config_of(ctx).console)
    try:
        auth.disable_user(user_name)
    except AuthError as exc:
        raise fail(str(exc)) from None
    finally:
        auth.close()
    typer.echo(f"User '{user_name}' is disabled.")


@app.command("users")
def list_users(ctx: typer.Context) -> None:
    """The console's users."""
    from tradecredit.serving.console.auth import ConsoleAuth, users_db

    ws: Workspace = ctx.obj.workspace
    auth = ConsoleAuth(users_db(ws.root), config_of(ctx).console)
    try:
        for name, created, disabled in auth.users():
            state = "disabled" if disabled else "active"
            typer.echo(f"{name}\t{state}\tadded {created[:19]}")
    finally:
        auth.close()
