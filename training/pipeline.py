"""The training stages: train, tune, evaluate, promote and score. Plain functions from the config
and the workspace to frozen results; they raise :class:`StageError` for a user to act on, and
the command line prints what they return.

MLflow and LightGBM are imported inside: they take seconds to import, and ``tradecredit
simulate`` should not wait for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from tradecredit.config import PlatformConfig
from tradecredit.errors import StageError
from tradecredit.model_specs import ModelSpec, model_spec
from tradecredit.workspace import Workspace, read_json, write_json

if TYPE_CHECKING:
    from tradecredit.training.promote import GateDecision
    from tradecredit.training.registry import RegisteredModel
    from tradecredit.training.train import TrainedModel


def read_truth(ws: Workspace, spec: ModelSpec, data_end: date, late_days: int, folder: Path | None = None) -> pl.DataFrame | None:
    """The simulator's true probabilities, keyed like the training rows, if the folder belongs to
    this ledger (same data end) and answers this label; None for a user's own data. A folder
    named explicitly (``--truth``) that does not fit is an error."""
    explicit = folder is not None
    if not spec.truth_answers(late_days):
        if explicit:
            raise StageError(f"--truth {folder}: the simulator's truth is for late_{spec.truth_late_days}d, "
                             f"not {spec.label(late_days)} (configs/labels.yaml: late_days)")
        return None
    folder = folder or ws.simulated_truth
    summary = folder / "summary.json"
    if not summary.exists():
        if explicit:
            raise StageError(f"--truth {folder}: no summary.json there")
        return None
    if read_json(summary)["data_end"] != data_end.isoformat():
        if explicit:
            raise StageError(f"--truth {folder}: its data ends on another date than the training set ({data_end})")
        return None
    truth = pl.read_parquet(folder / spec.truth_file)
    if "as_of_ts" in spec.truth_keys:
        truth = truth.with_columns(as_of_ts=pl.col("as_of_date").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
    return truth.select(*spec.truth_keys, truth=spec.truth_column)


# -- train --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainResult:
    model: str
    version: str
    summary: dict[str, Any]
    metrics: dict[str, float]
    trained: TrainedModel
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        m, t = self.metrics, self.trained
        text = (
            f"Trained {self.model} model version {self.version} (alias challenger) on {t.production.rows:,} rows "
            f"({m['served_model_rows_share']:.0%} of the labelled rows, as-of dates to {t.production.last_date}). "
            f"Walk-forward over {m['walk_forward_origins']:.0f} origin(s), held-out buyers: AUC {m['test_auc']:.4f} "
            f"(sd {m['test_auc_sd']:.4f}), Gini {m['test_gini']:.4f}, KS {m['test_ks']:.4f}, ECE {m['test_ece']:.4f}; "
            f"logistic benchmark AUC {m['benchmark_auc']:.4f} ({m['auc_lift_over_benchmark']:+.4f})"
            + (f", no-model rule {m['no_model_auc']:.4f} ({m['auc_lift_over_no_model']:+.4f})" if "no_model_auc" in m else "")
        )
        if "oracle_auc" in m:
            text += f"; oracle AUC {m['oracle_auc']:.4f} (model/oracle {m['oracle_auc_ratio']:.3f})"
        failed = f" + {t.tuning.trials_failed} failed" if t.tuning.trials_failed else ""
        where = f"; fitted on Dask ({t.fit.workers} workers) in {t.fit.seconds:.1f} s" if t.fit.engine == "dask" else ""
        return text + (
            f". {t.explain.trees} trees, explain {t.explain.explain_ms_per_row:.2f} ms/row; "
            f"{t.tuning.trials_completed} trials + {t.tuning.trials_pruned} pruned{failed} in {t.tuning.seconds:.0f} s{where}."
            + (f" {len(t.model.features)} features; {len(t.data.dropped_features)} left out (no value: their source is absent)."
               if t.data.dropped_features else "")
        )


def train(
    cfg: PlatformConfig, ws: Workspace, model: str, truth_dir: Path | None = None, study: str | None = None,
    config_dir: Path | None = None,
) -> TrainResult:
    """Train, evaluate, log to MLflow, register a version with the alias ``challenger``, and
    write the summary, model card and plots under WORKSPACE/models/MODEL. With a shared Optuna
    storage, tuning runs on a study there with ``backends.tuning.workers`` processes; with the
    dask engine, the final booster is fitted on the Dask cluster."""
    spec = model_spec(model)

    from dataclasses import asdict

    from tradecredit.training import registry, tracking
    from tradecredit.training.report import write_plots
    from tradecredit.training.splits import TEST
    from tradecredit.training.train import train as fit_model
    from tradecredit.training.tuning_workers import finish_helpers, launch_tuning_helpers, shared_study, tuning_threads

    frame, data_end = ws.read_training_set(model)
    truth = read_truth(ws, spec, data_end, cfg.labels.late_days, truth_dir)
    model_cfg = cfg.training.model(model)
    client = registry.connect(ws, cfg.backends)
    workers = cfg.backends.tuning.workers
    threads = tuning_threads(cfg, workers)
    shared = shared_study(cfg, model, frame, study, 0, threads)
    helpers, callbacks = [], []
    try:
        if shared is not None:
            # Whoever comes first creates the study; every worker checks the data's fingerprint.
            helpers = launch_tuning_helpers(ws, config_dir, model, shared.name, workers - 1, threads)
            callbacks = [tracking.trial_logger(client, ws, spec, shared.name)]
        dask = cfg.backends.dask if cfg.backends.training_engine == "dask" else None
        trained = fit_model(frame, model, data_end, model_cfg, cfg.training.lightgbm, cfg.policy, cfg.labels.late_days, truth,
                            shared=shared, dask=dask, tuning_callbacks=callbacks)
    except (StageError, ValueError) as exc:  # TrainingError, StudyError, a calibration that cannot be chosen
        raise StageError(str(exc), finish_helpers(helpers)) from None
    except BaseException:
        finish_helpers(helpers)
        raise
    warnings = finish_helpers(helpers)

    x_test = trained.model.matrix(trained.data.rows(TEST, holdout=True))
    files = write_plots(trained.model, trained.evaluation, x_test.head(2000), ws.training_report_dir(model))
    run = tracking.log_training_run(client, ws, cfg, spec, trained, data_end, shared.name if shared else None,
                                    [*files.plots, *files.tables], x_test.head(5))
    summary = {
        "model": model, "registered_model": run.registered_model, "version": run.version, "run_id": run.run_id,
        "alias": registry.CHALLENGER, "split": trained.data.plan.as_dict(), "slice_rows": trained.slice_rows,
        "walk_forward": trained.walk_forward.table().to_dicts(),
        "served_model": {"rows": trained.production.rows, "rounds": trained.production.rounds,
                         "first_as_of": trained.data.plan.data_start.isoformat(), "last_as_of": trained.production.last_date.isoformat(),
                         "calibration_rows": trained.production.calibration_rows,
                         "calibration_from": trained.production.calibration_start.isoformat()},
        "params": run.params | {"rounds": trained.tuning.rounds}, "calibration": trained.calibration.method,
        "metrics": run.metrics, "tracking_uri": client.tracking_uri,
        "training_engine": asdict(trained.fit), "optuna_study": shared.name if shared else None,
        "features": len(trained.model.features), "dropped_features": list(trained.data.dropped_features),
    }
    ws.model_card(model).parent.mkdir(parents=True, exist_ok=True)
    ws.model_card(model).write_text(run.card, encoding="utf-8")
    write_json(ws.train_summary(model), registry.json_ready(summary))
    write_json(ws.train_metrics(model), tracking.headline(run.metrics))
    return TrainResult(model, run.version, summary, run.metrics, trained, tuple(warnings))


# -- tune ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TuneResult:
    study: str
    model: str
    complete: int
    pruned: int
    failed: int
    ran_here: int
    best_validation_log_loss: float
    best_trial: int
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        return (
            f"Study '{self.study}': {self.complete} complete, {self.pruned} pruned, {self.failed} failed "
            f"trials (this worker ran {self.ran_here}); best validation log loss {self.best_validation_log_loss:.5f} "
            f"(trial {self.best_trial}). Train on it: tradecredit train {self.model} --study {self.study}"
        )


def tune(
    cfg: PlatformConfig, ws: Workspace, model: str, study: str, workers: int, worker_index: int = 0,
    threads: int | None = None, config_dir: Path | None = None,
) -> TuneResult:
    """Join (or start) the shared study ``study`` with ``workers`` processes on this machine and
    tune until it holds the configured number of finished trials. Other machines join by
    running the same command; ``train --study`` then trains on the study's best trial."""
    spec = model_spec(model)

    from tradecredit.training import registry, tracking
    from tradecredit.training.train import tune as tune_study
    from tradecredit.training.train import tuning_inputs
    from tradecredit.training.tuning_workers import finish_helpers, launch_tuning_helpers, shared_study, tuning_threads

    if workers < 1:
        raise StageError("--workers must be at least 1")
    frame, data_end = ws.read_training_set(model)
    model_cfg = cfg.training.model(model)
    threads = threads or tuning_threads(cfg, workers)
    shared = shared_study(cfg, model, frame, study, worker_index, threads)
    if shared is None:
        raise StageError("tune needs a shared Optuna storage (backends.tuning.url): use --profile production")
    helpers = []
    try:
        inputs = tuning_inputs(frame, model, data_end, model_cfg, cfg.training.lightgbm, cfg.labels.late_days)
        helpers = launch_tuning_helpers(ws, config_dir, model, shared.name, workers - 1, threads)
        client = registry.connect(ws, cfg.backends)
        result = tune_study(inputs.train_set, inputs.valid_set, model_cfg.tuning, inputs.base, shared,
                            [tracking.trial_logger(client, ws, spec, shared.name)])
    except (StageError, ValueError) as exc:
        raise StageError(str(exc), finish_helpers(helpers)) from None
    except BaseException:
        finish_helpers(helpers)
        raise
    warnings = finish_helpers(helpers)
    return TuneResult(shared.name, model, result.trials_completed, result.trials_pruned, result.trials_failed,
                      result.trials_run_here, result.best_validation_log_loss, result.best_trial_number, tuple(warnings))


