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


@dataclass(frozen=True)
class DemoRun:
    workspace: Path
    configs: Path
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    folder = tmp_path_factory.mktemp("demo")
    configs = quick_config_dir(folder / "configs")
    ws = folder / "ws"
    # 40 months: the default model's split needs a year of label and a year of gap after training.
    result = run("--workspace", str(ws), "--config-dir", str(configs), "demo", "--buyers", "400", "--months", "40", timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return DemoRun(ws, configs, result)
