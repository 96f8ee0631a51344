"""PSI and its significance against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from tradecredit.monitoring.drift import MISSING, UNSEEN, bin_counts, population_stability, psi_significance, psi_value, reference_bins


def test_psi_of_two_bins_by_hand():
    # e = (0.5, 0.5), a = (0.6, 0.4): 0.1 ln 1.2 + 0.1 ln 1.25
    assert psi_value(np.array([50, 50]), np.array([60, 40]), 1e-4) == pytest.approx(0.1 * math.log(1.2) + 0.1 * math.log(1.25))
    assert psi_value(np.array([10, 20, 30]), np.array([1, 2, 3]), 1e-4) == pytest.approx(0.0)


def test_an_empty_bin_counts_as_epsilon_not_infinity():
    got = psi_value(np.array([100, 0]), np.array([90, 10]), 1e-4)
    assert got == pytest.approx((0.9 - 1.0) * math.log(0.9) + (0.1 - 1e-4) * math.log(0.1 / 1e-4))


def test_significance_by_hand():
    psi = 0.1 * math.log(1.2) + 0.1 * math.log(1.25)  # 0.04055
    p_value, critical = psi_significance(psi, 100, 100, bins_used=2, alpha=0.05)
    # PSI / (1/100 + 1/100) = 2.027 on chi2 with 1 dof; critical 3.841 x 0.02
    assert p_value == pytest.approx(0.15447, abs=1e-4) and critical == pytest.approx(0.076829, abs=1e-5)
    _, big_sample = psi_significance(psi, 100_000, 100_000, bins_used=2, alpha=0.05)
    assert big_sample < 0.001 < psi, "the same PSI is noise on 100 rows and a real shift on 100,000"


def test_decile_bins_are_right_closed_and_missing_is_a_bin():
    reference = pl.Series(list(range(1, 101)), dtype=pl.Float64)
    spec = reference_bins(reference, 10)
    assert spec.edges == (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0)
    counts = bin_counts(pl.Series([10.0, 10.5, None, float("nan"), 1000.0]), spec)
    assert counts.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 2]
    assert spec.labels[0] == "(-inf, 10]" and spec.labels[-1] == MISSING


def test_text_levels_pool_unseen_ones():
    spec = reference_bins(pl.Series(["DE", "FR", "DE", None]), 10)
    assert spec.levels == ("DE", "FR") and spec.labels == ["DE", "FR", UNSEEN, MISSING]
    assert bin_counts(pl.Series(["DE", "CN", "US", None]), spec).tolist() == [1, 0, 2, 1]


def test_a_shifted_sample_is_major_and_significant_and_the_same_one_is_stable(config):
    drift = config.monitoring.drift
    rng = np.random.default_rng(7)
    reference = pl.Series(rng.normal(0, 1, 20_000))
    same = population_stability("x", reference, pl.Series(rng.normal(0, 1, 5_000)), drift)
    moved = population_stability("x", reference, pl.Series(rng.normal(0.8, 1, 5_000)), drift)
    assert same.band == "stable" and not same.significant and same.psi < same.critical_psi
    assert moved.band == "major" and moved.significant and moved.p_value < 1e-12
    assert sum(moved.current_share) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="needs rows on both sides"):
        population_stability("x", reference, pl.Series([], dtype=pl.Float64), drift)


def test_drift_bands_must_be_ordered(config):
    from pydantic import ValidationError

    from tradecredit.monitoring.config import DriftConfig

    with pytest.raises(ValidationError, match="major_psi must be above moderate_psi"):
        DriftConfig.model_validate(config.monitoring.drift.model_dump() | {"major_psi": 0.05})


def test_a_market_reading_places_today_in_the_training_range():
    from tradecredit.monitoring.drift import market_reading

    reference = pl.Series([0.10, 0.10, 0.20, 0.30, None])  # one value per training month
    inside = market_reading("market_late_share_90d", reference, pl.Series([0.20, 0.20, 0.25]))
    assert (inside.value, inside.reference_low, inside.reference_high) == (0.20, 0.10, 0.30)
    assert inside.percentile == 0.75 and not inside.outside
    beyond = market_reading("market_late_share_90d", reference, pl.Series([0.45, 0.40]))
    assert beyond.outside and beyond.percentile == 1.0
    nothing = market_reading("market_late_share_90d", reference, pl.Series([None], dtype=pl.Float64))
    assert nothing.value is None and not nothing.outside


def test_the_market_view_is_read_against_its_range_and_not_psi_ed(config):
    from datetime import date
    from types import SimpleNamespace

    from tradecredit.monitoring.portfolio import PortfolioScores, drift, market_readings

    rng = np.random.default_rng(1)
    months = np.repeat([0.10, 0.12, 0.15, 0.11], 100)  # the market's figure: one value per month
    reference = pl.DataFrame({"late_share_90d": rng.uniform(0, 1, 400), "market_late_share_90d": months})
    today = pl.DataFrame({"buyer_id": [f"B{i}" for i in range(200)], "late_share_90d": rng.uniform(0, 1, 200),
                          "market_late_share_90d": [0.30] * 200})
    portfolio = PortfolioScores(date(2026, 1, 1), "1", pl.DataFrame({"pd_12m": rng.uniform(0, 0.1, 200)}), today, 0)
    model = SimpleNamespace(features=["late_share_90d", "market_late_share_90d"])
    psi = drift(reference, rng.uniform(0, 0.1, 400), portfolio, model, config.monitoring.drift)
    assert {r.name for r in psi} == {"pd_12m", "late_share_90d"}, "a point mass per date would always read as major drift"
    (reading,) = market_readings(reference, portfolio)
    assert reading.name == "market_late_share_90d" and reading.outside and reading.reference_high == 0.15