# -- evaluate -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlicedTrainingSet:
    """The training set with a registered version's own split re-applied."""

    frame: pl.DataFrame  # with ``slice`` and ``holdout_buyer``
    plan: Any
    same_data: bool  # the data is still the data the version was trained on (fingerprint)
    data_end: date


def sliced_training_set(ws: Workspace, registered: RegisteredModel, model: str) -> SlicedTrainingSet:
    from tradecredit.training import registry
    from tradecredit.training.splits import SplitPlan, assign_slices
    from tradecredit.training.train import fingerprint

    frame, data_end = ws.read_training_set(model)
    plan = SplitPlan.from_dict(registry.run_dict(registered.client, registered.run_id, "split.json"))
    same_data = fingerprint(frame) == registry.run_tag(registered.client, registered.run_id, "data_fingerprint")
    return SlicedTrainingSet(assign_slices(frame, plan), plan, same_data, data_end)


@dataclass(frozen=True)
class EvaluateResult:
    model: str
    version: str
    document: dict[str, Any]  # what metrics.json holds
    metrics: dict[str, float]
    rows: int
    folder: Path

    def describe(self) -> str:
        note = "" if self.document["same_data_as_training"] else " (the training set changed since this version was trained)"
        m = self.metrics
        since = (f" Since its training window: AUC {m['since_training_auc']:.4f}, ECE {m['since_training_ece']:.4f} on "
                 f"{m['since_training_rows']:,.0f} rows." if "since_training_auc" in m else
                 " No row labelled since its training window yet.")
        return (
            f"Evaluated {self.model} version {self.version} on {self.rows:,} walk-forward rows of held-out buyers{note}: "
            f"AUC {m['test_auc']:.4f}, ECE {m['test_ece']:.4f}, benchmark AUC {m['benchmark_auc']:.4f}"
            + (f", no-model rule {m['no_model_auc']:.4f}" if "no_model_auc" in m else "") + f".{since} {self.folder}"
        )


