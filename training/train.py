"""``train(training_set, ...) -> TrainedModel``: Optuna-tuned LightGBM with monotone constraints
on the latest origin's out-of-time split, the procedure validated walking forward over several
origins, and the served model fitted on every labelled row with cross-fitted calibration."""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
import polars as pl
from optuna.trial import FrozenTrial
from optuna_integration import LightGBMPruningCallback

from tradecredit.backends_config import DaskConfig
from tradecredit.policy_config import PolicyConfig
from tradecredit.training.config import LightGbmConfig, ModelTrainingConfig, TuningConfig
from tradecredit.errors import StageError
from tradecredit.features.catalog import model_input_features
from tradecredit.model_specs import model_spec
from tradecredit.training.checks import ExplainCost, explain_cost
from tradecredit.training.distributed import fit_booster_dask
from tradecredit.training.shared_tuning import (
    SHARED_REPORT_INTERVAL,
    SharedStudy,
    best_trial,
    run_worker,
    search_study,
    settle,
    trial_counts,
)
from tradecredit.training.evaluate import Evaluation
from tradecredit.training.model import CalibrationChoice, CreditModel, model_matrix
from tradecredit.training.procedure import FittedProcedure, ProcedureSpec, fit_procedure
from tradecredit.training.splits import CALIBRATION, HOLDOUT, SLICE, TEST, TRAIN, SplitPlan, assign_slices, plan_split
from tradecredit.training.walk_forward import WalkForward, walk_forward

VALID_NAME = "calibration"


class TrainingError(StageError, ValueError):
    """The training set cannot train this model (missing columns, too short, one class)."""


@dataclass(frozen=True)
class PreparedData:
    plan: SplitPlan
    frame: pl.DataFrame  # the training set with ``holdout_buyer`` and ``slice``
    features: tuple[str, ...]
    categories: dict[str, list[str]]
    fingerprint: str
    excluded: dict[str, int]
    dropped_features: tuple[str, ...] = ()  # catalogue inputs with no value in the training set (their source is absent)

    def rows(self, slice_name: str, holdout: bool | None = None) -> pl.DataFrame:
        mask = pl.col(SLICE) == slice_name
        if holdout is not None:
            mask &= pl.col(HOLDOUT) == holdout
        return self.frame.filter(mask)


def fingerprint(frame: pl.DataFrame) -> str:
    """SHA-256 over the rows' hashes and the schema: the same training set gives the same
    fingerprint with the pinned polars (row hashes are not promised stable across versions)."""
    digest = hashlib.sha256(str(frame.schema).encode())
    digest.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return digest.hexdigest()


def prepare(training_set: pl.DataFrame, model: str, data_end: date, cfg: ModelTrainingConfig, late_days: int) -> PreparedData:
    spec = model_spec(model)
    label, date_column = spec.label(late_days), spec.date_column
    # A view left out by configuration is not read at all (a data scientist comparing without it).
    catalogue = tuple(f.name for f in model_input_features(model) if f.view not in cfg.left_out_views)
    needed = ["buyer_id", date_column, label, *catalogue]
    missing = [c for c in needed if c not in training_set.columns]
    if label in missing and spec.late_days_of(label) is not None:
        built = [c for c in training_set.columns if spec.is_label(c)]
        raise TrainingError(f"the {model} training set has {', '.join(built) or 'another label'}, not {label} "
                            f"(configs/labels.yaml late_days changed): run 'tradecredit features training-set {model}'")
    if missing:
        raise TrainingError(f"the {model} training set lacks columns: {', '.join(missing)}: "
                            f"run 'tradecredit features training-set {model}' (after 'features build' and 'features apply')")
    # A feature the ledger cannot feed (no registry, no financials, ...) is null throughout: left out.
    dropped = tuple(f for f in catalogue if training_set[f].null_count() == training_set.height)
    features = tuple(f for f in catalogue if f not in dropped)
    if training_set[label].null_count():
        raise TrainingError(f"the {model} training set has {training_set[label].null_count()} rows without a label")
    if model == "late":
        longest = int(training_set["order_terms_days"].max()) + late_days
        if longest > cfg.split.label_horizon_days:
            raise TrainingError(
                f"late.split.label_horizon_days is {cfg.split.label_horizon_days}, but terms of "
                f"{longest - late_days} days make late_{late_days}d known only {longest} days after issue: raise it"
            )
    day = pl.col(date_column)
    if training_set.schema[date_column] != pl.Date:
        day = day.dt.date()
    dates = training_set.select(day.alias("d"))["d"]
    plan = plan_split(dates, data_end, cfg.split, date_column)
    frame = assign_slices(training_set, plan)
    incomplete = int((dates > plan.test_end).sum())
    text = [f.name for f in model_input_features(model) if f.dtype == "string" and f.name in features]
    train_rows = frame.filter(pl.col(SLICE) == TRAIN)
    categories = {c: sorted(train_rows[c].drop_nulls().unique().to_list()) for c in text}
    for name in (TRAIN, CALIBRATION, TEST):
        part = frame.filter(pl.col(SLICE) == name)[label]
        if part.is_empty() or part.min() == part.max():
            raise TrainingError(f"the {name} slice of the {model} training set has {part.len()} rows and only one outcome class")
    return PreparedData(plan, frame, features, categories, fingerprint(training_set),
                        {"label_incomplete_after_test_end": incomplete}, dropped)


