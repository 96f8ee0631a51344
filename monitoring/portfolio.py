"""Portfolio scoring as of a date, and the drift of every model feature and of the score
against the champion's training reference (groundwork for the monitoring issue).

Features come from Feast's point-in-time retrieval at the as-of date (midnight UTC), so a run
for a past date sees only what was known then, and successive runs form a history of scores
with the model version that made each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from tradecredit.monitoring.config import DriftConfig
from tradecredit.policy_config import PolicyConfig
from tradecredit.features.catalog import FEATURES_BY_VIEW
from tradecredit.monitoring.drift import MarketReading, PsiResult, market_reading, population_stability
from tradecredit.training.model import CreditModel
from tradecredit.training.scoring import SCORE, features_found, score_buyers


@dataclass(frozen=True)
class PortfolioScores:
    as_of: date
    model_version: str
    scores: pl.DataFrame  # buyer_id, as_of_ts, pd_12m, grade, tier, model_version
    features: pl.DataFrame  # buyer_id, then the model's features, for the drift
    inactive: int  # buyers with no snapshot at the date or nothing invoiced in the last year


# One value per date (and industry): read against the training range, not by PSI.
MARKET_FEATURES = frozenset(f.name for f in FEATURES_BY_VIEW["market_conditions"])


def active(features: pl.DataFrame, model: CreditModel) -> pl.Series:
    """A buyer is active when it has a feature snapshot at the date and was invoiced within
    the last year (the default model's population: trading buyers)."""
    return features_found(features, model) & (features["invoices_issued_365d"].fill_null(0) > 0)


def score_portfolio(features: pl.DataFrame, model: CreditModel, model_version: str, as_of: date, policy: PolicyConfig) -> PortfolioScores:
    """Score every active buyer of ``features`` (Feast's rows at ``as_of``) with ``model``."""
    keep = active(features, model)
    current = features.filter(keep)
    scores = score_buyers(current, model, model_version, policy).drop("features_found")
    # The market view rides along for its reading against the training years, read by the model or not.
    market = [f for f in sorted(MARKET_FEATURES) if f in current.columns and f not in model.features]
    return PortfolioScores(as_of, model_version, scores, current.select("buyer_id", *model.features, *market), int((~keep).sum()))


def drift(reference: pl.DataFrame, reference_scores: np.ndarray, portfolio: PortfolioScores, model: CreditModel, cfg: DriftConfig) -> list[PsiResult]:
    """PSI of the score and of every model feature but the market view's, largest first."""
    results = [population_stability(SCORE, pl.Series(SCORE, reference_scores), portfolio.scores[SCORE], cfg)]
    results += [population_stability(f, reference[f], portfolio.features[f], cfg) for f in model.features if f not in MARKET_FEATURES]
    return sorted(results, key=lambda r: -r.psi)


def market_readings(reference: pl.DataFrame, portfolio: PortfolioScores) -> list[MarketReading]:
    """Each market-view feature: today's value against the model's training years (whether
    the model reads the view or not, its PDs were learnt in those conditions)."""
    names = [f.name for f in FEATURES_BY_VIEW["market_conditions"] if f.name in reference.columns and f.name in portfolio.features.columns]
    return [market_reading(f, reference[f], portfolio.features[f]) for f in names]
