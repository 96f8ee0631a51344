"""Starting and stopping a real ``bentoml serve`` process: used by ``tradecredit serve`` and
``demo``, the integration tests and the benchmarks, so all of them run the same server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tradecredit.config import CONFIG_DIR_ENV
from tradecredit.workspace import WORKSPACE_ENV, Workspace

SERVICE_TARGET = "tradecredit.serving.service:CreditService"
AS_OF_ENV = "TRADECREDIT_SERVE_AS_OF"


def parse_as_of(text: str | None) -> datetime | None:
    """A replay clock from ``YYYY-MM-DD`` (end of that day, UTC) or an ISO timestamp."""
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC)
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{AS_OF_ENV}: '{text}' is not a date (YYYY-MM-DD) or an ISO timestamp") from None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


class ServerError(RuntimeError):
    """The server did not come up; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "bentoml", "serve", SERVICE_TARGET, "--host", host, "--port", str(port)]


def serve_environment(ws: Workspace, config_dir: Path, as_of: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env[WORKSPACE_ENV] = str(ws.root)
    env[CONFIG_DIR_ENV] = str(config_dir.resolve())
    env["BENTOML_DO_NOT_TRACK"] = "True"  # no usage analytics from a credit service
    if as_of:
        env[AS_OF_ENV] = as_of
    else:
        env.pop(AS_OF_ENV, None)
    return env


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    api_key: str | None = None  # an administrator key made for whoever started the server
    api_key_id: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def post(self, path: str, body: Any, timeout: float = 30.0, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        """POST with the server's administrator key unless ``headers`` say otherwise."""
        return post_json(self.url + path, body, timeout, self.headers if headers is None else headers)

    def get(self, path: str, timeout: float = 30.0, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(self.url + path, headers=self.headers if headers is None else headers, method="GET")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Stop the server and every process it started. BentoML's workers run in sessions of
        their own, so they are found by ancestry: SIGTERM lets the arbiter stop them gracefully,
        any other signal (a test's SIGKILL) reaches them directly, and whatever still runs after
        the grace period is killed."""
        import psutil

        if self.process.poll() is not None:
            return
        workers = psutil.Process(self.process.pid).children(recursive=True)
        if sig != signal.SIGTERM:
            for worker in workers:
                with contextlib.suppress(psutil.NoSuchProcess):
                    worker.send_signal(sig)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout)
        _, alive = psutil.wait_procs(workers, timeout=10)
        for worker in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()


def post_json(url: str, body: Any, timeout: float = 30.0, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"raw": raw.decode("utf-8", "replace")}


def wait_ready(server: RunningServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerError(f"the scoring service exited with status {server.process.returncode}:\n{log_tail(server.log_path)}")
        try:
            with urllib.request.urlopen(server.url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    server.stop()
    raise ServerError(f"the scoring service was not ready after {timeout:.0f} s:\n{log_tail(server.log_path)}")


def log_tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def start_server(
    ws: Workspace, config_dir: Path, port: int | None = None, host: str = "127.0.0.1", as_of: str | None = None, ready_timeout: float = 180.0
) -> RunningServer:
    """Start ``bentoml serve`` in its own process group, its output in ``WORKSPACE/serving/server.log``,
    and wait until ``/readyz`` answers."""
    port = port or free_port()
    ws.serving.mkdir(parents=True, exist_ok=True)
    log_path = ws.server_log
    log = log_path.open("ab")
    process = subprocess.Popen(
        serve_command(host, port), env=serve_environment(ws, config_dir, as_of), stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )
    log.close()
    key_id, secret = admin_key(served_users_url(ws, config_dir))
    server = RunningServer(process, f"http://{host}:{port}", log_path, secret, key_id)
    wait_ready(server, ready_timeout)
    return server


def served_users_url(ws: Workspace, config_dir: Path) -> str:
    """The users store a service started here reads its API keys from (the selected profile's)."""
    from tradecredit.backends_config import BackendsConfig
    from tradecredit.config import load_profiled_section
    from tradecredit.sql_stores import users_url

    return users_url(load_profiled_section(BackendsConfig, config_dir), ws)


def admin_key(users_url: str) -> tuple[str, str]:
    """A fresh administrator key (id, secret) in a users store, for the process that starts a
    server (the demo, the tests, the benchmarks) to call it with; revoked when
    :func:`running_server` stops the server."""
    from tradecredit.serving.access import ApiKeys

    keys = ApiKeys(users_url)
    try:
        return keys.add(None, admin=True)
    finally:
        keys.close()


def revoke_key(users_url: str, key_id: str | None) -> None:
    from tradecredit.serving.access import ApiKeyError, ApiKeys

    if key_id is None:
        return
    keys = ApiKeys(users_url)
    try:
        keys.revoke(key_id)
    except ApiKeyError:
        pass  # already revoked
    finally:
        keys.close()


@contextmanager
def running_server(ws: Workspace, config_dir: Path, **kwargs: Any) -> Iterator[RunningServer]:
    server = start_server(ws, config_dir, **kwargs)
    try:
        yield server
    finally:
        server.stop()
        revoke_key(served_users_url(ws, config_dir), server.api_key_id)
