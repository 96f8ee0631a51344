"""One Optuna study shared by several tuning workers through a database (PostgreSQL in the
production profile), so a search can be spread over processes and machines.

Each worker joins the study by name, checks that it was started on the same training set (its
data fingerprint), and runs trials until the study holds the configured number of finished
ones. A worker's running trial beats a heartbeat; one that stops beating for the grace period
(its worker was killed) is marked failed and its parameters are queued again, so a lost worker
costs one trial, not the study.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

from tradecredit.errors import StageError
from tradecredit.backends_config import TuningStorageConfig
from tradecredit.training.config import TuningConfig

FINGERPRINT_ATTR = "data_fingerprint"
WORKER_ATTR = "worker"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# Pruning reports a trial's score to the storage; in a database each report is a round trip, and
# reporting every boosting round took 14 of a trial's 16 s here. Every 10th round is enough to prune.
SHARED_REPORT_INTERVAL = 10
# Heartbeats have been "experimental" since Optuna 2.9 and are what this module is for.
warnings.filterwarnings("ignore", category=ExperimentalWarning, module=r"optuna\.")
warnings.filterwarnings("ignore", category=ExperimentalWarning, module=__name__)


class StudyError(StageError, ValueError):
    """The shared study cannot be used (another training set, no finished trial)."""


@dataclass(frozen=True)
class SharedStudy:
    url: str
    name: str
    fingerprint: str  # of the training set every worker must tune on
    heartbeat_seconds: int
    grace_seconds: int
    worker_index: int = 0
    threads: int | None = None  # LightGBM threads per trial (None: the configured number)

    @classmethod
    def of(cls, backend: TuningStorageConfig, name: str, fingerprint: str, worker_index: int = 0, threads: int | None = None) -> SharedStudy:
        if not backend.url:
            raise StudyError("a shared study needs backends.tuning.url (the production profile sets PostgreSQL)")
        return cls(backend.url, name, fingerprint, backend.heartbeat_seconds, backend.grace_seconds, worker_index, threads)

    def storage(self) -> RDBStorage:
        def connect() -> RDBStorage:
            return RDBStorage(
                self.url,
                engine_kwargs={"pool_pre_ping": True},
                heartbeat_interval=self.heartbeat_seconds,
                grace_period=self.grace_seconds,
                # A trial failed by a lost heartbeat is queued again once, with the same parameters.
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
            )

        try:
            return connect()
        except sqlalchemy.exc.IntegrityError:
            # Two workers on a new database both created Optuna's tables; the loser finds them made.
            return connect()

    def open(self, tuning: TuningConfig) -> optuna.Study:
        """Create the study or join it; the first trial is queued once, whoever comes first."""
        # Workers seeded alike would draw the same random start-up trials.
        study = search_study(tuning, seed_offset=self.worker_index, storage=self.storage(), name=self.name)
        known = study.user_attrs.get(FINGERPRINT_ATTR)
        if known is None:
            study.set_user_attr(FINGERPRINT_ATTR, self.fingerprint)
        elif known != self.fingerprint:
            raise StudyError(
                f"study '{self.name}' was started on another training set (fingerprint {known[:12]}, this one {self.fingerprint[:12]}): "
                "give this training set a study of its own"
            )
        return study


def search_study(tuning: TuningConfig, seed_offset: int = 0, storage: RDBStorage | None = None, name: str | None = None) -> optuna.Study:
    """The search every tuning runs: TPE with median pruning, minimising the validation log
    loss; in memory, or joined by name in a shared storage."""
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        load_if_exists=storage is not None,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=tuning.seed + seed_offset),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=10),
    )
    # TPE samples at random until it has 10 trials; with a budget of a dozen, a known-good first
    # trial keeps the search from ending on a random draw. Queued once, whoever comes first.
    study.enqueue_trial(tuning.first_trial.model_dump(), skip_if_exists=True)
    return study


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def finished_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_worker(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    tuning: TuningConfig,
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
) -> int:
    """Run trials on the shared study until it holds ``tuning.trials`` finished ones (or the
    timeout passes); returns how many this worker ran."""
    if finished_trials(study) >= tuning.trials:
        return 0
    name = worker_name()

    def tagged(trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, name)
        return objective(trial)

    study.optimize(
        tagged,
        timeout=tuning.timeout_seconds,
        callbacks=[MaxTrialsCallback(tuning.trials, states=FINISHED), *callbacks],
        # A trial that raises is recorded as failed; the study goes on.
        catch=(Exception,),
    )
    return sum(1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get(WORKER_ATTR) == name)


def settle(study: optuna.Study, grace_seconds: int, poll_seconds: float = 0.5) -> None:
    """Wait until no trial is running: other workers' trials finish, and a dead worker's
    trial is failed once its heartbeat has been silent for the grace period."""
    deadline = time.monotonic() + grace_seconds + 600
    while time.monotonic() < deadline:
        fail_stale_trials(study)
        if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            return
        time.sleep(poll_seconds)


def trial_counts(study: optuna.Study) -> dict[str, int]:
    counts = {state.name.lower(): 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name.lower()] += 1
    return counts


def best_trial(study: optuna.Study) -> FrozenTrial:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise StudyError(f"study '{study.study_name}' has no complete trial: run 'tradecredit tune' on it, or train without --study")
    return study.best_trial


class MlflowTrialLogger:
    """An Optuna callback that records each finished trial as an MLflow run: parameters, the
    validation log loss, its state and the worker that ran it. Several workers log at once,
    so this needs a tracking server (SQLite would lock)."""

    def __init__(self, client: Any, experiment_id: str, study_name: str) -> None:
        self.client, self.experiment_id, self.study_name = client, experiment_id, study_name

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        from mlflow.entities import Metric, Param

        run = self.client.create_run(
            self.experiment_id,
            run_name=f"{self.study_name}-trial-{trial.number}",
            tags={"optuna_study": self.study_name, "optuna_trial": str(trial.number), "optuna_state": trial.state.name,
                  WORKER_ATTR: str(trial.user_attrs.get(WORKER_ATTR, worker_name()))},
        )
        now = int(time.time() * 1000)
        metrics = [Metric("validation_log_loss", float(trial.value), now, 0)] if trial.value is not None else []
        if "rounds" in trial.user_attrs:
            metrics.append(Metric("rounds", float(trial.user_attrs["rounds"]), now, 0))
        params = [Param(k, str(v)) for k, v in trial.params.items()]
        self.client.log_batch(run.info.run_id, metrics=metrics, params=params)
        # MLflow prints two links per run it ends on a server: one line per trial is enough (the summary's).
        with contextlib.redirect_stdout(io.StringIO()):
            self.client.set_terminated(run.info.run_id, "FINISHED" if trial.state in FINISHED else "FAILED")
