"""Behaviour of a trained model: determinism, monotonicity, explanations, calibration."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import polars as pl
import shap

from tests.model.conftest import quick
from tests.model.synthetic import synthetic_training_set
from tradecredit.training.checks import monotone_sweep, shap_additivity_error
from tradecredit.training.model import Calibrator, CreditModel
from tradecredit.training.splits import TEST
from tradecredit.training.train import train

WORSE_PAYMENT = {"late_share_90d": 0.3, "late_share_180d": 0.3, "late_share_365d": 0.3, "dbt_weighted_90d": 15.0,
                 "dbt_max_90d": 30.0, "worst_seller_dbt_365d": 20.0, "paydex_90d": -15.0, "paydex_365d": -15.0}


def _test_x(trained):
    return trained.model.matrix(trained.data.rows(TEST, holdout=True))


def test_same_data_and_config_give_the_same_model(trained_default, platform):
    frame, data_end = synthetic_training_set("default")
    again = train(frame, "default", data_end, quick(platform.training.default), platform.training.lightgbm,
                  platform.policy, platform.labels.late_days)
    assert again.model.model_text() == trained_default.model.model_text()
    raw = np.linspace(-8, 4, 200)
    np.testing.assert_array_equal(again.model.calibrate(raw), trained_default.model.calibrate(raw))


def test_monotone_sweep_passes_on_the_trained_model(trained_default):
    sweep = monotone_sweep(trained_default.model, _test_x(trained_default).head(80))
    assert sweep.features_checked == len(trained_default.model.monotone) > 10
    assert sweep.violations == 0, sweep


def test_monotone_sweep_catches_a_model_trained_without_constraints():
    # Risk rises with late_share_90d to 0.5 and falls after: a declared direction the model breaks.
    rng = np.random.default_rng(3)
    x = pd.DataFrame({"late_share_90d": rng.random(4000), "noise": rng.normal(size=4000)})
    y = (rng.random(4000) < 0.05 + 0.6 * (0.25 - (x["late_share_90d"] - 0.5) ** 2)).astype(int)
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_leaves": 8, "seed": 1}, lgb.Dataset(x, y), 60)
    model = CreditModel("default", "default_12m", booster, ("late_share_90d", "noise"), {}, Calibrator("platt"), {"late_share_90d": 1})
    sweep = monotone_sweep(model, x.head(50))
    assert sweep.violations > 0 and sweep.worst_feature == "late_share_90d"


def test_worse_payment_history_never_lowers_the_pd(trained_default):
    rows = trained_default.data.rows(TEST, holdout=True).head(400)
    worse = rows.with_columns([
        (pl.col(f) + delta).clip(0, 1) if f.startswith("late_share") else (pl.col(f) + delta).clip(lower_bound=0)
        for f, delta in WORSE_PAYMENT.items()
    ])
    before, after = trained_default.model.predict_proba(rows), trained_default.model.predict_proba(worse)
    assert np.all(after >= before - 1e-12)
    assert np.mean(after > before) > 0.5, "the payment features must matter, or this test proves nothing"


def test_native_treeshap_equals_shap_and_adds_up(trained_default):
    x = _test_x(trained_default).head(200)
    assert shap_additivity_error(trained_default.model, x) < 1e-9
    native = trained_default.model.contributions(x)
    numeric = trained_default.model.array(x)
    explainer = trained_default.model.shap_explainer()
    values = explainer.shap_values(numeric)
    np.testing.assert_allclose(native[:, :-1], values, atol=1e-8)
    np.testing.assert_allclose(native[:, -1], explainer.expected_value, atol=1e-8)


def test_array_path_scores_like_the_frame_path(trained_default):
    x = _test_x(trained_default).head(300)
    np.testing.assert_allclose(trained_default.model.raw_score(trained_default.model.array(x)),
                               trained_default.model.raw_score(x), atol=1e-12)


def test_calibration_improves_log_loss_on_the_calibration_slice(trained_default):
    loss = trained_default.calibration_log_loss
    assert loss["calibrated"] < loss["raw"]
    assert set(trained_default.calibration.cv_log_loss) == {"platt", "isotonic"}


def test_the_model_beats_chance_and_the_card_numbers_are_consistent(trained_default):
    m = trained_default.evaluation.metrics
    assert 0.6 < m["auc"] <= 1 and abs(m["gini"] - (2 * m["auc"] - 1)) < 1e-12
    assert trained_default.explain.trees >= 1 and trained_default.explain.explain_ms_per_row > 0
    grades = trained_default.evaluation.grades
    assert grades is not None and int(grades["rows"].sum()) == int(m["rows"])


def test_the_service_array_from_feature_dicts_equals_the_frame_path(trained_default):
    model = trained_default.model
    rows = trained_default.data.rows(TEST, holdout=True).head(300)
    dicts = rows.to_dicts()
    for name in model.categories:  # an unseen level and a missing one: both become missing
        dicts[0][name], dicts[1][name] = "NEVER-SEEN", None
    expected = model.array(model.matrix(pl.DataFrame(dicts, schema=rows.schema)))
    np.testing.assert_array_equal(model.rows_array(dicts), expected)


def test_a_constrained_features_shap_value_moves_only_in_its_direction(trained_default):
    """What makes a reason's direction agree with the constraints: sweeping a constrained
    feature across its observed range moves its TreeSHAP value one way only, so a worse value
    can never be explained as lowering the risk while a better one raises it."""
    model = trained_default.model
    x = model.array(_test_x(trained_default).head(400))
    checked = 0
    for feature, sign in model.monotone.items():
        j = model.features.index(feature)
        observed = x[:, j][~np.isnan(x[:, j])]
        grid = np.unique(np.quantile(observed, np.linspace(0, 1, 11)))
        for row in x[:25]:
            sweep = np.repeat(row[None, :], len(grid), axis=0)
            sweep[:, j] = grid
            phi = model.contributions(sweep)[:, j]
            assert np.all(np.diff(phi) * sign >= -1e-12), f"{feature}: SHAP value moves against its constraint {sign}"
            checked += int(np.ptp(phi) > 0)
    assert checked > 25, "the constrained features must move their SHAP values, or this test proves nothing"