@dataclass(frozen=True)
class TuningResult:
    params: dict[str, float | int]
    rounds: int
    best_validation_log_loss: float
    trials_completed: int
    trials_pruned: int
    seconds: float
    trials_failed: int = 0
    best_trial_number: int = 0
    trials_run_here: int = 0  # by this process (all of them, unless the study is shared)


def _base_params(lightgbm_cfg: LightGbmConfig, monotone: list[int]) -> dict[str, object]:
    return {
        "objective": "binary",
        # Tuning and early stopping use log loss, a smooth proper score: with a few hundred
        # validation defaults, AUC's noise picked worse models (docs/decisions/0001-models-and-training.md).
        "metric": "binary_logloss",
        "verbosity": -1,
        # Determinism: LightGBM's multithreaded histogram building is not reproducible unless told.
        "deterministic": True,
        "force_row_wise": True,
        "seed": lightgbm_cfg.seed,
        "num_threads": lightgbm_cfg.num_threads,
        "monotone_constraints": monotone,
        # "basic" constrains every split, so the sweep can demand exact monotonicity.
        "monotone_constraints_method": "basic",
    }


def _rounds_cap(tuning: TuningConfig, num_leaves: int, max_depth: int) -> int:
    # TreeSHAP's per-row cost grows with trees x leaves x depth^2: cap trees so every candidate
    # explains within the service's budget.
    return max(10, min(tuning.max_rounds, tuning.max_treeshap_cost // (num_leaves * max_depth**2)))


def trial_objective(
    train_set: lgb.Dataset, valid_set: lgb.Dataset, tuning: TuningConfig, base: dict[str, object], report_interval: int = 1
) -> Callable[[optuna.Trial], float]:
    """One trial: parameters drawn from the space, a booster early-stopped and pruned on the
    calibration slice's log loss (held-out buyers, later months)."""
    space = tuning.search_space

    def objective(trial: optuna.Trial) -> float:
        max_depth = trial.suggest_int("max_depth", *space.max_depth)
        # More leaves than a depth allows would be wasted: keep the pair consistent.
        num_leaves = trial.suggest_int("num_leaves", space.num_leaves[0], min(space.num_leaves[1], max(space.num_leaves[0], 2**max_depth)))
        params = base | {
            "max_depth": max_depth,
            "num_leaves": num_leaves,
            "learning_rate": trial.suggest_float("learning_rate", *space.learning_rate, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", *space.min_child_samples, log=True),
            "lambda_l2": trial.suggest_float("lambda_l2", *space.lambda_l2, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", *space.feature_fraction),
            "bagging_fraction": trial.suggest_float("bagging_fraction", *space.bagging_fraction),
            "bagging_freq": 1,
        }
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=_rounds_cap(tuning, num_leaves, max_depth),
            valid_sets=[valid_set],
            valid_names=[VALID_NAME],
            callbacks=[
                lgb.early_stopping(tuning.early_stopping_rounds, verbose=False),
                LightGBMPruningCallback(trial, "binary_logloss", valid_name=VALID_NAME, report_interval=report_interval),
            ],
        )
        trial.set_user_attr("rounds", booster.best_iteration or booster.current_iteration())
        return float(booster.best_score[VALID_NAME]["binary_logloss"])

    # lgb.train re-applies each trial's parameters to the validation set built on the training
    # set's bins and says so every time; the bins are what we want shared.
    warnings.filterwarnings("ignore", message="Overriding the parameters from Reference Dataset")
    return objective


def tune(
    train_set: lgb.Dataset,
    valid_set: lgb.Dataset,
    tuning: TuningConfig,
    base: dict[str, object],
    shared: SharedStudy | None = None,
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
) -> TuningResult:
    """TPE over the configured space. In memory in this process, or, with ``shared``, as one
    worker of a study in a database that other workers (processes, machines) tune at once."""
    started = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if shared is not None:
        threads = {"num_threads": shared.threads} if shared.threads else {}
        objective = trial_objective(train_set, valid_set, tuning, base | threads, SHARED_REPORT_INTERVAL)
        study = shared.open(tuning)
        ran = run_worker(study, objective, tuning, callbacks)
        # Other workers' last trials count too: wait for them (or for a dead worker's to fail).
        settle(study, shared.grace_seconds)
        return tuning_result(study, best_trial(study), started, ran)
    objective = trial_objective(train_set, valid_set, tuning, base)
    study = search_study(tuning)
    study.optimize(objective, n_trials=tuning.trials, timeout=tuning.timeout_seconds, callbacks=list(callbacks))
    return tuning_result(study, study.best_trial, started, len(study.trials))


def tuning_result(study: optuna.Study, best: FrozenTrial, started: float, ran: int) -> TuningResult:
    counts = trial_counts(study)
    return TuningResult(
        params=dict(best.params),
        rounds=int(best.user_attrs["rounds"]),
        best_validation_log_loss=float(best.value),
        trials_completed=counts["complete"],
        trials_pruned=counts["pruned"],
        seconds=time.perf_counter() - started,
        trials_failed=counts["fail"],
        best_trial_number=best.number,
        trials_run_here=ran,
    )


def training_rows(train_slice: pl.DataFrame, model: str, cfg: ModelTrainingConfig, seed: int) -> pl.DataFrame:
    """The train slice, or its seeded sample when ``max_train_rows`` caps it; evaluation refits
    the benchmark on exactly these rows."""
    if cfg.max_train_rows and train_slice.height > cfg.max_train_rows:
        # Sorted after sampling: the same rows in the same order give the same model anywhere.
        return train_slice.sample(cfg.max_train_rows, seed=seed).sort(model_spec(model).date_column, "buyer_id", maintain_order=True)
    return train_slice


def final_params(tuned: dict[str, float | int], base: dict[str, object]) -> dict[str, object]:
    return base | tuned | {"bagging_freq": 1}


@dataclass(frozen=True)
class TrainedModel:
    model: CreditModel  # the served model: every labelled row of every buyer
    data: PreparedData
    tuning: TuningResult
    params: dict[str, object]
    production: FittedProcedure
    walk_forward: WalkForward
    explain: ExplainCost
    slice_rows: dict[str, int]
    seconds: float
    fit: FitInfo

    @property
    def calibration(self) -> CalibrationChoice:
        return self.production.calibration

    @property
    def evaluation(self) -> Evaluation:
        """The walk-forward's pooled held-out predictions (deciles, grades, plots)."""
        return self.walk_forward.evaluation

    def flat_metrics(self) -> dict[str, float]:
        return self.walk_forward.flat_metrics()


@dataclass(frozen=True)
class FitInfo:
    """Where the served model's booster was fitted and how long it took."""

    engine: str  # local or dask
    workers: int
    scheduler: str
    seconds: float


@dataclass(frozen=True)
class TuningInputs:
    """What tuning needs, built the same way by ``train`` and by each ``tune`` worker."""

    data: PreparedData
    base: dict[str, object]
    train_rows: pl.DataFrame
    cal_rows: pl.DataFrame
    x_train: pd.DataFrame
    y_train: np.ndarray
    x_cal: pd.DataFrame
    y_cal: np.ndarray
    train_set: lgb.Dataset
    valid_set: lgb.Dataset


def tuning_inputs(
    training_set: pl.DataFrame, model: str, data_end: date, cfg: ModelTrainingConfig, lightgbm_cfg: LightGbmConfig, late_days: int
) -> TuningInputs:
    label = model_spec(model).label(late_days)
    data = prepare(training_set, model, data_end, cfg, late_days)
    base = _base_params(lightgbm_cfg, [cfg.monotone.get(f, 0) for f in data.features])
    train_rows, cal_rows = training_rows(data.rows(TRAIN), model, cfg, lightgbm_cfg.seed), data.rows(CALIBRATION)
    x_train, y_train = model_matrix(train_rows, data.features, data.categories, model), train_rows[label].to_numpy()
    x_cal, y_cal = model_matrix(cal_rows, data.features, data.categories, model), cal_rows[label].to_numpy()
    # Trials vary min_child_samples; a Dataset pre-filtered for one value would refuse smaller ones.
    train_set = lgb.Dataset(x_train, y_train, params={"feature_pre_filter": False}, free_raw_data=False)
    valid_set = lgb.Dataset(x_cal, y_cal, reference=train_set, free_raw_data=False)
    return TuningInputs(data, base, train_rows, cal_rows, x_train, y_train, x_cal, y_cal, train_set, valid_set)


def procedure_spec(data: PreparedData, model: str, late_days: int, cfg: ModelTrainingConfig, params: dict[str, object],
                   tuned_rounds: int, tuned_rows: int) -> ProcedureSpec:
    """The procedure every origin and the served model run, from the prepared data and the tuned
    booster (``params`` with its monotone constraints, the rounds early stopping chose on ``tuned_rows``)."""
    spec = model_spec(model)
    return ProcedureSpec(
        model=model, label=spec.label(late_days), date_column=spec.date_column, features=data.features,
        categories=data.categories, monotone={f: d for f, d in cfg.monotone.items() if f in data.features},
        params=params, tuned_rounds=tuned_rounds, tuned_rows=tuned_rows,
        rounds_cap=_rounds_cap(cfg.tuning, int(params["num_leaves"]), int(params["max_depth"])),  # type: ignore[call-overload]
    )


def train(
    training_set: pl.DataFrame,
    model: str,
    data_end: date,
    cfg: ModelTrainingConfig,
    lightgbm_cfg: LightGbmConfig,
    policy: PolicyConfig,
    late_days: int,
    truth: pl.DataFrame | None = None,
    shared: SharedStudy | None = None,
    dask: DaskConfig | None = None,
    tuning_callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
) -> TrainedModel:
    """Tune on the latest origin's split, validate the procedure walking forward, then fit the
    served model on every labelled row. ``truth``: the simulator's true probability per row
    (``buyer_id, as_of_ts, truth`` or ``invoice_id, truth``), if known. ``shared``: tune as one
    worker of a study in a database; ``dask``: fit the served booster with LightGBM's Dask
    estimator on that cluster (everything else is the same)."""
    started = time.perf_counter()
    inputs = tuning_inputs(training_set, model, data_end, cfg, lightgbm_cfg, late_days)
    data, base = inputs.data, inputs.base
    spec = model_spec(model)
    tuning = tune(inputs.train_set, inputs.valid_set, cfg.tuning, base, shared, tuning_callbacks)
    params = final_params(tuning.params, base)
    procedure = procedure_spec(data, model, late_days, cfg, params, tuning.rounds, inputs.train_rows.height)

    def sample(rows: pl.DataFrame) -> pl.DataFrame:
        return training_rows(rows, model, cfg, lightgbm_cfg.seed)

    walked = walk_forward(data.frame, data.plan, procedure, cfg, lightgbm_cfg.seed, lambda rows: truth_column(rows, truth), policy, sample)

    day = pl.col(spec.date_column) if data.frame.schema[spec.date_column] == pl.Date else pl.col(spec.date_column).dt.date()
    labelled = data.frame.filter(day <= data.plan.production_end)
    served_rows = sample(labelled)
    fit_started = time.perf_counter()
    if dask is None:
        production = fit_procedure(served_rows, procedure, cfg)
        fit_info = FitInfo("local", 1, "in process", time.perf_counter() - fit_started)
    else:
        fits: list[object] = []

        def on_dask(p: dict[str, object], x: pd.DataFrame, y: np.ndarray, rounds: int) -> lgb.Booster:
            fitted = fit_booster_dask(p, x, y, rounds, dask)
            fits.append(fitted)
            return fitted.fitted_booster

        production = fit_procedure(served_rows, procedure, cfg, final_fit=on_dask)
        fitted = fits[-1]
        fit_info = FitInfo("dask", fitted.workers, fitted.scheduler, time.perf_counter() - fit_started)  # type: ignore[attr-defined]

    cost = explain_cost(production.model, production.model.matrix(data.rows(TEST).head(200)))
    slice_rows = {
        "labelled": labelled.height,
        "served_model": production.rows,
        "served_model_calibration": production.calibration_rows,
        "unlabelled_after_last_complete_label": data.frame.height - labelled.height,
        "tuning_train": inputs.train_rows.height,
        "tuning_validation": inputs.cal_rows.height,
        "walk_forward_test_heldout_buyers": walked.rows(holdout=True).height,
        "walk_forward_test_all_buyers": walked.rows(holdout=None).height,
    }
    return TrainedModel(production.model, data, tuning, params, production, walked, cost, slice_rows,
                        time.perf_counter() - started, fit_info)


def truth_column(rows: pl.DataFrame, truth: pl.DataFrame | None) -> np.ndarray | None:
    """The simulator's true probability for each row (NaN where the truth has none)."""
    if truth is None:
        return None
    keys = [c for c in truth.columns if c != "truth"]
    joined = rows.select(keys).join(truth, on=keys, how="left", maintain_order="left")
    return joined["truth"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
