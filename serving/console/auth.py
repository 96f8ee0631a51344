"""Named-user logins for the console: Argon2id password hashes, expiring sessions, a CSRF token
per session and a lockout after repeated failures.

SQLite in the workspace (``WORKSPACE/console/users.db``): the service's worker processes share
it, so a login made through one worker is valid in the other. Only hashes are stored: the
password's (Argon2id, argon2-cffi's defaults) and the session token's (SHA-256; the token itself
is 256 random bits, so a fast hash is enough and a stolen database opens no session).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tradecredit.serving.config import ConsoleConfig

USER_NAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    user_name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,      -- Argon2id, with its own salt and parameters
    created_at TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sessions (
    token_sha256 TEXT PRIMARY KEY,    -- the cookie's token is never stored
    user_name TEXT NOT NULL REFERENCES users (user_name),
    csrf_token TEXT NOT NULL,         -- every write must carry it: a page of another site cannot
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS failed_logins (
    user_name TEXT NOT NULL,
    failed_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS failed_logins_by_user ON failed_logins (user_name, failed_at);
-- Separated duties: who may ask for credit, analyse, approve, or administer.
CREATE TABLE IF NOT EXISTS user_roles (
    user_name TEXT NOT NULL REFERENCES users (user_name),
    role TEXT NOT NULL,
    PRIMARY KEY (user_name, role)
);
"""
ROLES = ("requester", "analyst", "approver", "administrator")
DEFAULT_ROLES = ("analyst",)


class AuthError(ValueError):
    """A user cannot be added or changed as asked (the message says why)."""


@dataclass(frozen=True)
class Session:
    user_name: str
    csrf_token: str
    expires_at: datetime
    roles: frozenset[str] = frozenset()


