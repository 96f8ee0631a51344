"""MLflow bookkeeping of the training stages: a training run with its parameters, metrics,
artefacts, model card and registered version; the gate's decision as tags on a version."""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient

from tradecredit.config import PlatformConfig
from tradecredit.model_specs import ModelSpec
from tradecredit.training import registry
from tradecredit.training.report import model_card
from tradecredit.training.train import TrainedModel
from tradecredit.workspace import Workspace, read_json

HEADLINE_KEYS = ("test_auc", "test_auc_sd", "test_gini", "test_ks", "test_brier", "test_log_loss", "test_ece", "test_ece_sd",
                 "test_pr_auc", "test_all_buyers_auc", "test_all_buyers_ece", "benchmark_auc", "no_model_auc",
                 "auc_lift_over_benchmark", "auc_lift_over_no_model", "walk_forward_origins", "oracle_auc",
                 "oracle_auc_ratio", "oracle_ece", "oracle_model_ece_same_rows", "served_model_rows_share", "explain_ms_per_row")
# The walk-forward's row-level predictions: the gate and ``evaluate`` recompute every figure from them.
PREDICTIONS_ARTIFACT = "walk_forward/predictions.parquet"


def headline(metrics: dict[str, float]) -> dict[str, float]:
    """The metrics DVC tracks (``metrics.json``), rounded."""
    return {k: round(float(metrics[k]), 6) for k in HEADLINE_KEYS if k in metrics}


def config_sha256(cfg: PlatformConfig) -> str:
    return hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()


