"""``tradecredit console``: the reviewers who may log in to the console."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from tradecredit.cli_support import config_of, fail
from tradecredit.config import PlatformConfig
from tradecredit.workspace import Workspace

if TYPE_CHECKING:
    from tradecredit.serving.console.auth import ConsoleAuth

app = typer.Typer(help="Risk reviewer console users (the console itself is served by `tradecredit serve` at /console).", no_args_is_help=True)
DEMO_USER = "demo"


@contextmanager
def opened_users(cfg: PlatformConfig, ws: Workspace) -> Iterator[ConsoleAuth]:
    """The workspace's console users; a refused change is an ``error:`` line, not a traceback."""
    from tradecredit.serving.console.auth import AuthError, ConsoleAuth, users_db

    auth = ConsoleAuth(users_db(ws.root), cfg.console)
    try:
        yield auth
    except AuthError as exc:
        raise fail(str(exc)) from None
    finally:
        auth.close()


def demo_login(cfg: PlatformConfig, ws: Workspace) -> tuple[str, str]:
    """A fresh password for the demo's reviewer, written to a file only its owner can read."""
    password = secrets.token_urlsafe(12)
    with opened_users(cfg, ws) as auth:
        auth.add_user(DEMO_USER, password, replace=True)
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
    from tradecredit.serving.console.auth import users_db

    ws: Workspace = ctx.obj.workspace
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with opened_users(config_of(ctx), ws) as auth:
        auth.add_user(user_name, password, replace=replace)
    typer.echo(f"User '{user_name}' can log in to the console (users in {users_db(ws.root)}).")


@app.command("disable-user")
def disable_user(ctx: typer.Context, user_name: str) -> None:
    """Stop a reviewer from logging in, and end their sessions (their past actions stay in the log)."""
    with opened_users(config_of(ctx), ctx.obj.workspace) as auth:
        auth.disable_user(user_name)
    typer.echo(f"User '{user_name}' is disabled.")


@app.command("users")
def list_users(ctx: typer.Context) -> None:
    """The console's users."""
    with opened_users(config_of(ctx), ctx.obj.workspace) as auth:
        for name, created, disabled in auth.users():
            state = "disabled" if disabled else "active"
            typer.echo(f"{name}\t{state}\tadded {created[:19]}")
