"""The demo, run once per test session through the installed program: its output is tested
in test_cli, and its workspace (a trained, promoted, materialized portfolio) serves the
scoring-service tests."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import quick_config_dir

TRADECREDIT = str(Path(sys.executable).parent / "tradecredit")


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRADECREDIT_")} | (env or {})
    return subprocess.run([TRADECREDIT, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The program in this process (a subprocess per command would spend most of a test
    importing Feast and MLflow): the same exit status, standard output and standard error a user
    sees, and never a traceback. ``run`` is for what needs a process of its own (its environment,
    its working folder, a time zone)."""
    from typer.testing import CliRunner

    from tradecredit.cli import app

    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, repr(result.exception), result.output[-3000:])
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


# The demo's own limit, its subprocess's timeout. pytest-timeout counts a test's fixture setup in
# the test's limit (timeout_func_only is off), and the session's demo runs in the setup of the
# first test that uses it: that test gets this budget on top of its own limit.
DEMO_TIMEOUT = 600
DEMO_SETUP_MARGIN = 60  # the fixture's own work around the subprocess (config copy, start-up)


def _timeout_of(item: pytest.Item) -> float:
    """The limit pytest-timeout applies to ``item``: its marker, else the command line,
    PYTEST_TIMEOUT or the ini file's ``timeout`` (0: no limit)."""
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        value = marker.kwargs.get("timeout", marker.args[0] if marker.args else None)
        if value is not None:
            return float(value)
    for value in (item.config.getoption("timeout", None), os.environ.get("PYTEST_TIMEOUT"), item.config.getini("timeout")):
        if value not in (None, ""):
            return float(value)
    return 0.0


@pytest.hookimpl(trylast=True)  # after deselection and any reordering: the first user as run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    first = next((item for item in items if "demo_run" in item.fixturenames), None)
    if first is None:
        return
    own = _timeout_of(first)
    if own > 0:
        first.add_marker(pytest.mark.timeout(own + DEMO_TIMEOUT + DEMO_SETUP_MARGIN), append=False)


@dataclass(frozen=True)
class DemoRun:
    workspace: Path
    configs: Path
    result: subprocess.CompletedProcess[str]


def once_per_run(tmp_path_factory: pytest.TempPathFactory, name: str) -> None:
    """A session fixture starts once per run, also on several xdist workers (their groups keep
    its users together): a second start means the grouping broke, and the suite pays twice."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return
    shared = tmp_path_factory.getbasetemp().parent  # the run's folder, above each worker's own
    try:
        (shared / f"{name}.started").open("x").write(os.environ["PYTEST_XDIST_WORKER"])
    except FileExistsError:
        other = (shared / f"{name}.started").read_text()
        raise AssertionError(f"the session fixture {name} started in worker {other} and again here: the tests that share it "
                             "are not in one xdist group (tests/conftest.py: XDIST_GROUPS)") from None


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    once_per_run(tmp_path_factory, "demo_run")
    folder = tmp_path_factory.mktemp("demo")
    # One walk-forward origin: the demo's users test the chain and what the models serve; the
    # spread over origins is tested in tests/model and tests/integration/training.
    configs = quick_config_dir(folder / "configs", origins=1)
    ws = folder / "ws"
    # 40 months: the default model's split needs a year of label and a year of gap after training.
    result = run("--workspace", str(ws), "--config-dir", str(configs), "demo", "--buyers", "400", "--months", "40", timeout=DEMO_TIMEOUT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return DemoRun(ws, configs, result)


@pytest.fixture(scope="session")
def production_servers(tmp_path_factory: pytest.TempPathFactory):
    """PostgreSQL, Redis and an MLflow server on PostgreSQL (Debian packages and this project's
    mlflow; .ci/system-packages installs them), shared by the production-profile tests."""
    from tradecredit.local_servers import start_production_servers

    once_per_run(tmp_path_factory, "production_servers")
    servers = start_production_servers()
    try:
        yield servers
    finally:
        servers.stop()


def production_config_dir(folder: Path, trials: int = 3, profile: dict | None = None, backends: dict | None = None) -> Path:
    """quick_config_dir's configs with the production profile's keys overridden (``profile``:
    {section: {key: value}}) and backends.yaml's (``backends``). One walk-forward origin: these
    tests check the production backends' wiring, not the spread over origins."""
    import yaml

    configs = quick_config_dir(folder, trials, origins=1)
    if backends:
        path = configs / "backends.yaml"
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
        path.write_text(yaml.safe_dump(_merged(values, backends)), encoding="utf-8")
    if profile:
        path = configs / "profiles" / "production.yaml"
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
        path.write_text(yaml.safe_dump(_merged(values, profile)), encoding="utf-8")
    return configs


def _merged(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merged(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def production_env(servers, configs: Path) -> dict[str, str]:
    """What a user exports to run the production profile against ``servers``."""
    return servers.environment() | {"TRADECREDIT_PROFILE": "production", "TRADECREDIT_CONFIG_DIR": str(configs)}
