"""Console logins: hashed passwords, expiring sessions, CSRF tokens bound to a session, lockout."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tradecredit.serving.console.auth import AuthError, ConsoleAuth
from tradecredit.sql_stores import sqlite_url


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def users_url(tmp_path) -> str:
    """The users store: a SQLite file here; tests/integration/serving/test_stores_on_postgres.py
    runs the store's tests on PostgreSQL too."""
    return sqlite_url(tmp_path / "users.db")


@pytest.fixture
def auth(users_url, config, clock) -> ConsoleAuth:
    store = ConsoleAuth(users_url, config.console, clock)
    store.add_user("alice", "correct horse battery")
    store.add_user("bob", "another long secret")
    yield store
    store.close()


def test_passwords_are_stored_as_argon2id_hashes_only(auth, tmp_path):
    stored = auth.password_hash("alice")
    assert stored.startswith("$argon2id$")
    raw = (tmp_path / "users.db").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("users.db-*"))
    assert b"correct horse battery" not in raw


def test_login_with_the_right_password_only(auth):
    assert auth.login("alice", "correct horse battery") is not None
    assert auth.login("alice", "correct horse batterY") is None
    assert auth.login("nobody", "correct horse battery") is None
    assert auth.login("bob", "correct horse battery") is None, "alice's password is not bob's"


def test_session_tokens_are_stored_hashed_and_resolve_to_their_user(auth, users_url):
    token, session = auth.login("bob", "another long secret")
    assert auth.session(token).user_name == "bob"
    engine = sa.create_engine(users_url)
    with engine.connect() as con:
        stored = [r[0] for r in con.execute(sa.text("SELECT token_sha256 FROM sessions"))]
    engine.dispose()
    assert token not in stored and len(stored) == 1
    assert auth.session(token + "x") is None and auth.session(None) is None and auth.session("") is None


def test_sessions_expire(auth, clock, config):
    token, _ = auth.login("alice", "correct horse battery")
    clock.now += timedelta(hours=config.console.session_hours) - timedelta(seconds=1)
    assert auth.session(token) is not None
    clock.now += timedelta(seconds=2)
    assert auth.session(token) is None
    clock.now -= timedelta(hours=1)
    assert auth.session(token) is None, "an expired session is deleted, not merely hidden"


def test_logout_ends_the_session(auth):
    token, _ = auth.login("alice", "correct horse battery")
    auth.logout(token)
    assert auth.session(token) is None


def test_csrf_token_belongs_to_one_session(auth):
    token_a, session_a = auth.login("alice", "correct horse battery")
    _, session_b = auth.login("bob", "another long secret")
    assert auth.check_csrf(session_a, session_a.csrf_token)
    assert not auth.check_csrf(session_a, session_b.csrf_token)
    assert not auth.check_csrf(session_a, None)


def test_repeated_failures_lock_the_name_for_a_while(auth, clock, config):
    for _ in range(config.console.max_failed_logins):
        assert auth.login("alice", "wrong password!") is None
    assert auth.locked("alice")
    assert auth.login("alice", "correct horse battery") is None, "locked even with the right password"
    assert auth.login("bob", "another long secret") is not None, "only the attacked name is locked"
    clock.now += timedelta(minutes=config.console.lockout_minutes, seconds=1)
    assert auth.login("alice", "correct horse battery") is not None


def test_disabling_a_user_ends_their_sessions_and_logins(auth):
    token, _ = auth.login("alice", "correct horse battery")
    auth.disable_user("alice")
    assert auth.session(token) is None
    assert auth.login("alice", "correct horse battery") is None
    with pytest.raises(AuthError, match="no user"):
        auth.disable_user("carol")


def test_a_new_password_ends_open_sessions(auth):
    token, _ = auth.login("alice", "correct horse battery")
    auth.add_user("alice", "a brand new secret", replace=True)
    assert auth.session(token) is None
    assert auth.login("alice", "a brand new secret") is not None


@pytest.mark.parametrize(
    ("name", "password", "message"),
    [("Alice", "long enough pw", "not a user name"), ("a", "long enough pw", "not a user name"), ("carol", "short", "shorter than"),
     ("alice", "long enough pw", "exists")],
)
def test_bad_users_are_refused_with_the_reason(auth, name, password, message):
    with pytest.raises(AuthError, match=message):
        auth.add_user(name, password)


def test_roles_are_stored_checked_and_carried_by_the_session(auth):
    assert auth.roles("alice") == frozenset({"analyst"})  # the default
    auth.set_roles("alice", ["approver", "requester"])
    assert auth.login("alice", "correct horse battery")[1].roles == frozenset({"approver", "requester"})
    with pytest.raises(AuthError, match="unknown role"):
        auth.set_roles("bob", ["boss"])
    with pytest.raises(AuthError, match="unknown role"):
        auth.add_user("carol", "a long enough secret", roles=("boss",))
    assert "carol" not in [u[0] for u in auth.users()]  # nothing half-added


def test_users_of_a_store_from_before_roles_become_analysts(tmp_path, config):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE users (user_name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created_at TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0);"
                      "INSERT INTO users VALUES ('dora', 'x', '2026-01-01', 0);")
    old.close()
    store = ConsoleAuth(sqlite_url(path), config.console)
    assert store.roles("dora") == frozenset({"analyst"})
    store.close()
