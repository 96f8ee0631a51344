"""Checks on a trained model that the champion gate and the tests rely on: a monotonicity
sweep (the behaviour, not the training flag), SHAP additivity, and explanation cost."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tradecredit.training.model import CreditModel

SWEEP_POINTS = 15
ADDITIVITY_TOLERANCE = 1e-6


@dataclass(frozen=True)
class MonotoneSweep:
    features_checked: int
    rows: int
    violations: int  # (row, feature, grid step) where the PD moved against the declared direction
    worst_feature: str | None
    worst_step: float  # largest move against the direction, in calibrated PD


def monotone_sweep(model: CreditModel, x: pd.DataFrame) -> MonotoneSweep:
    """For each constrained feature, move it across its observed range (quantiles of the sample)
    with every other feature held at each row's value, and count PD moves against the declared
    direction. Calibrated PDs are checked, so the calibrator's monotonicity is tested too."""
    violations, worst, worst_feature = 0, 0.0, None
    for feature, direction in model.monotone.items():
        values = x[feature].dropna().to_numpy(dtype=float)
        if values.size == 0:
            continue
        grid = np.unique(np.quantile(values, np.linspace(0, 1, SWEEP_POINTS)))
        if grid.size < 2:
            continue
        swept = pd.concat([x] * grid.size, ignore_index=True)
        swept[feature] = np.repeat(grid, len(x))
        pd_grid = model.predict_matrix(swept).reshape(grid.size, len(x))
        steps = np.diff(pd_grid, axis=0) * direction  # must be >= 0
        against = steps < -1e-12
        violations += int(against.sum())
        if against.any() and -steps.min() > worst:
            worst, worst_feature = float(-steps.min()), feature
    return MonotoneSweep(len(model.monotone), len(x), violations, worst_feature, worst)


def shap_additivity_error(model: CreditModel, x: pd.DataFrame) -> float:
    """Largest |base value + contributions - raw score| over the rows (log-odds)."""
    contributions = model.contributions(x)
    return float(np.max(np.abs(contributions.sum(axis=1) - model.raw_score(x))))


@dataclass(frozen=True)
class ExplainCost:
    score_ms_per_row: float  # one row at a time, median
    explain_ms_per_row: float  # TreeSHAP, one row at a time, median
    trees: int
    leaves: int


def explain_cost(model: CreditModel, x: pd.DataFrame, repeats: int = 200) -> ExplainCost:
    """What one served score and its explanation cost, one row at a time as the service sees them."""
    array = model.array(x)
    rows = [array[[i % len(array)]] for i in range(repeats)]
    score, explain = [], []
    for row in rows:
        start = time.perf_counter()
        model.raw_score(row)
        score.append(time.perf_counter() - start)
        start = time.perf_counter()
        model.contributions(row)
        explain.append(time.perf_counter() - start)
    leaves = model.tree_sizes()
    return ExplainCost(
        score_ms_per_row=float(np.median(score) * 1000),
        explain_ms_per_row=float(np.median(explain) * 1000),
        trees=len(leaves),
        leaves=int(sum(leaves)),
    )
