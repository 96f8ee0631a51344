"""The training procedure at one cutoff, the same for every walk-forward origin and for the served
model: a booster fitted on every row given, with the tuned parameters and rounds scaled to the
rows, calibrated on out-of-fold scores of the latest months (cross-fitting by buyer).

Why cross-fitting: the served model should learn from the latest labelled months too, yet its
calibration needs scores of rows it did not train on. Each fold's booster leaves out every row of
a share of buyers; its scores of those buyers' latest months are out of fold, and the calibrator
fitted on them carries over to the booster fitted on everything (docs/decisions/0008-production-models.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import lightgbm as lgb
import numpy as np
import pandas as pd
import polars as pl
from sklearn.model_selection import StratifiedGroupKFold

from tradecredit.training.config import ModelTrainingConfig
from tradecredit.training.model import UNCALIBRATED, CalibrationChoice, CreditModel, choose_calibrator, model_matrix
from tradecredit.training.splits import _add_months


class ProcedureError(ValueError):
    """The rows cannot be fitted and calibrated (too few events in the latest months)."""


def scaled_rounds(tuned_rounds: int, tuned_rows: int, rows: int, cap: int) -> int:
    """Boosting rounds for ``rows`` rows from the rounds early stopping chose on ``tuned_rows``:
    more rows carry more rounds at the same learning rate before they overfit. The square root
    is the cautious middle between keeping the count and scaling it with the rows."""
    return max(1, min(cap, round(tuned_rounds * math.sqrt(max(rows, 1) / max(tuned_rows, 1)))))


def fit_booster(params: dict[str, object], x: pd.DataFrame, y: np.ndarray, rounds: int) -> lgb.Booster:
    return lgb.train(params, lgb.Dataset(x, y, free_raw_data=False), num_boost_round=rounds)


# The final fit may run elsewhere (LightGBM's Dask estimator): (params, x, y, rounds) -> booster.
BoosterFit = Callable[[dict[str, object], pd.DataFrame, np.ndarray, int], lgb.Booster]


@dataclass(frozen=True)
class FittedProcedure:
    model: CreditModel
    calibration: CalibrationChoice
    rows: int  # rows the booster was fitted on
    rounds: int
    calibration_rows: int  # latest-month rows whose out-of-fold scores chose and fitted the calibration
    calibration_start: date  # first as-of date of those months
    last_date: date


@dataclass(frozen=True)
class ProcedureSpec:
    """What the procedure needs besides the rows: the model's inputs and the tuned booster."""

    model: str
    label: str
    date_column: str
    features: tuple[str, ...]
    categories: dict[str, list[str]]
    monotone: dict[str, int]
    params: dict[str, object]
    tuned_rounds: int
    tuned_rows: int
    rounds_cap: int


def _days(rows: pl.DataFrame, column: str) -> pl.Series:
    day = rows[column]
    return day.dt.date() if day.dtype != pl.Date else day


def fit_procedure(rows: pl.DataFrame, spec: ProcedureSpec, cfg: ModelTrainingConfig, final_fit: BoosterFit = fit_booster) -> FittedProcedure:
    """Fit on every row of ``rows``; calibrate on the out-of-fold scores of its last
    ``calibration_months`` months, folds by buyer (a held-out fold's buyers leave training entirely)."""
    days = _days(rows, spec.date_column)
    last = days.max()
    calibration_start = _add_months(last.replace(day=1), -(cfg.split.calibration_months - 1))
    recent = np.flatnonzero((days >= calibration_start).to_numpy())
    x = model_matrix(rows, spec.features, spec.categories, spec.model)
    y = rows[spec.label].to_numpy().astype(int)
    buyers = rows["buyer_id"].to_numpy()
    events = int(y[recent].sum())
    folds = cfg.crossfit_folds
    if min(events, len(recent) - events) < max(folds, cfg.calibration_folds) or len(np.unique(buyers[recent])) < folds:
        raise ProcedureError(
            f"the latest {cfg.split.calibration_months} months up to {last} hold {events} events in {len(recent)} rows: "
            f"too few to calibrate over {folds} folds of buyers; use a longer history, more buyers or more calibration_months"
        )
    raw_out_of_fold = np.empty(len(recent))
    splitter = StratifiedGroupKFold(n_splits=folds)
    for _, held in splitter.split(recent, y[recent], buyers[recent]):
        keep = ~np.isin(buyers, np.unique(buyers[recent[held]]))
        rounds = scaled_rounds(spec.tuned_rounds, spec.tuned_rows, int(keep.sum()), spec.rounds_cap)
        booster = fit_booster(spec.params, x[keep], y[keep], rounds)
        raw_out_of_fold[held] = booster.predict(x.iloc[recent[held]], raw_score=True)
    choice = choose_calibrator(raw_out_of_fold, y[recent], buyers[recent], cfg.calibration_folds)
    rounds = scaled_rounds(spec.tuned_rounds, spec.tuned_rows, len(y), spec.rounds_cap)
    booster = final_fit(spec.params, x, y, rounds)
    model = CreditModel(spec.model, spec.label, booster, spec.features, spec.categories, UNCALIBRATED, spec.monotone)
    return FittedProcedure(model.with_calibrator(choice.chosen), choice, len(y), rounds, len(recent), calibration_start, last)
