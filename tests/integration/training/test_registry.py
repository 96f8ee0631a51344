"""MLflow on a real SQLite database in a temporary workspace: train, register, load back,
promote, and the gate refusing a worse challenger with its reasons recorded; and, on a real
MLflow server, workers creating one experiment at once."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import mlflow
import numpy as np
import polars as pl
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from tests.model.conftest import quick
from tests.model.synthetic import synthetic_training_set
from tradecredit.cli import app
from tradecredit.config import PlatformConfig
from tradecredit.errors import StageError
from tradecredit.training import registry
from tradecredit.training.pipeline import evaluate, promote, train
from tradecredit.training.promote import PROMOTED, REFUSED
from tradecredit.workspace import Workspace


def _platform(platform: PlatformConfig, **default_updates: object) -> PlatformConfig:
    # The synthetic portfolio is small: a looser ECE bound than the repository's, unless a test
    # sets one. Two origins and two cross-fitting folds, as the integration configs have.
    quick_default = quick(platform.training.default)
    split = quick_default.split.model_copy(update={"origins": 2})
    default = quick_default.model_copy(update={"max_ece": 0.05, "split": split, "crossfit_folds": 2} | default_updates)
    return platform.model_copy(update={"training": platform.training.model_copy(update={"default": default})})


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Workspace:
    monkeypatch.delenv(registry.TRACKING_URI_ENV, raising=False)
    ws = Workspace(tmp_path / "ws")
    frame, data_end = synthetic_training_set("default", buyers=500)
    ws.training_sets.mkdir(parents=True)
    frame.write_parquet(ws.training_sets / "default.parquet")
    (ws.training_sets / "default_summary.json").write_text(json.dumps({"data_end": data_end.isoformat()}))
    return ws


def test_train_registers_a_challenger_that_loads_back_identically_and_promotes(workspace, config):
    cfg = _platform(config)
    summary = train(cfg, workspace, "default").summary
    assert summary["version"] == "1" and summary["tracking_uri"].startswith("sqlite:///")
    client = registry.connect(workspace)
    version = client.get_model_version_by_alias(cfg.training.default.registered_model, "challenger")
    assert str(version.version) == "1" and version.tags["data_fingerprint"]

    run = client.get_run(summary["run_id"])
    assert run.data.tags["config_sha256"] and run.data.metrics["test_auc"] > 0.5
    # Everything the run stored lives in the workspace, never in ./mlruns of the caller.
    assert run.info.artifact_uri.startswith(registry.artifact_root(workspace))
    assert (workspace.mlflow / "artifacts").is_dir()
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)} | {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {"model_card.md", "split.json", "config", "walk_forward", "report/roc.png", "report/calibration.png",
            "report/shap_summary.png", "report/grade_table.png"} <= artifacts

    frame = pl.read_parquet(workspace.training_sets / "default.parquet").head(300)
    native = registry.load_version(client, version.name, version.version)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{version.name}/{version.version}")
    from_pyfunc = pyfunc.predict(registry.pyfunc_input(native, native.matrix(frame)))["probability"].to_numpy()
    np.testing.assert_allclose(from_pyfunc, native.predict_proba(frame), rtol=0, atol=1e-12)
    local_card = (workspace.models / "default" / "model_card.md").read_text()
    assert "## Windows" in local_card and "## Walk-forward evaluation" in local_card and "Limits of use" in local_card
    assert "TreeSHAP" in local_card and "no-model rule" in local_card

    evaluation = evaluate(cfg, workspace, "default").document
    assert evaluation["same_data_as_training"] and evaluation["test_auc"] == pytest.approx(run.data.metrics["test_auc"])

    decision = promote(cfg, workspace, "default").decision
    assert decision.decision == PROMOTED, decision.reasons
    champion = client.get_model_version_by_alias(version.name, "champion")
    assert str(champion.version) == "1" and champion.tags["gate_decision"] == PROMOTED
    evidence = json.loads(champion.tags["gate_evidence"])
    assert evidence["monotone_violations"] == 0 and evidence["shap_additivity_max_error"] < 1e-6
    assert "benchmark" in evidence["auc_rule"]


def test_the_gate_refuses_a_worse_challenger_and_says_why(workspace, config):
    cfg = _platform(config)
    train(cfg, workspace, "default")
    assert promote(cfg, workspace, "default").promoted

    # A challenger forced to read payment history backwards: a worse model by construction.
    worse_cfg = _backwards(config)
    train(worse_cfg, workspace, "default")
    result = promote(worse_cfg, workspace, "default")
    decision = result.decision
    assert decision.decision == REFUSED and not result.promoted and result.describe().startswith("Refused")
    joined = " ".join(decision.reasons)
    assert "below the champion" in joined and "beyond sampling noise" in joined
    # Same data: procedure against procedure, on the champion's own walk-forward rows.
    assert "same data" in decision.evidence["champion_rows"]

    client = registry.connect(workspace)
    name = cfg.training.default.registered_model
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    refused = client.get_model_version(name, "2")
    assert refused.tags["gate_decision"] == REFUSED and "below the champion" in refused.tags["gate_reasons"]
    assert str(json.loads(refused.tags["gate_evidence"])["champion_version"]) == "1"
    assert "--override" in result.describe()
    assert {"auc_vs_champion", "auc_vs_benchmark"} <= set(decision.failed_checks) and decision.refused_by_noise_only


def _backwards(config: PlatformConfig) -> PlatformConfig:
    """Payment history read backwards: every declared direction reversed, days beyond terms too
    (the late model's directions; the default model leaves them free, decision 0016)."""
    directions = config.training.late.monotone | config.training.default.monotone
    return _platform(config, monotone={f: -d for f, d in directions.items()})


def test_a_fixed_ece_cap_alone_refuses_nothing_and_a_significant_miss_is_refused(workspace, config):
    # An ECE cap no model meets alone does not refuse: the miss must also be beyond noise.
    cfg = _platform(config, max_ece=1e-6)
    train(cfg, workspace, "default")
    result = promote(cfg, workspace, "default")
    evidence = result.decision.evidence
    assert evidence["ece"] > 1e-6 and evidence["spiegelhalter_p"] >= cfg.training.default.gate.calibration_alpha, evidence
    assert result.decision.decision == PROMOTED, result.decision.reasons
    # ...and a test level that calls this miss significant does refuse it.
    refused = promote(_strict(config), workspace, "default").decision
    assert refused.failed_checks == ("ece",) and "not sampling noise" in " ".join(refused.reasons), refused.evidence


def _strict(config: PlatformConfig) -> PlatformConfig:
    """A calibration test at a level (p below 0.4999) that calls the synthetic model's calibration miss
    significant, with an ECE cap it cannot meet: the gate refuses on calibration alone."""
    gate = config.training.default.gate.model_copy(update={"calibration_alpha": 0.4999})
    return _platform(config, max_ece=1e-6, gate=gate)


def test_an_override_promotes_a_refused_challenger_and_is_recorded_once(workspace, config):
    cfg = _strict(config)
    train(cfg, workspace, "default")
    blank = CliRunner().invoke(app, ["--workspace", str(workspace.root), "promote", "default", "--override", " "])
    assert blank.exit_code == 2 and "--override needs a reason" in blank.output
    for _ in range(2):  # overriding again replaces the record, it does not repeat it
        result = promote(cfg, workspace, "default", override="small book, reviewed by the credit committee")
        assert result.promoted and result.decision.decision == REFUSED and "OVER the gate's refusal" in result.describe()
    client = registry.connect(workspace)
    name = cfg.training.default.registered_model
    champion = client.get_model_version_by_alias(name, "champion")
    assert str(champion.version) == "1" and champion.tags["gate_decision"] == REFUSED
    assert champion.tags["override_reason"] == "small book, reviewed by the credit committee" and champion.tags["override_by"]
    for card in (workspace.model_card("default").read_text(),
                 client.download_artifacts(champion.run_id, "model_card.md", str(workspace.root)) and
                 (workspace.root / "model_card.md").read_text()):
        assert card.count("## Promoted over the gate's refusal") == 1 and "calibration error" in card
        assert "## Windows" in card  # the section is added to the card, not a card of its own
    # A later decision of the gate on its own clears the override's record.
    passing = promote(_platform(config), workspace, "default", override="not needed")
    assert passing.decision.decision == PROMOTED and "--override was not used" in passing.describe()
    assert not {k for k in client.get_model_version(name, "1").tags if k.startswith("override_")}


def test_promote_without_a_challenger_and_a_changed_training_set_fail_clearly(workspace, config):
    cfg = _platform(config)
    with pytest.raises(StageError, match=r"has no 'challenger' version: run 'tradecredit train default'"):
        promote(cfg, workspace, "default")
    # The command says the same in one error line with exit status 2, and no traceback.
    cli = CliRunner().invoke(app, ["--workspace", str(workspace.root), "promote", "default"])
    assert cli.exit_code == 2, cli.output
    assert "error: model tradecredit-default-12m has no 'challenger' version: run 'tradecredit train default'" in cli.output
    assert "Traceback" not in cli.output
    train(cfg, workspace, "default")
    frame = pl.read_parquet(workspace.training_sets / "default.parquet")
    frame.with_columns(pl.col("default_12m").shuffle(seed=1)).write_parquet(workspace.training_sets / "default.parquet")
    with pytest.raises(StageError, match=r"training set changed since version 1 was trained.*run 'tradecredit train default'"):
        promote(cfg, workspace, "default")


def test_workers_creating_one_experiment_at_once_all_get_it(production_servers, tmp_path):
    """Tuning workers started together on a new MLflow server each look for the tuning
    experiment and create it when missing: all but the first find it made, none fails."""
    name = f"race-{uuid.uuid4().hex[:8]}"
    workers = 8
    start = threading.Barrier(workers)

    def get_or_create(_: int) -> str:
        client = MlflowClient(tracking_uri=production_servers.mlflow.address)
        client.get_experiment_by_name(name)  # MLflow's first call imports plugins: not inside the race
        start.wait()
        return registry.experiment_id(client, name, Workspace(tmp_path / "ws"))

    with ThreadPoolExecutor(workers) as pool:
        ids = list(pool.map(get_or_create, range(workers)))
    assert len(set(ids)) == 1
    assert MlflowClient(tracking_uri=production_servers.mlflow.address).get_experiment_by_name(name).experiment_id == ids[0]