def training_metrics(trained: TrainedModel) -> dict[str, float]:
    """Every metric a training run logs: the walk-forward's plus the served fit, tuning and cost."""
    rows = trained.slice_rows
    return trained.flat_metrics() | {
        "served_model_rows": rows["served_model"],
        "served_model_rows_share": rows["served_model"] / max(rows["labelled"], 1),
        "served_model_rounds": trained.production.rounds,
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


@dataclass(frozen=True)
class TrackedRun:
    version: str
    run_id: str
    registered_model: str
    metrics: dict[str, float]
    params: dict[str, Any]
    card: str


def log_training_run(
    client: MlflowClient, ws: Workspace, cfg: PlatformConfig, spec: ModelSpec, trained: TrainedModel, data_end: date,
    study: str | None, report_files: list[Path], example: pd.DataFrame,
) -> TrackedRun:
    """One MLflow run of a trained model: tags, parameters, metrics, the resolved config, the
    split, the report's plots and tables, the model card, and a new registered version with the
    alias ``challenger`` and the run's headline figures as version tags."""
    registered_model = registry.registered_name(cfg, spec.name)
    experiment = registry.experiment_id(client, spec.experiment, ws)
    cfg_hash = config_sha256(cfg)
    metrics = training_metrics(trained)
    params = {k: v for k, v in trained.params.items() if k != "monotone_constraints"}
    # What the label means and what the ledger could feed travel with the version (model card, tags).
    training_set_summary = read_json(ws.training_set_summary(spec.name))
    sources = read_json(ws.build_summary).get("sources", {}) if ws.build_summary.exists() else {}
    with mlflow.start_run(experiment_id=experiment, run_name=f"{spec.name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}") as run:
        mlflow.set_tags({"model": spec.name, "label": trained.model.label, "config_sha256": cfg_hash,
                         "label_definition": str(training_set_summary.get("label_definition", {}).get("text", ""))[:5000],
                         "data_fingerprint": trained.data.fingerprint, "data_end": data_end.isoformat(),
                         "training_engine": trained.fit.engine, "fit_workers": str(trained.fit.workers),
                         "optuna_study": study or "in memory"})
        mlflow.log_params(params | {"rounds": trained.tuning.rounds, "served_rounds": trained.production.rounds,
                                    "calibration": trained.calibration.method,
                                    "split": trained.data.plan.describe()[:500], "features": len(trained.model.features),
                                    "walk_forward": trained.data.plan.describe_walk_forward()[:500]})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        mlflow.log_dict(registry.json_ready(cfg.model_dump(mode="json")), "config/resolved_config.json")
        mlflow.log_dict(trained.data.plan.as_dict(), "split.json")
        mlflow.log_dict(registry.json_ready({"slice_rows": trained.slice_rows, "excluded": trained.data.excluded,
                                             "tuning": asdict(trained.tuning), "calibration_cv_log_loss": trained.calibration.cv_log_loss}),
                        "training_summary.json")
        for path in report_files:
            mlflow.log_artifact(str(path), "report")
        with tempfile.TemporaryDirectory() as tmp:
            predictions = Path(tmp) / Path(PREDICTIONS_ARTIFACT).name
            trained.walk_forward.predictions.write_parquet(predictions)
            mlflow.log_artifact(str(predictions), str(Path(PREDICTIONS_ARTIFACT).parent))
        logged = registry.log_model_version(trained.model, example, registered_model)
        card = model_card(
            model=trained.model, version=logged.version, plan=trained.data.plan, slice_rows=trained.slice_rows,
            excluded=trained.data.excluded, evaluation=trained.evaluation, walk_forward=trained.walk_forward,
            served={"rows": trained.production.rows, "rounds": trained.production.rounds,
                    "calibration_rows": trained.production.calibration_rows,
                    "calibration_start": trained.production.calibration_start.isoformat(),
                    "last_date": trained.production.last_date.isoformat()},
            calibration={"method": trained.calibration.method,
                         "cv_log_loss": {k: round(v, 5) for k, v in trained.calibration.cv_log_loss.items()}},
            explain=asdict(trained.explain), tuning=asdict(trained.tuning),
            label_definition=training_set_summary.get("label_definition", {}), sources=sources,
            dropped_features=trained.data.dropped_features,
            config_sha256=cfg_hash, data_fingerprint=trained.data.fingerprint, left_out_views=cfg.training.model(spec.name).left_out_views,
        )
        mlflow.log_text(card, "model_card.md")
    client.set_registered_model_alias(registered_model, registry.CHALLENGER, logged.version)
    for key, value in {"run_id": run.info.run_id, "test_auc": f"{metrics['test_auc']:.4f}",
                       "benchmark_auc": f"{metrics['benchmark_auc']:.4f}", "data_fingerprint": trained.data.fingerprint,
                       "config_sha256": cfg_hash}.items():
        client.set_model_version_tag(registered_model, logged.version, key, value)
    return TrackedRun(logged.version, logged.run_id, logged.name, metrics, params, card)


def trial_logger(client: MlflowClient, ws: Workspace, spec: ModelSpec, study: str) -> Any:
    """An Optuna callback that logs each finished trial of a shared study as an MLflow run."""
    from tradecredit.training.shared_tuning import MlflowTrialLogger

    return MlflowTrialLogger(client, registry.experiment_id(client, spec.tuning_experiment, ws), study)


def tag_gate_decision(client: MlflowClient, challenger: Any, decision: str, reasons: list[str], evidence: dict[str, Any]) -> dict[str, str]:
    """The gate's decision and evidence as tags on the challenger's version; the tags."""
    tags = {
        "gate_decision": decision,
        "gate_reasons": "; ".join(reasons) or "all checks passed",
        "gate_evidence": json.dumps(registry.json_ready(evidence)),
        "gate_checked_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    for key, value in tags.items():
        client.set_model_version_tag(challenger.name, challenger.version, key, value)
    return tags


def tag_override(client: MlflowClient, challenger: Any, reason: str) -> dict[str, str]:
    """A refused challenger promoted anyway: the reason, the user and the time, as tags on its version."""
    override = {"reason": reason, "by": _user(), "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    for key, value in override.items():
        client.set_model_version_tag(challenger.name, challenger.version, f"override_{key}", value)
    return override


OVERRIDE_TAGS = ("override_reason", "override_by", "override_at")


def clear_override(client: MlflowClient, version: Any) -> None:
    """Remove an earlier override's tags from a version whose gate decision stands on its own."""
    present = client.get_model_version(version.name, version.version).tags
    for key in OVERRIDE_TAGS:
        if key in present:
            client.delete_model_version_tag(version.name, version.version, key)


def _user() -> str:
    """Who ran the command: the login name, else the uid (a container may have no passwd entry)."""
    import getpass
    import os

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"