def walk_forward_predictions(registered: RegisteredModel) -> pl.DataFrame:
    """The row-level walk-forward predictions a version's run logged; a version trained before
    walk-forward validation has none: train again."""
    import tempfile

    from mlflow.exceptions import MlflowException

    from tradecredit.training.tracking import PREDICTIONS_ARTIFACT

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = registered.client.download_artifacts(registered.run_id, PREDICTIONS_ARTIFACT, tmp)
        except (MlflowException, OSError):
            raise StageError(f"version {registered.version.version} of {registered.version.name} has no walk-forward "
                             f"predictions (trained by an older release): run 'tradecredit train' again") from None
        return pl.read_parquet(path)


def evaluate(cfg: PlatformConfig, ws: Workspace, model: str, version: str | None = None, truth_dir: Path | None = None) -> EvaluateResult:
    """Evaluate a registered version (default: the challenger): its walk-forward figures rebuilt
    from the run's row-level predictions, and the served model on the rows labelled since its
    training window, when the training set has any; write WORKSPACE/models/MODEL/evaluation/
    (metrics.json, plots, tables)."""
    spec = model_spec(model)

    from tradecredit.training import registry, tracking
    from tradecredit.training.evaluate import binary_metrics
    from tradecredit.training.report import write_plots
    from tradecredit.training.splits import HOLDOUT, SLICE, TEST
    from tradecredit.training.walk_forward import summarise

    registered = registry.load_registered(cfg, ws, model, version, registry.CHALLENGER)
    credit_model = registered.model
    sliced = sliced_training_set(ws, registered, model)
    model_cfg = cfg.training.model(model)
    walked = summarise(walk_forward_predictions(registered), sliced.plan, model, credit_model.label, model_cfg, cfg.policy)
    metrics = walked.flat_metrics()
    newer = rows_since_training(sliced, model_cfg.split.gap_days, spec.date_column)
    y_new = newer[credit_model.label].to_numpy().astype(int)
    if newer.height and 0 < y_new.sum() < len(y_new):
        since = binary_metrics(y_new, credit_model.predict_proba(newer), model_cfg.ece_bins)
        metrics |= {f"since_training_{k}": since[k] for k in ("rows", "positives", "auc", "ece", "observed_rate", "mean_predicted")}
    folder = ws.evaluation_dir(model)
    heldout = sliced.frame.filter((pl.col(SLICE) == TEST) & pl.col(HOLDOUT))
    write_plots(credit_model, walked.evaluation, credit_model.matrix(heldout.head(2000)), folder)
    document = {"model": model, "registered_model": registered.version.name, "version": str(registered.version.version),
                "split": sliced.plan.as_dict(), "same_data_as_training": sliced.same_data, **tracking.headline(metrics)}
    document |= {k: round(v, 6) for k, v in metrics.items() if k.startswith("since_training_")}
    write_json(ws.evaluation_metrics(model), registry.json_ready(document))
    write_json(ws.evaluation_all_metrics(model), registry.json_ready(metrics))
    return EvaluateResult(model, str(registered.version.version), document, metrics, walked.rows(holdout=True).height, folder)


