"""Metrics and rate tables against hand-computed values; the master scale; calibrator choice."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tradecredit.grades import grade_of, tier_of
from tradecredit.training.evaluate import binary_metrics, expected_calibration_error, rate_table, risk_deciles
from tradecredit.training.model import choose_calibrator


def test_ece_by_hand():
    label = np.array([0, 0, 1, 1])
    prob = np.array([0.1, 0.3, 0.6, 0.8])
    # Two bins: {0.1, 0.3} mean 0.2 vs 0 observed; {0.6, 0.8} mean 0.7 vs 1 observed.
    assert expected_calibration_error(label, prob, 2) == pytest.approx(0.5 * 0.2 + 0.5 * 0.3)


def test_metrics_by_hand():
    label = np.array([0, 0, 1, 1])
    prob = np.array([0.1, 0.6, 0.4, 0.9])
    m = binary_metrics(label, prob, 2)
    assert m["auc"] == pytest.approx(0.75) and m["gini"] == pytest.approx(0.5)
    assert m["ks"] == pytest.approx(0.5)
    assert m["brier"] == pytest.approx(np.mean((prob - label) ** 2))
    with pytest.raises(ValueError, match="one outcome class"):
        binary_metrics(np.zeros(3), np.ones(3) / 2, 2)


def test_rate_table_jeffreys_by_hand():
    label = np.array([1] * 5 + [0] * 95)
    prob = np.full(100, 0.01)
    row = rate_table(label, prob, np.ones(100, dtype=int), "grade").row(0, named=True)
    beta = stats.beta(5.5, 95.5)
    assert row["events"] == 5 and row["observed_rate"] == pytest.approx(0.05)
    assert row["jeffreys_low"] == pytest.approx(beta.ppf(0.025))
    assert row["jeffreys_p_underestimate"] == pytest.approx(beta.cdf(0.01))
    assert row["jeffreys_p_underestimate"] < 0.05 and not row["predicted_within_interval"]


def test_deciles_split_rows_evenly_from_low_to_high_risk():
    prob = np.linspace(0, 1, 1000)
    d = risk_deciles(prob)
    assert d[0] == 1 and d[-1] == 10 and np.bincount(d)[1:].tolist() == [100] * 10


def test_master_scale_boundaries(config):
    bounds = [b.max_pd for b in config.policy.master_scale]
    grades = grade_of(np.array([0.0, bounds[0], bounds[0] + 1e-9, bounds[4], 0.5, 1.0]), config.policy)
    assert grades.tolist() == [1, 1, 2, 5, 10, 10]
    assert tier_of(np.array([1, 5, 10]), config.policy).tolist() == ["low", "medium", "high"]


def test_calibrator_choice_follows_the_shape_of_the_curve():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=20000)
    groups = np.arange(20000) % 500
    logistic = (rng.random(20000) < 1 / (1 + np.exp(-(raw - 2)))).astype(int)
    assert choose_calibrator(raw, logistic, groups, 5).method == "platt"
    step = (rng.random(20000) < np.where(raw > 0.5, 0.4, 0.02)).astype(int)  # a cliff no sigmoid of raw fits
    choice = choose_calibrator(raw, step, groups, 5)
    assert choice.method == "isotonic" and choice.cv_log_loss["isotonic"] < choice.cv_log_loss["platt"]


def test_too_few_events_to_choose_a_calibration_is_a_clear_error():
    raw = np.linspace(-3, 3, 200)
    label = np.zeros(200, dtype=int)
    label[:3] = 1
    with pytest.raises(ValueError, match="3 events in 200 rows"):
        choose_calibrator(raw, label, np.arange(200) % 40, 5)


def test_a_score_that_ranks_backwards_gets_a_flat_isotonic_curve_not_an_error():
    # On a small book a fold's Platt slope can come out negative: the choice falls to isotonic.
    from tradecredit.training.model import choose_calibrator

    rng = np.random.default_rng(3)
    raw = rng.normal(size=2000)
    label = (rng.random(2000) < 1 / (1 + np.exp(2 * raw + 2))).astype(int)  # higher score, fewer events
    choice = choose_calibrator(raw, label, np.arange(2000) % 200, 5)
    assert choice.method == "isotonic" and choice.cv_log_loss["platt"] == float("inf")
    curve = choice.chosen(np.sort(raw))
    assert np.all(np.diff(curve) >= 0) and curve[-1] - curve[0] < 0.05  # increasing, and flat where it cannot rank


def test_isotonic_calibration_keeps_the_order_the_booster_gave():
    # A plain step curve gives every row of a pooled block one PD; the centred curve ties
    # no two rows between its first and last knot, so calibrating costs no AUC there.
    from sklearn.metrics import roc_auc_score

    from tradecredit.training.model import fit_isotonic

    rng = np.random.default_rng(5)
    raw = rng.normal(size=400)
    label = (rng.random(400) < 1 / (1 + np.exp(-(raw - 1.5)))).astype(int)
    calibrator = fit_isotonic(raw, label)
    assert len(calibrator.knots_x) < 400 // 4  # blocks were pooled: the case the step curve ties
    inside = (raw > calibrator.knots_x[0]) & (raw < calibrator.knots_x[-1])
    curve = calibrator(np.sort(raw[inside]))
    assert np.all(np.diff(curve) > 0)
    assert roc_auc_score(label[inside], calibrator(raw[inside])) == pytest.approx(roc_auc_score(label[inside], raw[inside]))
    # Still a calibration: each knot is its block's event rate, so the mean PD stays near the event rate.
    assert calibrator(raw).mean() == pytest.approx(label.mean(), abs=0.005)
