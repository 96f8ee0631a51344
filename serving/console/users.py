"""The console's reviewers: the users store of a workspace, and the demo's reviewer."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from tradecredit.config import PlatformConfig
from tradecredit.errors import StageError
from tradecredit.serving.access import ApiKeyError, ApiKeys
from tradecredit.serving.console.auth import ROLES, AuthError, ConsoleAuth
from tradecredit.sql_stores import users_url
from tradecredit.workspace import Workspace

DEMO_USER = "demo"


@contextmanager
def opened_users(cfg: PlatformConfig, ws: Workspace) -> Iterator[ConsoleAuth]:
    """The workspace's console users; a refused change is a :class:`StageError`, not a traceback."""
    auth = ConsoleAuth(users_url(cfg.backends, ws), cfg.console)
    try:
        yield auth
    except AuthError as exc:
        raise StageError(str(exc)) from None
    finally:
        auth.close()


@contextmanager
def opened_keys(cfg: PlatformConfig, ws: Workspace) -> Iterator[ApiKeys]:
    """The workspace's API keys; a refused change is a :class:`StageError`."""
    keys = ApiKeys(users_url(cfg.backends, ws))
    try:
        yield keys
    except ApiKeyError as exc:
        raise StageError(str(exc)) from None
    finally:
        keys.close()


def ensure_user(cfg: PlatformConfig, ws: Workspace, user_name: str, roles: tuple[str, ...]) -> str:
    """A user with these roles and a fresh password (the demo's and the tests' reviewers)."""
    password = secrets.token_urlsafe(12)
    with opened_users(cfg, ws) as auth:
        auth.add_user(user_name, password, replace=True, roles=roles)
    return password


def demo_login(cfg: PlatformConfig, ws: Workspace) -> tuple[str, str]:
    """A fresh password for the demo's reviewer (every role), written to a file only its owner can read."""
    password = ensure_user(cfg, ws, DEMO_USER, ROLES)
    ws.demo_login.write_text(f"user: {DEMO_USER}\npassword: {password}\n", encoding="utf-8")
    ws.demo_login.chmod(0o600)
    return DEMO_USER, password
