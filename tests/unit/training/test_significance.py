"""Sampling noise: the buyer bootstrap of AUC differences and Spiegelhalter's calibration test
tell a real shortfall from a small book's noise."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tradecredit.training.significance import _RankedScores, auc_differences, buyer_weights, calibration_test


def _book(buyers: int, rows_per_buyer: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of buyers with a buyer-level risk: the true probability, an outcome, the buyer."""
    rng = np.random.default_rng(seed)
    risk = rng.normal(-3, 1, buyers)
    groups = np.repeat(np.arange(buyers), rows_per_buyer)
    p = 1 / (1 + np.exp(-risk[groups] - rng.normal(0, 0.3, len(groups))))
    return p, (rng.random(len(p)) < p).astype(int), groups


def test_the_weighted_auc_is_sklearns_with_ties():
    rng = np.random.default_rng(0)
    score = np.round(rng.random(3000), 2)  # many ties
    label = (rng.random(3000) < 0.2 + 0.3 * score).astype(int)
    weight = rng.integers(0, 4, 3000).astype(float)
    assert _RankedScores(score, label).auc(weight) == pytest.approx(roc_auc_score(label, score, sample_weight=weight), abs=1e-12)


def test_a_bootstrap_replicate_draws_whole_buyers():
    groups = np.repeat(np.arange(50), 7)
    weights = buyer_weights(groups, 20, seed=1)
    # Every row of a buyer carries the same weight, and each replicate draws as many buyers as there are.
    assert all(np.all(w.reshape(50, 7) == w.reshape(50, 7)[:, :1]) for w in weights)
    assert np.all(weights.reshape(20, 50, 7)[:, :, 0].sum(axis=1) == 50)


def test_a_model_that_ranks_backwards_is_worse_beyond_noise_and_a_twin_is_not():
    p, y, groups = _book(1500, 12, seed=2)
    blocks = np.arange(len(p)) % 3
    rng = np.random.default_rng(4)
    twin = p + rng.normal(0, 0.002, len(p))  # the same ranking up to noise
    compared = auc_differences(y, {"model": p, "twin": twin, "backwards": -p}, "model", groups, blocks, 300, 0.95, 7)
    out = compared.against
    # The point AUC is the mean of each block's, the headline's own definition.
    assert compared.auc["model"] == pytest.approx(np.mean([roc_auc_score(y[blocks == b], p[blocks == b]) for b in range(3)]), abs=1e-12)
    assert out["backwards"].better and not out["backwards"].worse and out["backwards"].difference > 0.3
    assert not out["twin"].worse and not out["twin"].better, out["twin"]
    reverse = auc_differences(y, {"backwards": -p, "model": p}, "backwards", groups, blocks, 300, 0.95, 7)
    assert reverse.against["model"].worse


def test_a_small_book_cannot_resolve_a_small_auc_gap():
    # 100 buyers: a score a little noisier than the truth is behind, but not beyond noise.
    p, y, groups = _book(100, 18, seed=5)
    noisier = p * np.exp(np.random.default_rng(6).normal(0, 0.4, len(p)))
    diff = auc_differences(y, {"model": noisier, "truth": p}, "model", groups, np.zeros(len(p)), 300, 0.95, 8).against["truth"]
    assert diff.difference < 0 and not diff.worse, diff


def test_spiegelhalter_passes_true_probabilities_and_rejects_a_level_shift_only_when_the_book_can_tell():
    p, y, _ = _book(3000, 12, seed=9)
    assert calibration_test(y, p, 10).spiegelhalter_p > 0.01
    shifted = calibration_test(y, np.clip(p * 1.3, 0, 1), 10)
    assert shifted.spiegelhalter_p < 1e-4 and shifted.hosmer_lemeshow_p < 1e-4 and shifted.mean_predicted > shifted.observed_rate
    small_p, small_y, _ = _book(40, 6, seed=10)  # 240 rows, a handful of events
    assert calibration_test(small_y, np.clip(small_p * 1.3, 0, 1), 10).spiegelhalter_p > 0.01


def test_a_buyers_repeated_months_do_not_count_as_independent_evidence_of_a_miss():
    # Each buyer's outcome repeated over 12 monthly rows, as a 12-month label is: the same miss
    # is far less significant with the buyer as the cluster than with rows counted as draws.
    p, y, groups = _book(400, 1, seed=11)
    repeated_p, repeated_y, buyers = np.repeat(p, 12), np.repeat(y, 12), np.repeat(groups, 12)
    shifted = np.clip(repeated_p * 1.3, 0, 1)
    naive = calibration_test(repeated_y, shifted, 10)
    clustered = calibration_test(repeated_y, shifted, 10, buyers)
    assert abs(clustered.spiegelhalter_z) < 0.5 * abs(naive.spiegelhalter_z)
    # ...and about as significant as one row per buyer would be.
    one_row = calibration_test(y, np.clip(p * 1.3, 0, 1), 10)
    assert clustered.spiegelhalter_z == pytest.approx(one_row.spiegelhalter_z, rel=0.3), (clustered, one_row)