def rows_since_training(sliced: SlicedTrainingSet, gap_days: int, date_column: str) -> pl.DataFrame:
    """Labelled rows of the current training set whose as-of dates are a gap past the version's
    last training row: out of time for the served model itself."""
    from datetime import timedelta

    day = pl.col(date_column) if sliced.frame.schema[date_column] == pl.Date else pl.col(date_column).dt.date()
    start = sliced.plan.production_end + timedelta(days=gap_days)
    last_complete = sliced.data_end - timedelta(days=sliced.plan.label_horizon_days)
    return sliced.frame.filter(day.is_between(start, last_complete))


# -- promote ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromoteResult:
    registered_model: str
    version: str
    decision: GateDecision
    evidence: dict[str, Any]
    previous_champion: str | None  # the champion version it replaced, if any
    override: dict[str, str] | None = None  # reason, by, at: a refused challenger promoted anyway
    override_unused: bool = False  # --override was given, but the gate passed

    @property
    def promoted(self) -> bool:
        from tradecredit.training.promote import PROMOTED

        return self.decision.decision == PROMOTED or self.override is not None

    def describe(self) -> str:
        refused = "; ".join(self.decision.reasons)
        if not self.promoted:
            return (f"Refused: {self.registered_model} version {self.version} stays challenger: {refused}. To serve it all the "
                    f"same, say why: tradecredit promote MODEL --override \"REASON\"")
        was = f" (was version {self.previous_champion})" if self.previous_champion else ""
        if self.override is not None:
            return (f"Promoted {self.registered_model} version {self.version} to champion{was} OVER the gate's refusal "
                    f"({refused}), by {self.override['by']}: {self.override['reason']}")
        e = self.evidence
        return (f"Promoted {self.registered_model} version {self.version} to champion{was}: AUC {e['challenger_auc']:.4f}, "
                f"ECE {e['ece']:.4f}, {e['monotone_violations']} monotonicity violations, "
                f"SHAP additivity error {e['shap_additivity_max_error']:.1e}."
                + (" The gate passed, so --override was not used." if self.override_unused else ""))


