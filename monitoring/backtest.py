"""Outcome backtests of past monitoring runs whose 12-month default label has matured.

Each run's scores are labelled with the training set's own definition (``label_default_12m``:
a default in (as-of, as-of + 365 days], buyers already in default left out, windows that reach
past the data left out), then measured: AUC and Gini, and predicted against observed default
rate per grade with a Jeffreys interval and test (``training.evaluate.rate_table``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from tradecredit.config import BacktestConfig
from tradecredit.features.labels import label_default_12m
from tradecredit.training.evaluate import binary_metrics, rate_table


@dataclass(frozen=True)
class Backtest:
    as_of: date
    model_version: str
    rows: int
    events: int
    auc: float | None  # None when the run's outcomes are all one class
    gini: float | None
    observed_rate: float
    mean_pd: float
    grades: pl.DataFrame  # rate_table by grade
    miscalibrated_grades: list[int]  # Jeffreys p-value below alpha: the PD is too low there
    retrain: bool
    reasons: list[str]


def backtest_runs(history: pl.DataFrame, defaults: pl.DataFrame, data_end: date, reference_auc: float, cfg: BacktestConfig) -> list[Backtest]:
    """One backtest per run date of ``history`` (score history) whose label has matured by ``data_end``."""
    scored = history.with_columns(as_of_date=pl.col("as_of_ts").dt.date())
    labelled = label_default_12m(scored, defaults, data_end).filter(pl.col("default_12m").is_not_null())
    out = []
    for (as_of,), run in labelled.group_by("as_of_date", maintain_order=True):
        label = run["default_12m"].cast(pl.Int8).to_numpy()
        prob = run["pd_12m"].to_numpy()
        grades = rate_table(label, prob, run["grade"].to_numpy(), "grade")
        auc = binary_metrics(label, prob, 10)["auc"] if 0 < label.sum() < len(label) else None
        too_low = grades.filter(pl.col("jeffreys_p_underestimate") < cfg.alpha)["grade"].to_list()
        reasons = []
        if auc is not None and auc < reference_auc - cfg.max_auc_drop:
            reasons.append(f"AUC {auc:.3f} is more than {cfg.max_auc_drop} below the champion's test AUC {reference_auc:.3f}")
        if too_low:
            reasons.append(f"observed default rate above the predicted PD (Jeffreys p < {cfg.alpha}) in grade(s) {', '.join(map(str, too_low))}")
        out.append(
            Backtest(
                as_of=as_of, model_version=",".join(sorted(run["model_version"].unique().to_list())), rows=run.height,
                events=int(label.sum()), auc=auc, gini=None if auc is None else 2 * auc - 1, observed_rate=float(label.mean()),
                mean_pd=float(prob.mean()), grades=grades, miscalibrated_grades=too_low, retrain=bool(reasons), reasons=reasons,
            )
        )
    return sorted(out, key=lambda b: b.as_of)
