"""Parallel tuning on one Optuna study in a real PostgreSQL, each worker logging its trials to
a real MLflow server: two workers finish one study, and a worker killed mid-trial leaves the
study usable (its trial is failed by the heartbeat, retried, and the study trains a model)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from tests.integration.conftest import TRADECREDIT, production_config_dir, production_env, run
from tests.model.synthetic import synthetic_training_set
from tradecredit.training.shared_tuning import WORKER_ATTR

TRIALS = 12


@pytest.fixture(scope="module")
def tuning_setup(tmp_path_factory, production_servers):
    folder = tmp_path_factory.mktemp("shared_tuning")
    # Short heartbeats, so a killed worker's trial is failed within seconds; a local final fit.
    configs = production_config_dir(
        folder / "configs", trials=TRIALS,
        backends={"tuning": {"heartbeat_seconds": 1, "grace_seconds": 3}},
        profile={"backends": {"training_engine": "local"}},
    )
    ws = folder / "ws"
    frame, data_end = synthetic_training_set("default", buyers=800)
    (ws / "training_sets").mkdir(parents=True)
    frame.write_parquet(ws / "training_sets" / "default.parquet")
    (ws / "training_sets" / "default_summary.json").write_text(json.dumps({"data_end": data_end.isoformat()}))
    return ws, configs, production_env(production_servers, configs), production_servers


def _study(servers, name: str, storage: optuna.storages.RDBStorage | None = None) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage or servers.environment()["TRADECREDIT_OPTUNA_URL"])


def _worker(ws: Path, env: dict[str, str], study: str, index: int, logs: Path) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRADECREDIT_")} | env
    command = [TRADECREDIT, "--workspace", str(ws), "tune", "default", "--study", study, "--worker-index", str(index), "--threads", "1"]
    # Output to files, not pipes: a worker must never block on a pipe nobody reads yet.
    with (logs / f"worker{index}.out").open("w") as out, (logs / f"worker{index}.err").open("w") as err:
        return subprocess.Popen(command, env=full_env, stdout=out, stderr=err, text=True)


def _pid_of(worker: str) -> int:
    return int(worker.rsplit(":", 1)[1])


def _of(trials: list[optuna.trial.FrozenTrial], pid: int) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if _pid_of(t.user_attrs.get(WORKER_ATTR, "x:0")) == pid]


def _finished_by(study: optuna.Study, pid: int) -> list[optuna.trial.FrozenTrial]:
    return _of(study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)), pid)


def _kill_mid_trial(victim: subprocess.Popen[str], servers, name: str, seconds: float) -> optuna.trial.FrozenTrial | None:
    """SIGKILL ``victim`` inside a trial, once it has finished one (then both workers have trials
    in the study); returns that trial, or None if it never was inside one. A trial here takes
    0.1 to 1 s and the whole study a few seconds, so the study is polled over one connection."""
    storage = optuna.storages.RDBStorage(servers.environment()["TRADECREDIT_OPTUNA_URL"])
    running = (optuna.trial.TrialState.RUNNING,)
    study = None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and victim.poll() is None:
        if study is None:
            try:
                study = _study(servers, name, storage)
            except KeyError:  # the study is not created yet
                time.sleep(0.05)
                continue
        if _of(study.get_trials(states=running), victim.pid) and _finished_by(study, victim.pid):
            # Freeze it and look again: the trial seen running may have finished since, and the
            # kill must land inside a trial, not between two. The pause lets a write it sent
            # just before it stopped land first.
            victim.send_signal(signal.SIGSTOP)
            time.sleep(0.2)
            mine = _of(study.get_trials(states=running), victim.pid)
            if mine:
                victim.send_signal(signal.SIGKILL)
                return mine[0]
            victim.send_signal(signal.SIGCONT)
        time.sleep(0.01)
    return None


@pytest.mark.timeout(600)
def test_two_workers_share_one_study_and_a_worker_killed_mid_trial_leaves_it_usable(tuning_setup, tmp_path):
    ws, configs, env, servers = tuning_setup
    name = f"killed-{uuid.uuid4().hex[:8]}"
    victim, survivor = _worker(ws, env, name, 0, tmp_path), _worker(ws, env, name, 1, tmp_path)
    killed_trial = _kill_mid_trial(victim, servers, name, seconds=120)
    if killed_trial is None:
        victim.kill()
        survivor.wait(timeout=400)
        timeline = "\n".join(f"{t.number} {t.state.name} {t.user_attrs.get(WORKER_ATTR)} {t.datetime_start} {t.datetime_complete}"
                             for t in _study(servers, name).trials)
        pytest.fail(f"the victim (pid {victim.pid}, exit {victim.returncode}) was never caught inside a trial; trials:\n{timeline}\n"
                    f"victim's stderr:\n{(tmp_path / 'worker0.err').read_text()[-3000:]}")
    victim.wait(timeout=30)
    survivor.wait(timeout=400)
    out = (tmp_path / "worker1.out").read_text()
    assert survivor.returncode == 0, (tmp_path / "worker1.err").read_text()[-2000:]

    study = _study(servers, name)
    states = {t.number: t for t in study.trials}
    # The heartbeat stopped: the killed trial is failed, not left running for ever...
    assert states[killed_trial.number].state == optuna.trial.TrialState.FAIL
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    # ... the parameters it had drawn were queued again (it may have died before drawing them
    # all: the retry draws the rest): run by the survivor, or, when the study filled up before
    # the grace period ended, left waiting for the next worker (never lost, never running).
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed_trial.number]
    assert len(retries) == 1
    assert states[killed_trial.number].params.items() <= retries[0].params.items()
    assert retries[0].state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.WAITING)
    # ... and the study reached its size, with the trials of both workers ...
    finished = study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    assert TRIALS <= len(finished) <= TRIALS + 1
    assert _finished_by(study, victim.pid) and _finished_by(study, survivor.pid)
    assert f"this worker ran {len(_finished_by(study, survivor.pid))})" in out
    # ... each of them a run on the MLflow server (several writers at once: no SQLite) ...
    client = MlflowClient(tracking_uri=servers.mlflow.address)
    experiment = client.get_experiment_by_name("tradecredit-default-12m-tuning")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.optuna_study = '{name}'", max_results=200)
    logged = {int(r.data.tags["optuna_trial"]): r for r in runs}
    assert set(logged) >= {t.number for t in finished}
    assert logged[study.best_trial.number].data.metrics["validation_log_loss"] == pytest.approx(study.best_trial.value)
    # ... and it trains a model.
    result = run("--workspace", str(ws), "train", "default", "--study", name, env=env, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((ws / "models" / "default" / "train_summary.json").read_text())
    assert summary["optuna_study"] == name
    best = study.best_trial
    assert summary["params"]["rounds"] == best.user_attrs["rounds"]
    assert summary["params"]["learning_rate"] == pytest.approx(best.params["learning_rate"])