def promote(cfg: PlatformConfig, ws: Workspace, model: str, override: str | None = None) -> PromoteResult:
    """Run the champion gate on the challenger; move ``champion`` only if it passes, or if it
    is refused and ``override`` gives the reason to promote it anyway (the reason, the user
    and the time go on the version and into the model card). The decision and its evidence
    become tags on the challenger's version."""
    model_spec(model)
    if override is not None and not override.strip():
        raise StageError("--override needs a reason: say why this challenger should serve despite the gate")

    from tradecredit.training import registry, tracking
    from tradecredit.training.promote import PROMOTED, gate
    from tradecredit.training.splits import HOLDOUT, SLICE, TEST

    model_cfg = cfg.training.model(model)
    challenger = registry.load_registered(cfg, ws, model, None, registry.CHALLENGER)
    client, version = challenger.client, challenger.version
    sliced = sliced_training_set(ws, challenger, model)
    if not sliced.same_data:
        raise StageError(
            f"the {model} training set changed since version {version.version} was trained, so its test rows "
            f"cannot be rebuilt: run 'tradecredit train {model}' on the current data first"
        )
    try:
        champion = registry.version_by(client, model_cfg.registered_model, None, registry.CHAMPION)
        champion_model = registry.load_version(client, champion.name, champion.version) if champion.version != version.version else None
    except registry.RegistryError:
        champion, champion_model = None, None
    candidate = challenger.model
    predictions = walk_forward_predictions(challenger).filter(pl.col(HOLDOUT))
    latest = sliced.frame.filter(pl.col(SLICE) == TEST)  # the latest labelled months: the sweep's rows
    against = None if champion is None or champion_model is None else champion_scores(
        challenger, champion, champion_model, predictions, sliced, model_cfg.split.gap_days)
    decision = gate(candidate, predictions, candidate.matrix(latest), against, model_cfg, cfg.training.lightgbm.seed)
    evidence = decision.evidence | {"champion_version": str(champion.version) if champion else None}
    tags = tracking.tag_gate_decision(client, version, decision.decision, decision.reasons, evidence)
    replaced = str(champion.version) if champion is not None and champion.version != version.version else None
    overridden = None
    if decision.decision != PROMOTED and override is not None:
        overridden = tracking.tag_override(client, version, override.strip())
        _add_override_to_card(ws, client, version, model, decision.reasons, overridden)
        tags |= {f"override_{k}": v for k, v in overridden.items()}
    else:  # this decision stands on its own: an earlier override no longer describes it
        tracking.clear_override(client, version)
    if decision.decision == PROMOTED or overridden is not None:
        registry.make_champion(client, version, champion if replaced is not None else None)
    write_json(ws.promotion(model), registry.json_ready({"version": str(version.version), **tags, "evidence": evidence}))
    return PromoteResult(version.name, str(version.version), decision, evidence, replaced, overridden,
                         override_unused=override is not None and decision.decision == PROMOTED)


