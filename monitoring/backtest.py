"""Outcome backtests of past monitoring runs whose 12-month default label has matured.

Default model: each run's scores are labelled with the training set's own definition (``label_default_12m``:
a default in (as-of, as-of + 365 days], buyers already in default left out, windows that reach
past the data left out), then measured: AUC and Gini, and predicted against observed default
rate per grade with a Jeffreys interval and test (``training.evaluate.rate_table``).
Late-payment model: the invoices each run scored (issued in the window before it) are labelled
with the training set's ``late_30d`` rule once decided, and measured the same way by risk decile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from tradecredit.monitoring.config import BacktestConfig
from tradecredit.features.labels import label_default_12m, label_late
from tradecredit.training.evaluate import binary_metrics, rate_table, risk_deciles


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


def measure(label: np.ndarray, prob: np.ndarray, group: np.ndarray, group_name: str, reference_auc: float, cfg: BacktestConfig) -> tuple[float | None, pl.DataFrame, list[int], list[str]]:
    """AUC, the calibration table by ``group``, the groups whose observed rate is above the
    prediction (one-sided Jeffreys p below alpha), and the reasons to retrain (if any)."""
    table = rate_table(label, prob, group, group_name)
    auc = binary_metrics(label, prob, 10)["auc"] if 0 < label.sum() < len(label) else None
    too_low = table.filter(pl.col("jeffreys_p_underestimate") < cfg.alpha)[group_name].to_list()
    reasons = []
    if auc is not None and auc < reference_auc - cfg.max_auc_drop:
        reasons.append(f"AUC {auc:.3f} is more than {cfg.max_auc_drop} below the champion's test AUC {reference_auc:.3f}")
    if too_low:
        reasons.append(f"observed rate above the prediction (Jeffreys p < {cfg.alpha}) in {group_name}(s) {', '.join(map(str, too_low))}")
    return auc, table, too_low, reasons


def backtest_runs(history: pl.DataFrame, defaults: pl.DataFrame, data_end: date, reference_auc: float, cfg: BacktestConfig) -> list[Backtest]:
    """One backtest per run date of ``history`` (score history) whose label has matured by ``data_end``."""
    scored = history.with_columns(as_of_date=pl.col("as_of_ts").dt.date())
    labelled = label_default_12m(scored, defaults, data_end).filter(pl.col("default_12m").is_not_null())
    out = []
    for (as_of,), run in labelled.group_by("as_of_date", maintain_order=True):
        label = run["default_12m"].cast(pl.Int8).to_numpy()
        prob = run["pd_12m"].to_numpy()
        auc, grades, too_low, reasons = measure(label, prob, run["grade"].to_numpy(), "grade", reference_auc, cfg)
        out.append(
            Backtest(
                as_of=as_of, model_version=",".join(sorted(run["model_version"].unique().to_list())), rows=run.height,
                events=int(label.sum()), auc=auc, gini=None if auc is None else 2 * auc - 1, observed_rate=float(label.mean()),
                mean_pd=float(prob.mean()), grades=grades, miscalibrated_grades=too_low, retrain=bool(reasons), reasons=reasons,
            )
        )
    return sorted(out, key=lambda b: b.as_of)


@dataclass(frozen=True)
class LateBacktest:
    as_of: date
    model_version: str
    rows: int  # decided invoices of the run's window
    events: int  # late ones
    auc: float | None
    gini: float | None
    observed_rate: float
    mean_predicted: float
    deciles: pl.DataFrame  # rate_table by risk decile of the predicted probability
    miscalibrated_deciles: list[int]
    retrain: bool
    reasons: list[str]


def late_backtest_runs(late_history: pl.DataFrame, invoices: pl.DataFrame, late_days: int, data_end: date, reference_auc: float, cfg: BacktestConfig) -> list[LateBacktest]:
    """One backtest per run of ``late_history`` (the invoices each run scored with the late
    model) whose invoices are all decided by ``data_end`` (the training label's rule)."""
    label = f"late_{late_days}d"
    outcomes = label_late(invoices, late_days, data_end).select("invoice_id", "censored", label)
    labelled = late_history.join(outcomes, on="invoice_id", how="left")
    out = []
    for (as_of,), run in labelled.group_by("run_as_of", maintain_order=True):
        # A run is measured once all its invoices are decided: the early ones decide first (paid
        # on time), so a partly decided run would look better than it is.
        if run["censored"].fill_null(True).any():
            continue
        y = run[label].cast(pl.Int8).to_numpy()
        prob = run["p_late"].to_numpy()
        auc, deciles, too_low, reasons = measure(y, prob, risk_deciles(prob), "decile", reference_auc, cfg)
        out.append(
            LateBacktest(
                as_of=as_of, model_version=",".join(sorted(run["model_version"].unique().to_list())), rows=run.height,
                events=int(y.sum()), auc=auc, gini=None if auc is None else 2 * auc - 1, observed_rate=float(y.mean()),
                mean_predicted=float(prob.mean()), deciles=deciles, miscalibrated_deciles=too_low, retrain=bool(reasons), reasons=reasons,
            )
        )
    return sorted(out, key=lambda b: b.as_of)
