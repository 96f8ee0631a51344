"""``tradecredit console``: the reviewers who may log in to the console."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tradecredit.cli_support import config_of, stage
from tradecredit.serving.console.auth import ROLES
from tradecredit.serving.console.users import opened_keys, opened_users
from tradecredit.sql_stores import store_name, users_url
from tradecredit.workspace import Workspace

app = typer.Typer(help="Console users and their roles, and the API keys of sellers' applications (the console itself is served by `tradecredit serve` at /console).", no_args_is_help=True)


@app.command("add-user")
def add_user(
    ctx: typer.Context,
    user_name: Annotated[str, typer.Argument(help="Lower-case letters, digits, '.', '_' or '-'.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input (for scripts).")] = False,
    replace: Annotated[bool, typer.Option(help="Set a new password for an existing user (ends their sessions).")] = False,
    role: Annotated[list[str] | None, typer.Option("--role", help=f"A role: {', '.join(ROLES)} (repeat for several; default analyst).")] = None,
) -> None:
    """Add a reviewer who may log in (the password is stored as an Argon2id hash)."""
    ws: Workspace = ctx.obj.workspace
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with stage(), opened_users(config_of(ctx), ws) as auth:
        auth.add_user(user_name, password, replace=replace, roles=tuple(role) if role else None)
        roles = sorted(auth.roles(user_name))
    typer.echo(f"User '{user_name}' can log in to the console as {', '.join(roles)} (users in {store_name(users_url(config_of(ctx).backends, ws))}).")


@app.command("set-roles")
def set_roles(
    ctx: typer.Context,
    user_name: str,
    role: Annotated[list[str], typer.Option("--role", help=f"A role: {', '.join(ROLES)} (repeat for several).")],
) -> None:
    """Replace a user's roles (the requester of a limit never approves it, whatever their roles)."""
    with stage(), opened_users(config_of(ctx), ctx.obj.workspace) as auth:
        auth.set_roles(user_name, tuple(role))
    typer.echo(f"User '{user_name}' now has the roles {', '.join(sorted(set(role)))}.")


@app.command("add-key")
def add_key(
    ctx: typer.Context,
    seller_id: Annotated[str | None, typer.Argument(help="The seller whose application will use the key.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="An administrator key: may name any seller (give no seller).")] = False,
) -> None:
    """Create an API key for a seller's application (an ERP, an order system). The key is printed once; only its hash is kept."""
    with stage(), opened_keys(config_of(ctx), ctx.obj.workspace) as keys:
        key_id, secret = keys.add(seller_id, admin=admin)
    who = "administrator key (any seller)" if admin else f"key of seller {seller_id}"
    typer.echo(f"API {who}: id {key_id}\n{secret}\nSend it as 'Authorization: Bearer <key>'; it is not shown again.")


@app.command("revoke-key")
def revoke_key(ctx: typer.Context, key_id: str) -> None:
    """Revoke an API key (running services stop accepting it within serving.api_keys.cache_seconds)."""
    with stage(), opened_keys(config_of(ctx), ctx.obj.workspace) as keys:
        keys.revoke(key_id)
    typer.echo(f"Key {key_id} is revoked.")


@app.command("keys")
def list_keys(ctx: typer.Context) -> None:
    """The API keys: id, seller, created, revoked (never the key itself)."""
    with stage(), opened_keys(config_of(ctx), ctx.obj.workspace) as keys:
        for k in keys.rows():
            typer.echo(f"{k.key_id}\t{'admin' if k.admin else k.seller_id}\tadded {k.created_at[:19]}\t{'revoked ' + k.revoked_at[:19] if k.revoked_at else 'active'}")


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
        for name, created, disabled, roles in auth.users():
            state = "disabled" if disabled else "active"
            typer.echo(f"{name}\t{state}\t{','.join(sorted(roles)) or '-'}\tadded {created[:19]}")
