"""The final booster fitted on a real Dask LocalCluster of 2 worker processes (LightGBM's Dask
estimator) against the same training in one process: same features, constraints, tuned
parameters and calibration, and quality within the tolerance the README states."""

from __future__ import annotations

import pytest

from tests.conftest import REPO
from tests.model.synthetic import synthetic_training_set
from tradecredit.config import load_config
from tradecredit.backends_config import DaskConfig
from tradecredit.training.checks import monotone_sweep, shap_additivity_error
from tradecredit.training.evaluate import binary_metrics
from tradecredit.training.splits import TEST
from tradecredit.training.train import train

# The README's tolerance for a Dask-trained model against the single-machine one (held-out test rows).
AUC_TOLERANCE = 0.01
LOG_LOSS_RELATIVE_TOLERANCE = 0.02
ECE_TOLERANCE = 0.01


@pytest.mark.timeout(600)
def test_dask_training_matches_single_machine_quality():
    platform = load_config(REPO / "configs")
    cfg = platform.training.default
    # One origin and two cross-fitting folds: only the served model's final fit moves to Dask.
    cfg = cfg.model_copy(update={"tuning": cfg.tuning.model_copy(update={"trials": 3, "max_rounds": 150}), "sweep_rows": 80,
                                 "split": cfg.split.model_copy(update={"origins": 1}), "crossfit_folds": 2})
    frame, data_end = synthetic_training_set("default", buyers=1500)
    args = (frame, "default", data_end, cfg, platform.training.lightgbm, platform.policy, platform.labels.late_days)
    local = train(*args)
    dask = train(*args, dask=DaskConfig(scheduler=None, workers=2, threads_per_worker=1))

    assert (local.fit.engine, dask.fit.engine) == ("local", "dask")
    assert dask.fit.workers == 2 and dask.fit.scheduler == "LocalCluster"
    # The same inputs, constraints and tuned parameters: only where the trees were grown differs.
    assert dask.model.features == local.model.features and dask.model.categories == local.model.categories
    assert dask.model.monotone == local.model.monotone and dask.params == local.params
    assert len(dask.model.tree_sizes()) == len(local.model.tree_sizes()) == local.production.rounds
    # Really trained elsewhere (data-parallel trees differ), not a copy of the local booster.
    assert dask.model.model_text() != local.model.model_text()
    # Only the served model's booster is fitted on Dask: the walk-forward is the same procedure.
    assert dask.flat_metrics() == local.flat_metrics()

    # The served models on the latest labelled months (rows both trained on: agreement, not a test of either).
    rows = local.data.rows(TEST, holdout=True)
    label = rows[local.model.label].to_numpy().astype(int)
    m_local, m_dask = (binary_metrics(label, m.predict_proba(rows), 10) for m in (local.model, dask.model))
    assert abs(m_dask["auc"] - m_local["auc"]) <= AUC_TOLERANCE, (m_local["auc"], m_dask["auc"])
    assert abs(m_dask["log_loss"] - m_local["log_loss"]) <= LOG_LOSS_RELATIVE_TOLERANCE * m_local["log_loss"]
    assert abs(m_dask["ece"] - m_local["ece"]) <= ECE_TOLERANCE

    # The checks the promotion gate runs hold for the Dask model too.
    x = dask.model.matrix(dask.data.rows(TEST, holdout=True).head(80))
    assert monotone_sweep(dask.model, x).violations == 0
    assert shap_additivity_error(dask.model, x) < 1e-6