def champion_scores(
    challenger: RegisteredModel, champion: Any, champion_model: Any, predictions: pl.DataFrame, sliced: SlicedTrainingSet,
    gap_days: int,
) -> Any:
    """The champion's scores of the challenger's held-out walk-forward rows that are out of time
    for the champion too: its own walk-forward rows when both ran on the same data (procedure
    against procedure), else the rows a gap past the champion's training window."""
    from datetime import timedelta

    from tradecredit.training import registry
    from tradecredit.training.model import ModelInputError
    from tradecredit.training.promote import ChampionScores
    from tradecredit.training.splits import ORIGIN, SplitPlan
    from tradecredit.training.walk_forward import MODEL

    client, keys = challenger.client, [*model_spec(challenger.model.name).keys, ORIGIN]
    if registry.run_tag(client, champion.run_id, "data_fingerprint") == registry.run_tag(client, challenger.run_id, "data_fingerprint"):
        try:
            theirs = walk_forward_predictions(registry.RegisteredModel(client, champion, champion_model))
        except StageError:
            theirs = None
        if theirs is not None:
            joined = predictions.join(theirs.select(*keys, champion=MODEL), on=keys, how="inner", maintain_order="left")
            if joined.height == predictions.height:
                return ChampionScores(joined.drop("champion"), joined["champion"].to_numpy(),
                                      "the champion's own walk-forward predictions of the same rows (same data)")
    plan = SplitPlan.from_dict(registry.run_dict(client, champion.run_id, "split.json"))
    start = plan.production_end + timedelta(days=gap_days)
    date_column = plan.date_column
    day = pl.col(date_column) if predictions.schema[date_column] == pl.Date else pl.col(date_column).dt.date()
    newer = predictions.filter(day >= start)
    y = newer[challenger.model.label].to_numpy().astype(int)
    if newer.height == 0 or y.min() == y.max():
        return ChampionScores(None, None, f"none: no walk-forward row from {start} on (the champion trained on these months); "
                                          "compared with the benchmarks only")
    rows = sliced.frame.join(newer.select(*keys[:-1]), on=keys[:-1], how="semi")
    order = newer.select(*keys[:-1]).join(rows, on=keys[:-1], how="left", maintain_order="left")
    try:
        scores = champion_model.predict_proba(order)
    except ModelInputError as exc:
        return ChampionScores(None, None, f"none: the champion cannot score these rows ({exc})")
    return ChampionScores(newer, scores, f"{newer.height:,} rows from {start}, after the champion's training window")


OVERRIDE_SECTION = "\n## Promoted over the gate's refusal\n"


