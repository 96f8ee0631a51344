"""Throwaway PostgreSQL, Redis and MLflow servers on loopback, for trying the production
profile on one machine, for its tests and for its benchmarks.

Each server runs from Debian's packages (``postgresql``, ``redis-server``) or this project's
environment (``mlflow server``), on a free loopback port, with its data in a temporary folder
that ``stop()`` removes. A real deployment points the production profile at its own servers
instead (docs/operations.md).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tradecredit.serving.process import free_port

PG_USER = "tradecredit"


class ServerError(RuntimeError):
    """A server could not be found or did not start; the message says which and why."""


@dataclass
class LocalServer:
    name: str
    process: subprocess.Popen[bytes]
    address: str
    folder: Path
    log: Path
    on_stop: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        for action in self.on_stop:
            action()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _wait(ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str, log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            process.kill()
            raise ServerError(f"{what} did not start within {seconds:.0f} s (exit {process.poll()}):\n{tail}")
        time.sleep(0.1)


# --------------------------------------------------------------------------- PostgreSQL


def _postgres_bin(program: str) -> str:
    # Debian keeps the server programs out of PATH, one folder per major version: take the newest.
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"), key=lambda p: int(Path(p).parts[4]))
    found = candidates[-1] if candidates else shutil.which(program)
    if found:
        return found
    raise ServerError(f"PostgreSQL's {program} is not installed: run .ci/system-packages (Debian package postgresql)")


def _as_postgres_user(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; Debian's package creates the postgres account.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def start_postgres(databases: tuple[str, ...] = ()) -> LocalServer:
    """A PostgreSQL cluster on a free loopback port (TCP only, no Unix socket), superuser
    ``tradecredit`` trusted from loopback, with ``databases`` created. ``address`` is
    ``host:port``; :func:`postgres_url` makes SQLAlchemy URLs of it."""
    folder = Path(tempfile.mkdtemp(prefix="tradecredit-pg-"))
    data, log = folder / "data", folder / "postgres.log"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    subprocess.run(
        _as_postgres_user([_postgres_bin("initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-sync"]),
        check=True, capture_output=True,
    )
    port = free_port()
    # fsync off: a test server's data is thrown away; it writes several times faster without it.
    command = [_postgres_bin("postgres"), "-D", str(data), "-p", str(port), "-c", "listen_addresses=127.0.0.1",
               "-c", "unix_socket_directories=", "-c", "fsync=off", "-c", "max_connections=200"]
    with log.open("wb") as out:
        process = subprocess.Popen(_as_postgres_user(command), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = LocalServer("postgresql", process, f"127.0.0.1:{port}", folder, log)
    _wait(lambda: _pg_ready(port), process, "PostgreSQL", log, 60)
    for name in databases:
        create_database(server.address, name)
    return server


def _pg_ready(port: int) -> bool:
    import psycopg

    try:
        with psycopg.connect(host="127.0.0.1", port=port, user=PG_USER, dbname="postgres", connect_timeout=1):
            return True
    except psycopg.OperationalError:
        return False


def create_database(address: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    host, port = address.split(":")
    with psycopg.connect(host=host, port=int(port), user=PG_USER, dbname="postgres", autocommit=True) as con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def postgres_url(address: str, database: str) -> str:
    return f"postgresql+psycopg://{PG_USER}@{address}/{database}"


# --------------------------------------------------------------------------- Redis


def start_redis() -> LocalServer:
    """redis-server on a free loopback port, without persistence. ``address`` is ``host:port``."""
    binary = shutil.which("redis-server")
    if not binary:
        raise ServerError("redis-server is not installed: run .ci/system-packages (Debian package redis-server)")
    folder = Path(tempfile.mkdtemp(prefix="tradecredit-redis-"))
    port, log = free_port(), folder / "redis.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    _wait(lambda: _redis_ready(port), process, "redis-server", log, 20)
    return LocalServer("redis", process, f"127.0.0.1:{port}", folder, log)


def _redis_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# --------------------------------------------------------------------------- MLflow


def start_mlflow_server(backend_store_url: str, workers: int = 2) -> LocalServer:
    """``mlflow server`` over ``backend_store_url`` (tracking and model registry), serving its
    artifacts from a temporary folder (``--serve-artifacts``: clients upload through the
    server, so no client needs the server's disk). ``address`` is ``http://host:port``."""
    folder = Path(tempfile.mkdtemp(prefix="tradecredit-mlflow-"))
    port, log = free_port(), folder / "mlflow.log"
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [
        str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--backend-store-uri", backend_store_url, "--serve-artifacts",
        "--artifacts-destination", (folder / "artifacts").as_uri(),
    ]
    env = os.environ | {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = LocalServer("mlflow", process, f"http://127.0.0.1:{port}", folder, log)
    server.on_stop.append(lambda: _stop_group(process))
    _wait(lambda: _http_ok(f"{server.address}/health"), process, "mlflow server", log, 120)
    return server


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    # mlflow server runs uvicorn or gunicorn workers under it: end the whole session.
    if process.poll() is None:
        try:
            os.killpg(process.pid, 15)
            process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, 9)


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


# --------------------------------------------------------------------------- all of them

# The production profile's databases in one PostgreSQL server.
DATABASES = ("mlflow", "feast", "optuna", "credit", "decisions", "console")


@dataclass
class ProductionServers:
    """PostgreSQL (MLflow's, Feast's, Optuna's, the limit register's, the decision log's and the console users' databases), Redis and an MLflow server on
    that PostgreSQL: what configs/profiles/production.yaml names, on one machine."""

    postgres: LocalServer
    redis: LocalServer
    mlflow: LocalServer

    def environment(self) -> dict[str, str]:
        """The variables configs/profiles/production.yaml reads its addresses from."""
        return {
            "TRADECREDIT_MLFLOW_URL": self.mlflow.address,
            "TRADECREDIT_FEAST_REGISTRY_URL": postgres_url(self.postgres.address, "feast"),
            "TRADECREDIT_OPTUNA_URL": postgres_url(self.postgres.address, "optuna"),
            "TRADECREDIT_REDIS_URL": self.redis.address,
            "TRADECREDIT_REGISTER_URL": postgres_url(self.postgres.address, "credit"),
            "TRADECREDIT_DECISION_LOG_URL": postgres_url(self.postgres.address, "decisions"),
            "TRADECREDIT_USERS_URL": postgres_url(self.postgres.address, "console"),
        }

    def stop(self) -> None:
        for server in (self.mlflow, self.redis, self.postgres):
            server.stop()


def start_production_servers() -> ProductionServers:
    # If a later server fails to start, the ones already up are stopped.
    with contextlib.ExitStack() as started:
        postgres = started.enter_context(start_postgres(DATABASES))
        redis = started.enter_context(start_redis())
        mlflow = started.enter_context(start_mlflow_server(postgres_url(postgres.address, "mlflow")))
        started.pop_all()
    return ProductionServers(postgres, redis, mlflow)
