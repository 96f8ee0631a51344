"""``tradecredit train | evaluate | promote | score``: thin commands over the training stages.

MLflow and LightGBM are imported inside the commands: they take seconds to import, and
``tradecredit simulate`` should not wait for them.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import asdict
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import polars as pl
import typer

from tradecredit.cli_support import config_of, fail, read_table, write_table
from tradecredit.config import PlatformConfig
from tradecredit.workspace import Workspace

if TYPE_CHECKING:
    from tradecredit.training.promote import GateDecision
    from tradecredit.training.train import TrainedModel

MODELS = ("default", "late")
EXPERIMENTS = {"default": "tradecredit-default-12m", "late": "tradecredit-late-30d"}
ModelName = Annotated[str, typer.Argument(help="Which model: default (12-month PD) or late (late_30d of an order).")]
Version = Annotated[str | None, typer.Option("--model-version", help="A registered version number (default: the alias's).")]
Truth = Annotated[
    Path | None,
    typer.Option("--truth", help="Simulator truth folder for oracle metrics (default: WORKSPACE/simulated/truth when it matches)."),
]

score_app = typer.Typer(help="Score entity rows or invoices in batch with a registered model.", no_args_is_help=True)


def _check_model(model: str) -> None:
    if model not in MODELS:
        raise fail(f"unknown model '{model}': choose {', '.join(MODELS)}")


def config_sha256(cfg: PlatformConfig) -> str:
    return hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()


def read_training_set(ws: Workspace, model: str) -> tuple[pl.DataFrame, date]:
    path, summary = ws.training_sets / f"{model}.parquet", ws.training_sets / f"{model}_summary.json"
    if not path.exists() or not summary.exists():
        raise fail(f"no {model} training set in {ws.training_sets}: run 'tradecredit features training-set {model}'")
    data_end = json.loads(summary.read_text(encoding="utf-8")).get("data_end")
    if data_end is None:
        raise fail(f"{summary.name} predates this version: run 'tradecredit features training-set {model}' again")
    return pl.read_parquet(path), date.fromisoformat(data_end)


def read_truth(folder: Path | None, ws: Workspace, model: str, data_end: date, explicit: bool) -> pl.DataFrame | None:
    """The simulator's true probabilities, keyed like the training rows, if the folder belongs
    to this ledger (same data end); None for a user's own data."""
    folder = folder or ws.simulated / "truth"
    summary = folder / "summary.json"
    if not summary.exists():
        if explicit:
            raise fail(f"--truth {folder}: no summary.json there")
        return None
    if json.loads(summary.read_text(encoding="utf-8"))["data_end"] != data_end.isoformat():
        if explicit:
            raise fail(f"--truth {folder}: its data ends on another date than the training set ({data_end})")
        return None
    if model == "default":
        truth = pl.read_parquet(folder / "buyer_month_pd.parquet")
        return truth.select("buyer_id", as_of_ts=pl.col("as_of_date").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"), truth="pd_12m")
    return pl.read_parquet(folder / "invoice_late.parquet").select("invoice_id", truth="p_late_30d")


def tracking_uri_of(ws: Workspace, cfg: PlatformConfig) -> str:
    from tradecredit.training.registry import tracking_uri

    return tracking_uri(ws, cfg.backends)


def _ready(value: Any) -> Any:
    from tradecredit.training.registry import json_ready

    return json_ready(value)


def _label_params(cfg: PlatformConfig) -> dict[str, int]:
    return {"default_days_past_due": cfg.labels.default_days_past_due, "late_days": cfg.labels.late_days}


def _tuning_threads(cfg: PlatformConfig, workers: int) -> int:
    # Workers on one machine share its cores: two workers of two threads on two cores lose time to switching.
    return max(1, cfg.training.lightgbm.num_threads // workers)


def launch_tuning_helpers(
    ws: Workspace, config_dir: Path | None, model: str, study: str, count: int, threads: int
) -> list[tuple[subprocess.Popen[bytes], Path]]:
    """``count`` more ``tradecredit tune`` processes on this machine, joining ``study``; each
    writes its output to WORKSPACE/models/MODEL/tuning-worker-N.log."""
    program = Path(sys.executable).with_name("tradecredit")
    base = [str(program)] if program.exists() else [sys.executable, "-m", "tradecredit.cli"]
    folder = ws.models / model
    folder.mkdir(parents=True, exist_ok=True)
    helpers = []
    for index in range(1, count + 1):
        log = folder / f"tuning-worker-{index}.log"
        command = [*base, "--workspace", str(ws.root), *(["--config-dir", str(config_dir)] if config_dir else []),
                   "tune", model, "--study", study, "--worker-index", str(index), "--threads", str(threads)]
        with log.open("wb") as out:
            helpers.append((subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT), log))
    return helpers


def finish_helpers(helpers: list[tuple[subprocess.Popen[bytes], Path]], seconds: float = 120) -> None:
    """Wait for the helpers; one that failed or hangs is reported (its trials are already in the
    study, or were failed and retried by the heartbeat), never silently dropped."""
    for process, log in helpers:
        try:
            code = process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        if code != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            typer.echo(f"warning: tuning worker {process.pid} ended with status {code} ({log}): {' / '.join(tail)}", err=True)


def shared_study(cfg: PlatformConfig, model: str, frame: pl.DataFrame, study: str | None, worker_index: int, threads: int | None) -> Any:
    """The shared study this run tunes on, when the profile names an Optuna storage; None
    (tuning in memory) otherwise."""
    from tradecredit.training.shared_tuning import SharedStudy
    from tradecredit.training.train import fingerprint

    if not cfg.backends.tuning.url:
        if study:
            raise fail("--study needs a shared Optuna storage (backends.tuning.url; the production profile sets PostgreSQL)")
        return None
    name = study or f"{model}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{os.getpid()}"
    return SharedStudy.of(cfg.backends.tuning, name, fingerprint(frame), worker_index, threads)


def trial_logger(client: Any, ws: Workspace, model: str, study: str) -> Any:
    from tradecredit.training import registry
    from tradecredit.training.shared_tuning import MlflowTrialLogger

    return MlflowTrialLogger(client, registry.experiment_id(client, f"{EXPERIMENTS[model]}-tuning", ws), study)


def run_train(
    cfg: PlatformConfig, ws: Workspace, model: str, truth_dir: Path | None = None, study: str | None = None,
    config_dir: Path | None = None,
) -> dict[str, Any]:
    """Train, evaluate, log to MLflow, register a version with the alias ``challenger``, and
    write the summary, model card and plots under WORKSPACE/models/MODEL. With a shared Optuna
    storage, tuning runs on a study there with ``backends.tuning.workers`` processes; with the
    dask engine, the final booster is fitted on the Dask cluster."""
    import mlflow

    from tradecredit.training import registry
    from tradecredit.training.report import model_card, write_plots
    from tradecredit.training.shared_tuning import StudyError
    from tradecredit.training.splits import TEST
    from tradecredit.training.train import TrainingError, train

    _check_model(model)
    frame, data_end = read_training_set(ws, model)
    truth = read_truth(truth_dir, ws, model, data_end, explicit=truth_dir is not None)
    model_cfg = cfg.training.model(model)
    client = registry.connect(ws, cfg.backends)
    workers = cfg.backends.tuning.workers
    threads = _tuning_threads(cfg, workers)
    shared = shared_study(cfg, model, frame, study, 0, threads)
    helpers, callbacks = [], []
    try:
        if shared is not None:
            # Whoever comes first creates the study; every worker checks the data's fingerprint.
            helpers = launch_tuning_helpers(ws, config_dir, model, shared.name, workers - 1, threads)
            callbacks = [trial_logger(client, ws, model, shared.name)]
        dask = cfg.backends.dask if cfg.backends.training_engine == "dask" else None
        trained = train(frame, model, data_end, model_cfg, cfg.training.lightgbm, cfg.policy, cfg.labels.late_days, truth,
                        shared=shared, dask=dask, tuning_callbacks=callbacks)
    except (TrainingError, StudyError, ValueError) as exc:
        raise fail(str(exc)) from None
    finally:
        finish_helpers(helpers)

    out = ws.models / model
    report_dir = out / "report"
    x_test = trained.model.matrix(trained.data.rows(TEST, holdout=True))
    files = write_plots(trained.model, trained.evaluation, x_test.head(2000), report_dir)
    experiment = registry.experiment_id(client, EXPERIMENTS[model], ws)
    cfg_hash = config_sha256(cfg)
    metrics = trained.evaluation.flat_metrics() | {
        "calibration_log_loss_raw": trained.calibration_log_loss["raw"],
        "calibration_log_loss_calibrated": trained.calibration_log_loss["calibrated"],
        "tuning_best_validation_log_loss": trained.tuning.best_validation_log_loss,
        "tuning_trials_completed": trained.tuning.trials_completed,
        "tuning_trials_pruned": trained.tuning.trials_pruned,
        "tuning_seconds": trained.tuning.seconds,
        "tuning_trials_failed": trained.tuning.trials_failed,
        "fit_seconds": trained.fit.seconds,
        "train_seconds": trained.seconds,
        "explain_ms_per_row": trained.explain.explain_ms_per_row,
        "score_ms_per_row": trained.explain.score_ms_per_row,
        "trees": trained.explain.trees,
        "leaves": trained.explain.leaves,
    }
    with mlflow.start_run(experiment_id=experiment, run_name=f"{model}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}") as run:
        mlflow.set_tags({"model": model, "label": trained.model.label, "config_sha256": cfg_hash,
                         "data_fingerprint": trained.data.fingerprint, "data_end": data_end.isoformat(),
                         "training_engine": trained.fit.engine, "fit_workers": str(trained.fit.workers),
                         "optuna_study": shared.name if shared else "in memory"})
        params = {k: v for k, v in trained.params.items() if k != "monotone_constraints"}
        mlflow.log_params(params | {"rounds": trained.tuning.rounds, "calibration": trained.calibration.calibrator.method,
                                    "split": trained.data.plan.describe()[:500], "features": len(trained.model.features)})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        mlflow.log_dict(_ready(cfg.model_dump(mode="json")), "config/resolved_config.json")
        mlflow.log_dict(trained.data.plan.as_dict(), "split.json")
        mlflow.log_dict(_ready({"slice_rows": trained.slice_rows, "excluded": trained.data.excluded,
                                "tuning": asdict(trained.tuning), "calibration_cv_log_loss": trained.calibration.cv_log_loss}),
                        "training_summary.json")
        for path in [*files.plots, *files.tables]:
            mlflow.log_artifact(str(path), "report")
        logged = registry.log_model_version(trained.model, x_test.head(5), model_cfg.registered_model)
        card = model_card(
            model=trained.model, version=logged.version, split=trained.data.plan.describe(), slice_rows=trained.slice_rows,
            excluded=trained.data.excluded, evaluation=trained.evaluation,
            calibration={"method": trained.calibration.calibrator.method,
                         "cv_log_loss": {k: round(v, 5) for k, v in trained.calibration.cv_log_loss.items()}},
            explain=asdict(trained.explain), tuning=asdict(trained.tuning), label_params=_label_params(cfg),
            config_sha256=cfg_hash, data_fingerprint=trained.data.fingerprint,
        )
        mlflow.log_text(card, "model_card.md")
    client.set_registered_model_alias(model_cfg.registered_model, registry.CHALLENGER, logged.version)
    for key, value in {"run_id": run.info.run_id, "test_auc": f"{metrics['test_auc']:.4f}",
                       "benchmark_auc": f"{metrics['benchmark_auc']:.4f}", "data_fingerprint": trained.data.fingerprint,
                       "config_sha256": cfg_hash}.items():
        client.set_model_version_tag(model_cfg.registered_model, logged.version, key, value)

    summary = {
        "model": model, "registered_model": logged.name, "version": logged.version, "run_id": logged.run_id,
        "alias": registry.CHALLENGER, "split": trained.data.plan.as_dict(), "slice_rows": trained.slice_rows,
        "params": params | {"rounds": trained.tuning.rounds}, "calibration": trained.calibration.calibrator.method,
        "metrics": metrics, "tracking_uri": client.tracking_uri,
        "training_engine": asdict(trained.fit), "optuna_study": shared.name if shared else None,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "model_card.md").write_text(card, encoding="utf-8")
    (out / "train_summary.json").write_text(json.dumps(_ready(summary), indent=2) + "\n", encoding="utf-8")
    (out / "metrics.json").write_text(json.dumps(_ready(_headline(metrics)), indent=2) + "\n", encoding="utf-8")
    typer.echo(_headline_text(model, logged.version, metrics, trained))
    return summary


HEADLINE_KEYS = ("test_auc", "test_gini", "test_ks", "test_brier", "test_log_loss", "test_ece", "test_pr_auc",
                 "benchmark_auc", "auc_lift_over_benchmark", "oracle_auc", "oracle_auc_ratio", "oracle_ece",
                 "oracle_model_ece_same_rows", "explain_ms_per_row")


def _headline(metrics: dict[str, float]) -> dict[str, float]:
    return {k: round(float(metrics[k]), 6) for k in HEADLINE_KEYS if k in metrics}


def _headline_text(model: str, version: str, m: dict[str, float], trained: TrainedModel) -> str:
    text = (
        f"Trained {model} model version {version} (alias challenger): out-of-time AUC {m['test_auc']:.4f}, "
        f"Gini {m['test_gini']:.4f}, KS {m['test_ks']:.4f}, ECE {m['test_ece']:.4f}; logistic benchmark AUC "
        f"{m['benchmark_auc']:.4f} ({m['auc_lift_over_benchmark']:+.4f})"
    )
    if "oracle_auc" in m:
        text += f"; oracle AUC {m['oracle_auc']:.4f} (model/oracle {m['oracle_auc_ratio']:.3f})"
    failed = f" + {trained.tuning.trials_failed} failed" if trained.tuning.trials_failed else ""
    where = f"; fitted on Dask ({trained.fit.workers} workers) in {trained.fit.seconds:.1f} s" if trained.fit.engine == "dask" else ""
    return text + (
        f". {trained.explain.trees} trees, explain {trained.explain.explain_ms_per_row:.2f} ms/row; "
        f"{trained.tuning.trials_completed} trials + {trained.tuning.trials_pruned} pruned{failed} in {trained.tuning.seconds:.0f} s{where}."
    )


def run_tune(
    cfg: PlatformConfig, ws: Workspace, model: str, study: str, workers: int, worker_index: int = 0,
    threads: int | None = None, config_dir: Path | None = None,
) -> dict[str, int]:
    """Join (or start) the shared study ``study`` with ``workers`` processes on this machine and
    tune until it holds the configured number of finished trials. Other machines join by
    running the same command; ``train --study`` then trains on the study's best trial."""
    from tradecredit.training import registry
    from tradecredit.training.shared_tuning import StudyError
    from tradecredit.training.train import TrainingError, tune, tuning_inputs

    _check_model(model)
    if workers < 1:
        raise fail("--workers must be at least 1")
    frame, data_end = read_training_set(ws, model)
    model_cfg = cfg.training.model(model)
    threads = threads or _tuning_threads(cfg, workers)
    shared = shared_study(cfg, model, frame, study, worker_index, threads)
    if shared is None:
        raise fail("tune needs a shared Optuna storage (backends.tuning.url): use --profile production")
    helpers = []
    try:
        inputs = tuning_inputs(frame, model, data_end, model_cfg, cfg.training.lightgbm, cfg.labels.late_days)
        helpers = launch_tuning_helpers(ws, config_dir, model, shared.name, workers - 1, threads)
        client = registry.connect(ws, cfg.backends)
        result = tune(inputs.train_set, inputs.valid_set, model_cfg.tuning, inputs.base, shared,
                      [trial_logger(client, ws, model, shared.name)])
    except (TrainingError, StudyError, ValueError) as exc:
        raise fail(str(exc)) from None
    finally:
        finish_helpers(helpers)
    typer.echo(
        f"Study '{shared.name}': {result.trials_completed} complete, {result.trials_pruned} pruned, {result.trials_failed} failed "
        f"trials (this worker ran {result.trials_run_here}); best validation log loss {result.best_validation_log_loss:.5f} "
        f"(trial {result.best_trial_number}). Train on it: tradecredit train {model} --study {shared.name}"
    )
    return {"complete": result.trials_completed, "pruned": result.trials_pruned, "fail": result.trials_failed, "ran": result.trials_run_here}


def find_version(cfg: PlatformConfig, ws: Workspace, model: str, version: str | None, alias: str) -> tuple[Any, Any]:
    """(client, model version) of a version number or the alias's version; a clear error if none."""
    from tradecredit.training import registry

    client = registry.connect(ws, cfg.backends)
    try:
        found = registry.version_by(client, cfg.training.model(model).registered_model, version, alias)
    except registry.RegistryError as exc:
        hint = "" if version else f": run 'tradecredit train {model}'" + (f" and 'tradecredit promote {model}'" if alias == registry.CHAMPION else "")
        raise fail(f"{exc}{hint}") from None
    return client, found


def registered_version(cfg: PlatformConfig, ws: Workspace, model: str, version: str | None, alias: str) -> tuple[Any, Any, Any]:
    """(client, model version, native model) of a version number or the alias's version."""
    from tradecredit.training import registry

    client, found = find_version(cfg, ws, model, version, alias)
    return client, found, registry.load_version(client, found.name, found.version)


def sliced_training_set(client: Any, found: Any, ws: Workspace, model: str) -> tuple[pl.DataFrame, Any, bool, date]:
    """The training set with the version's own split re-applied, whether the data is still the
    data it was trained on (fingerprint), and the training set's data end."""
    from tradecredit.training import registry
    from tradecredit.training.splits import SplitPlan, assign_slices
    from tradecredit.training.train import fingerprint

    frame, data_end = read_training_set(ws, model)
    plan = SplitPlan.from_dict(registry.run_dict(client, found.run_id, "split.json"))
    same_data = fingerprint(frame) == client.get_run(found.run_id).data.tags.get("data_fingerprint")
    return assign_slices(frame, plan), plan, same_data, data_end


def run_evaluate(cfg: PlatformConfig, ws: Workspace, model: str, version: str | None = None, truth_dir: Path | None = None) -> dict[str, Any]:
    """Evaluate a registered version (default: the challenger) on its out-of-time test slice of
    the current training set; write WORKSPACE/models/MODEL/evaluation/ (metrics.json, plots, tables)."""
    from tradecredit.training import registry
    from tradecredit.training.evaluate import fit_benchmark
    from tradecredit.training.report import write_plots
    from tradecredit.training.splits import HOLDOUT, SLICE, TEST, TRAIN
    from tradecredit.training.train import evaluate_slices, training_rows

    _check_model(model)
    client, found, credit_model = registered_version(cfg, ws, model, version, registry.CHALLENGER)
    frame, plan, same_data, data_end = sliced_training_set(client, found, ws, model)
    truth = read_truth(truth_dir, ws, model, data_end, explicit=truth_dir is not None)
    model_cfg = cfg.training.model(model)
    seed = cfg.training.lightgbm.seed
    train_rows = training_rows(frame.filter(pl.col(SLICE) == TRAIN), model, model_cfg, seed)
    benchmark = fit_benchmark(credit_model.matrix(train_rows), train_rows[credit_model.label].to_numpy(), seed)
    evaluation = evaluate_slices(credit_model, frame, benchmark, truth, model_cfg, cfg.policy)
    folder = ws.models / model / "evaluation"
    heldout = frame.filter((pl.col(SLICE) == TEST) & pl.col(HOLDOUT))
    write_plots(credit_model, evaluation, credit_model.matrix(heldout.head(2000)), folder)
    metrics = evaluation.flat_metrics()
    result = {"model": model, "registered_model": found.name, "version": str(found.version), "split": plan.as_dict(),
              "same_data_as_training": same_data, **_headline(metrics)}
    (folder / "metrics.json").write_text(json.dumps(_ready(result), indent=2) + "\n", encoding="utf-8")
    (folder / "all_metrics.json").write_text(json.dumps(_ready(metrics), indent=2) + "\n", encoding="utf-8")
    note = "" if same_data else " (the training set changed since this version was trained)"
    typer.echo(
        f"Evaluated {model} version {found.version} on {len(evaluation.label):,} out-of-time rows of held-out buyers{note}: "
        f"AUC {metrics['test_auc']:.4f}, ECE {metrics['test_ece']:.4f}, benchmark AUC {metrics['benchmark_auc']:.4f}. {folder}"
    )
    return result


def run_promote(cfg: PlatformConfig, ws: Workspace, model: str) -> GateDecision:
    """Run the champion gate on the challenger; move ``champion`` only if it passes. The
    decision and its evidence become tags on the challenger's version."""
    from tradecredit.training import registry
    from tradecredit.training.promote import PROMOTED, gate
    from tradecredit.training.splits import HOLDOUT, SLICE, TEST

    _check_model(model)
    model_cfg = cfg.training.model(model)
    client, challenger, challenger_model = registered_version(cfg, ws, model, None, registry.CHALLENGER)
    frame, _, same_data, _ = sliced_training_set(client, challenger, ws, model)
    if not same_data:
        raise fail(
            f"the {model} training set changed since version {challenger.version} was trained, so its test rows "
            f"cannot be rebuilt: run 'tradecredit train {model}' on the current data first"
        )
    try:
        champion = registry.version_by(client, model_cfg.registered_model, None, registry.CHAMPION)
        champion_model = registry.load_version(client, champion.name, champion.version) if champion.version != challenger.version else None
    except registry.RegistryError:
        champion, champion_model = None, None
    heldout = frame.filter((pl.col(SLICE) == TEST) & pl.col(HOLDOUT))
    run_metrics = client.get_run(challenger.run_id).data.metrics
    decision = gate(
        challenger_model, champion_model, challenger_model.matrix(heldout), heldout,
        heldout[challenger_model.label].to_numpy().astype(int), float(run_metrics["benchmark_auc"]), model_cfg,
        cfg.training.lightgbm.seed,
    )
    evidence = decision.evidence | {"champion_version": str(champion.version) if champion else None}
    tags = {
        "gate_decision": decision.decision,
        "gate_reasons": "; ".join(decision.reasons) or "all checks passed",
        "gate_evidence": json.dumps(_ready(evidence)),
        "gate_checked_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    for key, value in tags.items():
        client.set_model_version_tag(challenger.name, challenger.version, key, value)
    if decision.decision == PROMOTED:
        client.set_registered_model_alias(challenger.name, registry.CHAMPION, challenger.version)
        if champion is not None and champion.version != challenger.version:
            client.set_model_version_tag(champion.name, champion.version, "superseded_by", challenger.version)
    out = ws.models / model
    out.mkdir(parents=True, exist_ok=True)
    (out / "promotion.json").write_text(
        json.dumps(_ready({"version": str(challenger.version), **tags, "evidence": evidence}), indent=2) + "\n", encoding="utf-8"
    )
    if decision.decision == PROMOTED:
        was = f" (was version {champion.version})" if champion and champion.version != challenger.version else ""
        typer.echo(f"Promoted {challenger.name} version {challenger.version} to champion{was}: AUC {evidence['challenger_auc']:.4f}, "
                   f"ECE {evidence['ece']:.4f}, {evidence['monotone_violations']} monotonicity violations, "
                   f"SHAP additivity error {evidence['shap_additivity_max_error']:.1e}.")
    else:
        typer.echo(f"Refused: {challenger.name} version {challenger.version} stays challenger: " + "; ".join(decision.reasons), err=True)
    return decision


def score_default_rows(cfg: PlatformConfig, ws: Workspace, entities: pl.DataFrame, version: str | None) -> pl.DataFrame:
    """``buyer_id, as_of_ts, pd_12m, grade, model_version, features_found`` for each entity row,
    in order. ``features_found`` is false for a row with no feature snapshot at all (an unknown
    buyer, or a time before its first snapshot): its PD is the model's answer for a blank."""
    from tradecredit.features.cli import paths_of
    from tradecredit.features.paths import FeatureStoreError
    from tradecredit.features.store import historical_features, open_store
    from tradecredit.grades import grade_of
    from tradecredit.training import registry

    _, found, credit_model = registered_version(cfg, ws, "default", version, registry.CHAMPION)
    try:
        features = historical_features(open_store(paths_of(ws), cfg.features, cfg.backends), "default", entities)
    except FeatureStoreError as exc:
        raise fail(str(exc)) from None
    pd_12m = credit_model.predict(features)
    found_any = features.select(pl.any_horizontal(pl.col(credit_model.features).is_not_null()).alias("f"))["f"]
    if not found_any.all():
        typer.echo(f"{(~found_any).sum():,} row(s) have no feature snapshot (unknown buyer or before its first): "
                   "scored from blanks, marked features_found = false", err=True)
    return features.select("buyer_id", "as_of_ts").with_columns(
        pd_12m=pl.Series(pd_12m), grade=pl.Series(grade_of(pd_12m, cfg.policy)).cast(pl.Int64),
        model_version=pl.lit(str(found.version)), features_found=found_any,
    )


def score_late_rows(cfg: PlatformConfig, ws: Workspace, invoice_ids: pl.DataFrame, version: str | None) -> pl.DataFrame:
    """``invoice_id, p_late, model_version`` for invoices of the loaded ledger, each scored as of
    the day before its issue date (what was known when the order arrived)."""
    from tradecredit.features.cli import paths_of
    from tradecredit.features.paths import FeatureStoreError
    from tradecredit.features.store import historical_features, open_store
    from tradecredit.features.training_sets import order_features
    from tradecredit.ledger import LedgerError, read_normalised_table
    from tradecredit.training import registry

    if "invoice_id" not in invoice_ids.columns:
        raise fail("the invoices file needs an invoice_id column")
    if invoice_ids["invoice_id"].null_count():
        rows = (invoice_ids.with_row_index("row").filter(pl.col("invoice_id").is_null())["row"] + 2).to_list()[:10]
        raise fail(f"the invoices file has empty invoice_id on line(s) {', '.join(map(str, rows))}")
    _, found, credit_model = registered_version(cfg, ws, "late", version, registry.CHAMPION)
    try:
        invoices = read_normalised_table(ws.ledger, "invoices", ["invoice_id", "buyer_id", "issued_on", "amount", "terms_days"])
    except LedgerError as exc:
        raise fail(str(exc)) from None
    wanted = invoice_ids.select(pl.col("invoice_id").cast(pl.String))
    joined = wanted.join(invoices, on="invoice_id", how="left", maintain_order="left")
    unknown = joined.filter(pl.col("buyer_id").is_null())["invoice_id"].to_list()
    if unknown:
        shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        raise fail(f"{len(unknown)} invoice_id(s) are not in the loaded ledger: {shown}")
    try:
        features = historical_features(open_store(paths_of(ws), cfg.features, cfg.backends), "late",
                                       joined.select("buyer_id", as_of_ts=pl.col("issued_on") - pl.duration(days=1)))
    except FeatureStoreError as exc:
        raise fail(str(exc)) from None
    rows = order_features(pl.concat([joined.select("invoice_id", "issued_on", "amount", "terms_days"), features.drop("buyer_id")], how="horizontal"))
    return rows.select("invoice_id", p_late=pl.Series(credit_model.predict(rows)), model_version=pl.lit(str(found.version)))


def register(app: typer.Typer) -> None:
    """Add train, evaluate, promote and score to the main program."""

    @app.command()
    def tune(
        ctx: typer.Context,
        model: ModelName,
        study: Annotated[str, typer.Option("--study", help="Name of the shared Optuna study to start or join.")],
        workers: Annotated[int, typer.Option("--workers", help="Tuning processes to run on this machine.")] = 1,
        worker_index: Annotated[int, typer.Option("--worker-index", hidden=True)] = 0,
        threads: Annotated[int | None, typer.Option("--threads", hidden=True)] = None,
    ) -> None:
        """Tune MODEL on a shared Optuna study (production profile): run it on several machines
        with the same --study, then 'train MODEL --study NAME'."""
        run_tune(config_of(ctx), ctx.obj.workspace, model, study, workers, worker_index, threads, ctx.obj.config_dir)

    @app.command()
    def train(
        ctx: typer.Context,
        model: ModelName,
        truth: Truth = None,
        study: Annotated[
            str | None, typer.Option("--study", help="Tune on this shared Optuna study (it may already hold trials from 'tune').")
        ] = None,
    ) -> None:
        """Tune, train, calibrate and evaluate a model; log it to MLflow and register it as challenger."""
        run_train(config_of(ctx), ctx.obj.workspace, model, truth, study, ctx.obj.config_dir)

    @app.command()
    def evaluate(ctx: typer.Context, model: ModelName, version: Version = None, truth: Truth = None) -> None:
        """Evaluate a registered version (default: the challenger) on its out-of-time test slice."""
        run_evaluate(config_of(ctx), ctx.obj.workspace, model, version, truth)

    @app.command()
    def promote(ctx: typer.Context, model: ModelName) -> None:
        """Make the challenger champion if it passes the gate (AUC, calibration, monotonicity, SHAP)."""
        from tradecredit.training.promote import PROMOTED

        if run_promote(config_of(ctx), ctx.obj.workspace, model).decision != PROMOTED:
            raise typer.Exit(code=1)

    app.add_typer(score_app, name="score")


@score_app.command("default")
def score_default(
    ctx: typer.Context,
    entities: Annotated[Path, typer.Option("--entities", help="CSV or Parquet with buyer_id, as_of_ts.")],
    out: Annotated[Path, typer.Option("--out", help="CSV or Parquet to write: buyer_id, as_of_ts, pd_12m, grade, model_version.")],
    version: Version = None,
) -> None:
    """12-month PD and grade for each (buyer_id, as_of_ts), with the champion or --model-version."""
    _write_scores(score_default_rows(config_of(ctx), ctx.obj.workspace, read_table(entities), version), out)


@score_app.command("late")
def score_late(
    ctx: typer.Context,
    invoices: Annotated[Path, typer.Option("--invoices", help="CSV or Parquet with an invoice_id column (invoices of the loaded ledger).")],
    out: Annotated[Path, typer.Option("--out", help="CSV or Parquet to write: invoice_id, p_late, model_version.")],
    version: Version = None,
) -> None:
    """Probability that each invoice is paid 30+ days late, as of the day before its issue date."""
    _write_scores(score_late_rows(config_of(ctx), ctx.obj.workspace, read_table(invoices), version), out)


def _write_scores(scored: pl.DataFrame, out: Path) -> None:
    write_table(scored, out)
    version = scored["model_version"][0] if scored.height else "-"
    typer.echo(f"Scored {scored.height:,} rows with model version {version}: {out}")