def _add_override_to_card(ws: Workspace, client: Any, version: Any, model: str, reasons: list[str], override: dict[str, str]) -> None:
    """The version's model card (its run's artifact, and the workspace's copy when it is this
    version's) gains the override: what was refused, who promoted it anyway, when and why. An
    earlier override's section is replaced, not repeated."""
    import tempfile

    from mlflow.exceptions import MlflowException

    section = (f"{OVERRIDE_SECTION}\nRefused because: {'; '.join(reasons)}.\n"
               f"Promoted all the same by {override['by']} at {override['at']}: {override['reason']}\n")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            card = Path(client.download_artifacts(version.run_id, "model_card.md", tmp)).read_text(encoding="utf-8")
        except (MlflowException, OSError):  # a run logged without a card
            card = f"# Model card: {model}, version {version.version}\n"
    card = card.split(OVERRIDE_SECTION, 1)[0].rstrip("\n") + "\n" + section
    client.log_text(version.run_id, card, "model_card.md")
    summary = ws.train_summary(model)
    if summary.exists() and read_json(summary).get("run_id") == version.run_id:
        ws.model_card(model).write_text(card, encoding="utf-8")


# -- score --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreResult:
    frame: pl.DataFrame
    model_version: str
    warnings: tuple[str, ...] = field(default_factory=tuple)


def score_default(cfg: PlatformConfig, ws: Workspace, entities: pl.DataFrame, version: str | None = None) -> ScoreResult:
    """``buyer_id, as_of_ts, pd_12m, grade, model_version, features_found`` for each entity row,
    in order. ``features_found`` is false for a row with no feature snapshot at all (an unknown
    buyer, or a time before its first snapshot): its PD is the model's answer for a blank."""
    from tradecredit.features.pipeline import point_in_time_features
    from tradecredit.training import registry
    from tradecredit.training.scoring import score_buyers

    registered = registry.load_registered(cfg, ws, "default", version, registry.CHAMPION)
    features = point_in_time_features(cfg, ws, model_spec("default").feature_service, entities)
    version_number = str(registered.version.version)
    scored = score_buyers(features, registered.model, version_number, cfg.policy)
    missing = int((~scored["features_found"]).sum())
    warnings = (f"{missing:,} row(s) have no feature snapshot (unknown buyer or before its first): "
                "scored from blanks, marked features_found = false",) if missing else ()
    return ScoreResult(scored.select("buyer_id", "as_of_ts", "pd_12m", "grade", "model_version", "features_found"), version_number, warnings)


def score_late(cfg: PlatformConfig, ws: Workspace, invoice_ids: pl.DataFrame, version: str | None = None) -> ScoreResult:
    """``invoice_id, p_late, model_version`` for invoices of the loaded ledger, each scored as of
    the day before its issue date (what was known when the order arrived)."""
    from tradecredit.features.pipeline import open_feature_store
    from tradecredit.features.training_sets import late_rows
    from tradecredit.training import registry

    if "invoice_id" not in invoice_ids.columns:
        raise StageError("the invoices file needs an invoice_id column")
    if invoice_ids["invoice_id"].null_count():
        rows = (invoice_ids.with_row_index("row").filter(pl.col("invoice_id").is_null())["row"] + 2).to_list()[:10]
        raise StageError(f"the invoices file has empty invoice_id on line(s) {', '.join(map(str, rows))}")
    registered = registry.load_registered(cfg, ws, "late", version, registry.CHAMPION)
    invoices = ws.read_ledger_table("invoices", ["invoice_id", "buyer_id", "issued_on", "amount", "terms_days"])
    wanted = invoice_ids.select(pl.col("invoice_id").cast(pl.String))
    joined = wanted.join(invoices, on="invoice_id", how="left", maintain_order="left")
    unknown = joined.filter(pl.col("buyer_id").is_null())["invoice_id"].to_list()
    if unknown:
        shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        raise StageError(f"{len(unknown)} invoice_id(s) are not in the loaded ledger: {shown}")
    rows = late_rows(open_feature_store(cfg, ws), joined)
    version_number = str(registered.version.version)
    frame = rows.select("invoice_id", p_late=pl.Series(registered.model.predict_proba(rows), dtype=pl.Float64),
                        model_version=pl.lit(version_number))
    return ScoreResult(frame, version_number)
