"""dvc.yaml: `dvc repro` runs the same CLI stages and tracks their config parameters."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl

from tests.conftest import REPO

BIN = Path(sys.executable).parent


def _dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADECREDIT_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([str(BIN / "dvc"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_dvc_repro_runs_stages_and_follows_params(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, project / name)
    for folder in ("configs", "tradecredit", "features", ".dvc"):
        shutil.copytree(REPO / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__", "tmp", "cache"))
    sim_cfg = project / "configs" / "simulator.yaml"
    sim_cfg.write_text(sim_cfg.read_text().replace("\nbuyers: 5000", "\nbuyers: 150").replace("\nmonths: 36", "\nmonths: 12"))
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)

    first = _dvc(project, "repro")
    assert first.returncode == 0, first.stdout + first.stderr
    summary = json.loads((project / "workspace" / "ledger" / "load_summary.json").read_text())
    assert summary["tables"]["buyers"]["accepted"] == 150 and summary["rows_rejected"] == 0
    assert (project / "dvc.lock").exists()
    assert (project / "workspace" / "features" / "build_summary.json").exists()
    # 12 months: every default_12m window reaches past the data, so only the late set has rows.
    assert pl.read_parquet(project / "workspace" / "training_sets" / "default.parquet").height == 0
    assert pl.read_parquet(project / "workspace" / "training_sets" / "late.parquet").height > 0

    again = _dvc(project, "repro")
    assert again.returncode == 0 and "Running stage" not in again.stdout

    sim_cfg.write_text(sim_cfg.read_text().replace("\nbuyers: 150", "\nbuyers: 160"))
    changed = _dvc(project, "repro")
    assert changed.returncode == 0 and "Running stage 'simulate'" in changed.stdout
    summary = json.loads((project / "workspace" / "ledger" / "load_summary.json").read_text())
    assert summary["tables"]["buyers"]["accepted"] == 160
