"""Named-user logins for the console: Argon2id password hashes, expiring sessions, a CSRF token
per session and a lockout after repeated failures.

SQLite in the workspace (``WORKSPACE/console/users.db``), or the PostgreSQL database
``backends.users_url`` names (the production profile): the service's worker processes share it,
so a login made through one worker is valid in the other. Only hashes are stored: the
password's (Argon2id, argon2-cffi's defaults) and the session token's (SHA-256; the token itself
is 256 random bits, so a fast hash is enough and a stolen database opens no session).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tradecredit.serving.config import ConsoleConfig
from tradecredit.sql_stores import sql_engine

USER_NAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")

metadata = sa.MetaData()
users_table = sa.Table(
    "users", metadata,
    sa.Column("user_name", sa.String(32), primary_key=True),
    sa.Column("password_hash", sa.Text, nullable=False),  # Argon2id, with its own salt and parameters
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("disabled", sa.Integer, nullable=False, server_default="0"),
)
sessions_table = sa.Table(
    "sessions", metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),  # the cookie's token is never stored
    sa.Column("user_name", sa.String(32), sa.ForeignKey("users.user_name"), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),  # every write must carry it: a page of another site cannot
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("expires_at", sa.String(40), nullable=False),
)
failed_logins_table = sa.Table(
    "failed_logins", metadata,
    sa.Column("user_name", sa.String(64), nullable=False),
    sa.Column("failed_at", sa.String(40), nullable=False),
    sa.Index("failed_logins_by_user", "user_name", "failed_at"),
)
# Separated duties: who may ask for credit, analyse, approve, or administer.
user_roles_table = sa.Table(
    "user_roles", metadata,
    sa.Column("user_name", sa.String(32), sa.ForeignKey("users.user_name"), primary_key=True),
    sa.Column("role", sa.String(16), primary_key=True),
)
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

    def __init__(self, url: str, cfg: ConsoleConfig, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.cfg = cfg
        self.now = now
        self._hasher = PasswordHasher()
        # Deferred transactions: a login only reads, and each change starts with its write.
        self._engine = sql_engine(url, writer=False)
        with self._engine.begin() as con:
            metadata.create_all(con)
            # A store from before roles: its users keep working as analysts (every user has a role).
            con.execute(
                sa.text("INSERT INTO user_roles SELECT user_name, :role FROM users WHERE user_name NOT IN (SELECT user_name FROM user_roles)"),
                {"role": DEFAULT_ROLES[0]},
            )

    def close(self) -> None:
        self._engine.dispose()

    def _run(self, sql: str, **params: object) -> None:
        with self._engine.begin() as con:
            con.execute(sa.text(sql), params)

    def _rows(self, sql: str, **params: object) -> list[sa.Row]:
        with self._engine.connect() as con:
            return list(con.execute(sa.text(sql), params))

    # ------------------------------------------------------------------ users

    def add_user(self, user_name: str, password: str, replace: bool = False, roles: tuple[str, ...] | None = None) -> None:
        if not USER_NAME.match(user_name):
            raise AuthError(f"'{user_name}' is not a user name: 2-32 characters, lower-case letters, digits, '.', '_' or '-', starting with a letter")
        if len(password) < self.cfg.min_password_length:
            raise AuthError(f"the password is shorter than {self.cfg.min_password_length} characters")
        if roles is not None:
            _check_roles(roles)
        exists = bool(self._rows("SELECT 1 FROM users WHERE user_name = :u", u=user_name))
        if exists and not replace:
            raise AuthError(f"user '{user_name}' exists: pass --replace to set a new password")
        with self._engine.begin() as con:
            con.execute(
                sa.text(
                    "INSERT INTO users (user_name, password_hash, created_at, disabled) VALUES (:u, :h, :t, 0) "
                    "ON CONFLICT (user_name) DO UPDATE SET password_hash = excluded.password_hash, disabled = 0"
                ),
                {"u": user_name, "h": self._hasher.hash(password), "t": self.now().isoformat()},
            )
            # A new password ends the user's open sessions.
            con.execute(sa.text("DELETE FROM sessions WHERE user_name = :u"), {"u": user_name})
        if roles is not None or not exists:
            self.set_roles(user_name, roles or DEFAULT_ROLES)

    def set_roles(self, user_name: str, roles: tuple[str, ...] | list[str]) -> None:
        _check_roles(roles)
        if not self._rows("SELECT 1 FROM users WHERE user_name = :u", u=user_name):
            raise AuthError(f"no user '{user_name}'")
        with self._engine.begin() as con:
            con.execute(sa.text("DELETE FROM user_roles WHERE user_name = :u"), {"u": user_name})
            con.execute(user_roles_table.insert(), [{"user_name": user_name, "role": r} for r in sorted(set(roles))])

    def roles(self, user_name: str) -> frozenset[str]:
        return frozenset(r for (r,) in self._rows("SELECT role FROM user_roles WHERE user_name = :u", u=user_name))

    def disable_user(self, user_name: str) -> None:
        with self._engine.begin() as con:
            changed = con.execute(sa.text("UPDATE users SET disabled = 1 WHERE user_name = :u"), {"u": user_name}).rowcount
            con.execute(sa.text("DELETE FROM sessions WHERE user_name = :u"), {"u": user_name})
        if not changed:
            raise AuthError(f"no user '{user_name}'")

    def users(self) -> list[tuple[str, str, bool, frozenset[str]]]:
        rows = self._rows("SELECT user_name, created_at, disabled FROM users ORDER BY user_name")
        return [(name, created, bool(disabled), self.roles(name)) for name, created, disabled in rows]

    def password_hash(self, user_name: str) -> str | None:
        rows = self._rows("SELECT password_hash FROM users WHERE user_name = :u", u=user_name)
        return None if not rows else str(rows[0][0])

    # ------------------------------------------------------------------ logins

    def locked(self, user_name: str) -> bool:
        since = (self.now() - timedelta(minutes=self.cfg.lockout_minutes)).isoformat()
        failures = self._rows("SELECT count(*) FROM failed_logins WHERE user_name = :u AND failed_at > :t", u=user_name, t=since)[0][0]
        return int(failures) >= self.cfg.max_failed_logins

    def login(self, user_name: str, password: str) -> tuple[str, Session] | None:
        """A new session (the cookie's token and the session), or None: wrong name or password,
        a disabled user, or a name locked after repeated failures. The caller is not told which."""
        if self.locked(user_name):
            return None
        rows = self._rows("SELECT password_hash, disabled FROM users WHERE user_name = :u", u=user_name)
        row = rows[0] if rows else None
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
            self._run("INSERT INTO failed_logins (user_name, failed_at) VALUES (:u, :t)", u=user_name, t=self.now().isoformat())
            return None
        assert row is not None
        token, now = secrets.token_urlsafe(32), self.now()
        session = Session(user_name, secrets.token_urlsafe(32), now + timedelta(hours=self.cfg.session_hours), self.roles(user_name))
        with self._engine.begin() as con:
            if self._hasher.check_needs_rehash(row[0]):
                con.execute(sa.text("UPDATE users SET password_hash = :h WHERE user_name = :u"), {"h": self._hasher.hash(password), "u": user_name})
            con.execute(sa.text("DELETE FROM failed_logins WHERE user_name = :u"), {"u": user_name})
            con.execute(
                sessions_table.insert(),
                {"token_sha256": _sha256(token), "user_name": user_name, "csrf_token": session.csrf_token,
                 "created_at": now.isoformat(), "expires_at": session.expires_at.isoformat()},
            )
        return token, session

    def session(self, token: str | None) -> Session | None:
        """The live session of a cookie's token; None when there is none, it expired, or its
        user was disabled."""
        if not token:
            return None
        rows = self._rows(
            "SELECT s.user_name, s.csrf_token, s.expires_at FROM sessions s JOIN users u ON u.user_name = s.user_name "
            "WHERE s.token_sha256 = :t AND u.disabled = 0",
            t=_sha256(token),
        )
        if not rows:
            return None
        user_name, csrf_token, expires_at = rows[0]
        expires = datetime.fromisoformat(expires_at)
        if expires <= self.now():
            self._run("DELETE FROM sessions WHERE token_sha256 = :t", t=_sha256(token))
            return None
        return Session(user_name, csrf_token, expires, self.roles(user_name))

    def logout(self, token: str | None) -> None:
        if token:
            self._run("DELETE FROM sessions WHERE token_sha256 = :t", t=_sha256(token))

    def check_csrf(self, session: Session, presented: str | None) -> bool:
        return presented is not None and secrets.compare_digest(session.csrf_token, presented)
