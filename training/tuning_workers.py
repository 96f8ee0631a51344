"""The processes of a shared tuning study on this machine: ``tradecredit tune`` workers started
beside the process that trains, and how they are waited for."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from tradecredit.config import PlatformConfig
from tradecredit.errors import StageError
from tradecredit.training.shared_tuning import SharedStudy
from tradecredit.training.train import fingerprint
from tradecredit.workspace import Workspace

Helper = tuple[subprocess.Popen[bytes], Path]


def tuning_threads(cfg: PlatformConfig, workers: int) -> int:
    # Workers on one machine share its cores: two workers of two threads on two cores lose time to switching.
    return max(1, cfg.training.lightgbm.num_threads // workers)


def shared_study(cfg: PlatformConfig, model: str, frame: pl.DataFrame, study: str | None, worker_index: int, threads: int | None) -> SharedStudy | None:
    """The shared study this run tunes on, when the profile names an Optuna storage; None
    (tuning in memory) otherwise."""
    if not cfg.backends.tuning.url:
        if study:
            raise StageError("--study needs a shared Optuna storage (backends.tuning.url; the production profile sets PostgreSQL)")
        return None
    name = study or f"{model}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{os.getpid()}"
    return SharedStudy.of(cfg.backends.tuning, name, fingerprint(frame), worker_index, threads)


def launch_tuning_helpers(ws: Workspace, config_dir: Path | None, model: str, study: str, count: int, threads: int) -> list[Helper]:
    """``count`` more ``tradecredit tune`` processes on this machine, joining ``study``; each
    writes its output to WORKSPACE/models/MODEL/tuning-worker-N.log."""
    program = Path(sys.executable).with_name("tradecredit")
    base = [str(program)] if program.exists() else [sys.executable, "-m", "tradecredit.cli"]
    ws.model_dir(model).mkdir(parents=True, exist_ok=True)
    helpers = []
    for index in range(1, count + 1):
        log = ws.tuning_worker_log(model, index)
        command = [*base, "--workspace", str(ws.root), *(["--config-dir", str(config_dir)] if config_dir else []),
                   "tune", model, "--study", study, "--worker-index", str(index), "--threads", str(threads)]
        with log.open("wb") as out:
            helpers.append((subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT), log))
    return helpers


def finish_helpers(helpers: list[Helper], seconds: float = 120) -> list[str]:
    """Wait for the helpers; one that failed or hangs is reported as a warning (its trials are
    already in the study, or were failed and retried by the heartbeat), never silently dropped."""
    warnings = []
    for process, log in helpers:
        try:
            code = process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        if code != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            warnings.append(f"warning: tuning worker {process.pid} ended with status {code} ({log}): {' / '.join(tail)}")
    return warnings
