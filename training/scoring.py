"""Scoring buyers as of a date: the one function that turns point-in-time feature rows into PDs,
grades and tiers, used by batch scoring (``tradecredit score default``) and by monitoring.
The scoring service scores the same model on the online rows of a request (``serving.engine``).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from tradecredit.policy_config import PolicyConfig
from tradecredit.grades import grade_of, tier_of
from tradecredit.training.model import CreditModel

SCORE = "pd_12m"


def features_found(features: pl.DataFrame, model: CreditModel) -> pl.Series:
    """True for a row with any of the model's features: false for an unknown buyer or a time
    before its first snapshot."""
    return features.select(pl.any_horizontal(pl.col(list(model.features)).is_not_null()).alias("found"))["found"]


def score_buyers(features: pl.DataFrame, model: CreditModel, model_version: str, policy: PolicyConfig) -> pl.DataFrame:
    """``buyer_id, as_of_ts, pd_12m, grade, tier, model_version, features_found`` for each row of
    ``features`` (Feast's point-in-time rows of the default model's service), in order."""
    pd_12m = model.predict_proba(features) if features.height else np.array([])
    grades = grade_of(pd_12m, policy).astype(np.int64)
    return features.select("buyer_id", "as_of_ts").with_columns(
        pl.Series(SCORE, pd_12m, dtype=pl.Float64),
        pl.Series("grade", grades, dtype=pl.Int64),
        pl.Series("tier", [str(t) for t in tier_of(grades, policy)], dtype=pl.String),
        pl.lit(model_version).alias("model_version"),
        features_found(features, model).alias("features_found"),
    )