def _check_roles(roles: tuple[str, ...] | list[str]) -> None:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise AuthError(f"unknown role(s) {', '.join(unknown)}: roles are {', '.join(ROLES)}")
    if not roles:
        raise AuthError("give at least one role")


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ConsoleAuth:
    """Users and sessions. ``now`` is the wall clock (sessions expire in real time, whatever
    date the service replays); tests pass their own."""

    def __init__(self, path: Path, cfg: ConsoleConfig, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.cfg = cfg
        self.now = now
        self._hasher = PasswordHasher()
        self._con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.executescript(_SCHEMA)
        # A store from before roles: its users keep working as analysts (every user has a role).
        self._con.execute(
            "INSERT OR IGNORE INTO user_roles SELECT user_name, ? FROM users WHERE user_name NOT IN (SELECT user_name FROM user_roles)",
            (DEFAULT_ROLES[0],),
        )

    def close(self) -> None:
        self._con.close()

    # ------------------------------------------------------------------ users

    def add_user(self, user_name: str, password: str, replace: bool = False, roles: tuple[str, ...] | None = None) -> None:
        if not USER_NAME.match(user_name):
            raise AuthError(f"'{user_name}' is not a user name: 2-32 characters, lower-case letters, digits, '.', '_' or '-', starting with a letter")
        if len(password) < self.cfg.min_password_length:
            raise AuthError(f"the password is shorter than {self.cfg.min_password_length} characters")
        if roles is not None:
            _check_roles(roles)
        exists = self._con.execute("SELECT 1 FROM users WHERE user_name = ?", (user_name,)).fetchone()
        if exists and not replace:
            raise AuthError(f"user '{user_name}' exists: pass --replace to set a new password")
        stamp = self.now().isoformat()
        self._con.execute(
            "INSERT INTO users (user_name, password_hash, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (user_name) DO UPDATE SET password_hash = excluded.password_hash, disabled = 0",
            (user_name, self._hasher.hash(password), stamp),
        )
        # A new password ends the user's open sessions.
        self._con.execute("DELETE FROM sessions WHERE user_name = ?", (user_name,))
        if roles is not None or not exists:
            self.set_roles(user_name, roles or DEFAULT_ROLES)

    def set_roles(self, user_name: str, roles: tuple[str, ...] | list[str]) -> None:
        _check_roles(roles)
        if not self._con.execute("SELECT 1 FROM users WHERE user_name = ?", (user_name,)).fetchone():
            raise AuthError(f"no user '{user_name}'")
        self._con.execute("BEGIN IMMEDIATE")
        self._con.execute("DELETE FROM user_roles WHERE user_name = ?", (user_name,))
        self._con.executemany("INSERT INTO user_roles VALUES (?, ?)", [(user_name, r) for r in sorted(set(roles))])
        self._con.execute("COMMIT")

    def roles(self, user_name: str) -> frozenset[str]:
        return frozenset(r for (r,) in self._con.execute("SELECT role FROM user_roles WHERE user_name = ?", (user_name,)))

    def disable_user(self, user_name: str) -> None:
        changed = self._con.execute("UPDATE users SET disabled = 1 WHERE user_name = ?", (user_name,)).rowcount
        if not changed:
            raise AuthError(f"no user '{user_name}'")
        self._con.execute("DELETE FROM sessions WHERE user_name = ?", (user_name,))

    def users(self) -> list[tuple[str, str, bool, frozenset[str]]]:
        rows = self._con.execute("SELECT user_name, created_at, disabled FROM users ORDER BY user_name").fetchall()
        return [(name, created, bool(disabled), self.roles(name)) for name, created, disabled in rows]

    def password_hash(self, user_name: str) -> str | None:
        row = self._con.execute("SELECT password_hash FROM users WHERE user_name = ?", (user_name,)).fetchone()
        return None if row is None else str(row[0])

    # ------------------------------------------------------------------ logins

    def locked(self, user_name: str) -> bool:
        since = (self.now() - timedelta(minutes=self.cfg.lockout_minutes)).isoformat()
        failures = self._con.execute(
            "SELECT count(*) FROM failed_logins WHERE user_name = ? AND failed_at > ?", (user_name, since)
        ).fetchone()[0]
        return int(failures) >= self.cfg.max_failed_logins

    def login(self, user_name: str, password: str) -> tuple[str, Session] | None:
        """A new session (the cookie's token and the session), or None: wrong name or password,
        a disabled user, or a name locked after repeated failures. The caller is not told which."""
        if self.locked(user_name):
            return None
        row = self._con.execute("SELECT password_hash, disabled FROM users WHERE user_name = ?", (user_name,)).fetchone()
        ok = False
        if row is not None and not row[1]:
            try:
                ok = self._hasher.verify(row[0], password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                ok = False
        else:
            # Spend the same time on an unknown name as on a wrong password: timing tells nothing.
            self._hasher.hash(password)
        if not ok:
            self._con.execute("INSERT INTO failed_logins VALUES (?, ?)", (user_name, self.now().isoformat()))
            return None
        if self._hasher.check_needs_rehash(row[0]):
            self._con.execute("UPDATE users SET password_hash = ? WHERE user_name = ?", (self._hasher.hash(password), user_name))
        self._con.execute("DELETE FROM failed_logins WHERE user_name = ?", (user_name,))
        token, now = secrets.token_urlsafe(32), self.now()
        session = Session(user_name, secrets.token_urlsafe(32), now + timedelta(hours=self.cfg.session_hours), self.roles(user_name))
        self._con.execute(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
            (_sha256(token), user_name, session.csrf_token, now.isoformat(), session.expires_at.isoformat()),
        )
        return token, session

    def session(self, token: str | None) -> Session | None:
        """The live session of a cookie's token; None when there is none, it expired, or its
        user was disabled."""
        if not token:
            return None
        row = self._con.execute(
            "SELECT s.user_name, s.csrf_token, s.expires_at FROM sessions s JOIN users u USING (user_name) "
            "WHERE s.token_sha256 = ? AND u.disabled = 0",
            (_sha256(token),),
        ).fetchone()
        if row is None:
            return None
        expires = datetime.fromisoformat(row[2])
        if expires <= self.now():
            self._con.execute("DELETE FROM sessions WHERE token_sha256 = ?", (_sha256(token),))
            return None
        return Session(row[0], row[1], expires, self.roles(row[0]))

    def logout(self, token: str | None) -> None:
        if token:
            self._con.execute("DELETE FROM sessions WHERE token_sha256 = ?", (_sha256(token),))

    def check_csrf(self, session: Session, presented: str | None) -> bool:
        return presented is not None and secrets.compare_digest(session.csrf_token, presented)
