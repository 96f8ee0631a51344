"""The decision log and the console users store (users, roles, sessions, API keys) on a real
PostgreSQL server, as the production profile keeps them: the unit tests of each store run again
here, each on a schema of its own, plus what only a server shows (many connections at once)."""

from __future__ import annotations

import itertools
import threading

import pytest
import sqlalchemy as sa

from tests.unit.serving.console.test_auth import (  # noqa: F401  (collected and run here on PostgreSQL)
    clock,
    test_a_new_password_ends_open_sessions,
    test_csrf_token_belongs_to_one_session,
    test_disabling_a_user_ends_their_sessions_and_logins,
    test_login_with_the_right_password_only,
    test_logout_ends_the_session,
    test_repeated_failures_lock_the_name_for_a_while,
    test_roles_are_stored_checked_and_carried_by_the_session,
    test_session_tokens_are_stored_hashed_and_resolve_to_their_user,
    test_sessions_expire,
)
from tests.unit.serving.console.test_auth import auth as auth  # noqa: F401
from tests.unit.serving.test_decision_log import (  # noqa: F401
    record,
    test_a_failed_batch_leaves_nothing_behind,
    test_reviews_are_recorded_with_who_and_what_and_checked,
    test_rows_come_back_whole_and_in_order,
    test_threads_and_a_second_connection_append_side_by_side,
)
from tradecredit.local_servers import create_database, postgres_url
from tradecredit.serving.access import ApiKeyError, ApiKeys
from tradecredit.serving.decision_log import DecisionLog

_numbers = itertools.count()


@pytest.fixture(scope="module")
def database(production_servers) -> str:
    create_database(production_servers.postgres.address, "stores_tests")
    return postgres_url(production_servers.postgres.address, "stores_tests")


def fresh_schema(database: str) -> str:
    """A URL on an empty schema of its own (a schema is instant; a database takes a second)."""
    name = f"test_{next(_numbers)}"
    engine = sa.create_engine(database)
    with engine.begin() as con:
        con.execute(sa.text(f"CREATE SCHEMA {name}"))
    engine.dispose()
    return f"{database}?options=-csearch_path%3D{name}"


@pytest.fixture
def log_url(database) -> str:
    return fresh_schema(database)


@pytest.fixture
def users_url(database) -> str:
    return fresh_schema(database)


def test_api_keys_resolve_until_revoked_on_postgresql(users_url):
    keys = ApiKeys(users_url)
    key_id, secret = keys.add("S001")
    admin_id, admin_secret = keys.add(None, admin=True)
    assert keys.resolve(secret).seller_id == "S001" and keys.resolve(admin_secret).admin
    assert keys.resolve(secret + "x") is None
    other = ApiKeys(users_url)  # another worker sees the same keys
    other.revoke(key_id)
    assert keys.resolve(secret) is None and keys.resolve(admin_secret).key_id == admin_id
    with pytest.raises(ApiKeyError, match="no active key"):
        keys.revoke(key_id)
    assert [(k.key_id, k.revoked_at is not None) for k in keys.rows()] == [(key_id, True), (admin_id, False)]
    keys.close()
    other.close()


def test_many_workers_log_at_once_and_nothing_is_lost(log_url):
    logs = [DecisionLog(log_url) for _ in range(4)]  # four service workers, eight threads
    threads = [threading.Thread(target=lambda k=k: [logs[k % 4].append([record(k * 1000 + i), record(k * 1000 + 500 + i)]) for i in range(25)])
               for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert logs[0].count() == 400 and len({r["decision_id"] for r in logs[1].decisions()}) == 400
    for log in logs:
        log.close()
