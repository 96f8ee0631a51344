"""The SQL stores the platform writes: the limit register, the decision log and the console's
users store (users, sessions, roles, API keys). Each is a SQLite file in the workspace by default
and a PostgreSQL database where ``backends`` names one (the production profile); this module
resolves which and opens SQLAlchemy engines that behave the same on both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tradecredit.backends_config import BackendsConfig
from tradecredit.workspace import Workspace


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for a server."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def register_url(backends: BackendsConfig, ws: Workspace) -> str:
    return backends.register_url or sqlite_url(ws.register_db)


def decision_log_url(backends: BackendsConfig, ws: Workspace) -> str:
    return backends.decision_log_url or sqlite_url(ws.decision_log)


def users_url(backends: BackendsConfig, ws: Workspace) -> str:
    return backends.users_url or sqlite_url(ws.users_db)


def sql_engine(url: str, writer: bool = True, synchronous: str = "full", busy_timeout_ms: int = 10_000, foreign_keys: bool = False) -> Engine:
    """An engine on ``url``. On SQLite: WAL (readers never block the writer), ``synchronous`` as
    asked (full: a commit survives power loss), and a writer takes the write lock when its
    transaction begins, so two writers queue for ``busy_timeout_ms`` instead of failing when
    a read would upgrade to a write. A SQLite file's folder is created."""
    path = sqlite_path(url)
    if path is None:
        return sa.create_engine(url, pool_pre_ping=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling defers BEGIN; ours is issued in "begin" below.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute(f"PRAGMA synchronous={synchronous.upper()}")
        dbapi_connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if foreign_keys:
            dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


def store_exists(url: str) -> bool:
    """False only for a SQLite file not created yet (a reader then has nothing to read)."""
    path = sqlite_path(url)
    return path is None or path.exists()


def store_name(url: str) -> str:
    """A store as a user should read it: the file, or the server URL without its password."""
    path = sqlite_path(url)
    return str(path) if path is not None else sa.engine.make_url(url).render_as_string(hide_password=True)
