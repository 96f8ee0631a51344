"""Behaviour of a trained model: determinism, monotonicity, explanations, calibration."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.metrics import log_loss, roc_auc_score

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
    # Worse on every payment feature the default model holds a direction for. Days beyond terms
    # have none in the default model (decision 0016: a chronic slow payer does not default).
    worse_payment = {f: delta for f, delta in WORSE_PAYMENT.items() if f in trained_default.model.monotone}
    assert {"late_share_90d", "late_share_365d"} <= set(worse_payment)
    rows = trained_default.data.rows(TEST, holdout=True).head(400)
    worse = rows.with_columns([
        (pl.col(f) + delta).clip(0, 1) if f.startswith("late_share") else (pl.col(f) + delta).clip(lower_bound=0)
        for f, delta in worse_payment.items()
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


def _test_log_loss(trained) -> dict[str, float]:
    """Log loss of the latest walk-forward origin's model on its test months' held-out buyers
    (rows neither its booster nor its calibrator saw, months later): the booster's own
    probability and the calibrated one."""
    model = trained.walk_forward.origins[0].fitted.model
    rows = trained.data.rows(TEST, holdout=True)
    raw = model.raw_score(model.matrix(rows))
    label = rows[model.label].to_numpy()
    return {"raw": log_loss(label, 1 / (1 + np.exp(-raw)), labels=[0, 1]),
            "calibrated": log_loss(label, model.predict_proba(rows), labels=[0, 1]),
            "raw_level_miss": abs(float(np.mean(1 / (1 + np.exp(-raw)))) - float(label.mean())),
            "calibrated_level_miss": abs(float(model.predict_proba(rows).mean()) - float(label.mean()))}


def test_calibration_improves_out_of_time_log_loss_when_the_default_rate_moves(trained_default, platform):
    """What the calibrator is for: it is fitted on out-of-fold scores of the latest months, so
    it corrects a level the booster learned mostly from older data. The synthetic set's default
    rate is doubled from the latest origin's calibration months on (the same buyers, the same
    risk order); the calibrator must lower log loss on that origin's test months."""
    frame, data_end = synthetic_training_set("default")
    later = (frame["as_of_ts"].dt.date() >= trained_default.walk_forward.origins[0].fitted.calibration_start).to_numpy()
    flip = later & (np.random.default_rng(5).random(frame.height) < 0.05)
    moved = frame.with_columns(default_12m=pl.Series(np.where(flip, 1, frame["default_12m"].to_numpy())).cast(pl.Int8))
    trained = train(moved, "default", data_end, quick(platform.training.default), platform.training.lightgbm,
                    platform.policy, platform.labels.late_days)
    loss = _test_log_loss(trained)
    # The booster learned part of the new level from those months itself; the calibrator takes
    # most of the rest of the miss away.
    assert loss["calibrated"] < loss["raw"] and loss["calibrated_level_miss"] < 0.5 * loss["raw_level_miss"], loss
    assert set(trained.calibration.cv_log_loss) == {"platt", "isotonic"}
    # Where the level did not move the booster is already calibrated: out of time, its
    # calibration may cost little (an overfitted curve would cost more).
    steady = _test_log_loss(trained_default)
    assert steady["calibrated"] < 1.01 * steady["raw"], steady


def test_the_served_model_trains_on_every_labelled_row_and_the_origins_never_see_their_test(trained_default):
    data, plan = trained_default.data, trained_default.data.plan
    day = data.frame["as_of_ts"].dt.date()
    labelled = data.frame.filter(day <= plan.production_end)
    assert trained_default.production.rows == labelled.height == trained_default.slice_rows["labelled"]
    assert trained_default.production.last_date == labelled["as_of_ts"].dt.date().max()
    for result in trained_default.walk_forward.origins:
        # Each origin's procedure trained on trained-on buyers' rows up to its training end only.
        fitted_rows = data.frame.filter((day <= result.origin.train_end) & ~pl.col("holdout_buyer"))
        assert result.fitted.rows == fitted_rows.height and result.fitted.last_date <= result.origin.train_end


def test_the_model_beats_the_benchmark_and_the_card_numbers_are_the_origins_test_rows(trained_default, platform):
    walked, model = trained_default.walk_forward, trained_default.model
    predictions = walked.rows(holdout=True)
    aucs = []
    for index, result in enumerate(walked.origins):
        # Each origin's figures are its own model's scores of its own test months, recomputed here.
        day = trained_default.data.frame["as_of_ts"].dt.date()
        rows = trained_default.data.frame.filter(day.is_between(result.origin.test_start, result.origin.test_end) & pl.col("holdout_buyer"))
        mine = predictions.filter(pl.col("origin") == index)
        np.testing.assert_allclose(mine["prob"].to_numpy(), result.fitted.model.predict_proba(rows), atol=1e-12)
        label = rows[model.label].to_numpy()
        aucs.append(roc_auc_score(label, mine["prob"].to_numpy()))
        assert result.metrics["heldout"]["model_auc"] == pytest.approx(aucs[-1], abs=1e-12)
    flat = trained_default.flat_metrics()
    assert flat["test_auc"] == pytest.approx(np.mean(aucs), abs=1e-12) and flat["walk_forward_origins"] == len(walked.origins) >= 2
    # The synthetic risk has a threshold a logistic regression cannot draw: on the same rows,
    # the booster must rank better than the benchmark, and than the buyer's own worst lateness.
    assert flat["test_auc"] > flat["benchmark_auc"], flat
    assert flat["test_auc"] > flat["no_model_auc"], flat
    evaluation = trained_default.evaluation
    grades = evaluation.grades
    assert grades is not None and int(grades["rows"].sum()) == predictions.height
    assert int(grades["events"].sum()) == int(predictions[model.label].sum())
    # The explanation cost: the served booster's own trees, under the TreeSHAP cap, inside the
    # service's 20 ms budget (configs/training.yaml).
    explain, params = trained_default.explain, trained_default.params
    assert explain.trees == len(model.tree_sizes()) == trained_default.production.rounds >= 1
    assert explain.trees * int(params["num_leaves"]) * int(params["max_depth"]) ** 2 <= platform.training.default.tuning.max_treeshap_cost
    assert explain.leaves <= explain.trees * int(params["num_leaves"])
    assert 0 < explain.explain_ms_per_row < 20, explain


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
