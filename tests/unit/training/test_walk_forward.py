"""The walk-forward's figures from row-level predictions: the no-model rule's score, and a book
too small to measure out of time said so instead of a missing metric."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from tests.conftest import REPO
from tradecredit.config import load_config
from tradecredit.training.splits import Origin, SplitPlan
from tradecredit.training.walk_forward import no_model_score, summarise


def test_the_no_model_score_fills_a_buyer_without_history_with_the_median_and_needs_its_feature():
    rows = pl.DataFrame({"dbt_max_365d": [10.0, None, 30.0, 50.0]})
    assert no_model_score(rows, "dbt_max_365d").tolist() == [10.0, 30.0, 30.0, 50.0]
    assert no_model_score(rows.with_columns(dbt_max_365d=pl.lit(None, pl.Float64)), "dbt_max_365d") is None
    assert no_model_score(rows, "late_share_365d") is None


def test_held_out_test_months_without_an_event_are_an_error_that_says_so():
    cfg = load_config(REPO / "configs")
    plan = SplitPlan("issued_on", date(2024, 1, 1), date(2024, 6, 1), date(2024, 6, 1), date(2024, 9, 1), date(2025, 1, 1),
                     date(2025, 3, 31), 120, 120, 0.4, "s", (Origin(date(2024, 9, 1), date(2025, 1, 1), date(2025, 3, 31)),))
    predictions = pl.DataFrame({
        "buyer_id": ["B1", "B2", "B3", "B4"], "invoice_id": ["I1", "I2", "I3", "I4"], "issued_on": [date(2025, 2, 1)] * 4,
        "holdout_buyer": [True, True, False, False], "late_30d": [0, 0, 1, 0], "origin": [0] * 4,
        "prob": [0.1, 0.2, 0.3, 0.1], "benchmark_prob": [0.1, 0.2, 0.3, 0.1],
    })
    with pytest.raises(ValueError, match=r"held-out buyers \(2 rows, 0 events\): too small a book"):
        summarise(predictions, plan, "late", "late_30d", cfg.training.late, cfg.policy)
    # With an event among the held-out buyers, the same rows give the figures.
    walked = summarise(predictions.with_columns(late_30d=pl.Series([0, 1, 1, 0])), plan, "late", "late_30d", cfg.training.late, cfg.policy)
    assert walked.flat_metrics()["test_auc"] == 1.0
