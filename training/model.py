"""A trained credit model: the LightGBM booster, its calibrator and its input contract.

The one scoring path: training, evaluation, the gate, batch scoring, monitoring, the console and
the scoring service all score and explain through :class:`CreditModel`; nothing else touches
the booster or the calibrator. The service uses the native booster (the MLflow pyfunc adds
~1 ms and 20x the time to a one-row prediction); the pyfunc in the registry wraps this class.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
import polars as pl
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedGroupKFold

BOOSTER_FILE = "model.txt"
META_FILE = "model.json"
# An isotonic block's event rate can be 0 or 1; a PD of exactly 0 is never true and breaks log loss.
PROBABILITY_FLOOR = 1e-6


class ModelInputError(ValueError):
    """A frame lacks a column the model needs."""


@dataclass(frozen=True)
class Calibrator:
    """Raw LightGBM score (log-odds) to probability. Platt: a sigmoid; isotonic: straight lines
    between its knots (flat beyond them). Both increase, so calibration never reorders buyers."""

    method: Literal["platt", "isotonic"]
    slope: float = 1.0
    intercept: float = 0.0
    knots_x: tuple[float, ...] = ()
    knots_y: tuple[float, ...] = ()

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=float)
        if self.method == "platt":
            p = 1.0 / (1.0 + np.exp(-(self.slope * raw + self.intercept)))
        else:
            p = np.interp(raw, self.knots_x, self.knots_y)
        return np.clip(p, PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)

    def as_dict(self) -> dict[str, object]:
        return {"method": self.method, "slope": self.slope, "intercept": self.intercept,
                "knots_x": list(self.knots_x), "knots_y": list(self.knots_y)}

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> Calibrator:
        return cls(
            method=raw["method"],  # type: ignore[arg-type]
            slope=float(raw["slope"]),  # type: ignore[arg-type]
            intercept=float(raw["intercept"]),  # type: ignore[arg-type]
            knots_x=tuple(raw["knots_x"]),  # type: ignore[arg-type]
            knots_y=tuple(raw["knots_y"]),  # type: ignore[arg-type]
        )


# Slope 1, intercept 0: the booster's own probability, a sigmoid of its log-odds.
UNCALIBRATED = Calibrator("platt")


def fit_platt(raw: np.ndarray, label: np.ndarray) -> Calibrator:
    # A very large C: an unpenalised two-parameter fit.
    fitted = LogisticRegression(C=1e6, max_iter=1000).fit(raw.reshape(-1, 1), label)
    slope = float(fitted.coef_[0, 0])
    if slope <= 0:
        raise ValueError("Platt scaling found a non-increasing relation between score and outcome: the model ranks backwards")
    return Calibrator("platt", slope=slope, intercept=float(fitted.intercept_[0]))


def fit_isotonic(raw: np.ndarray, label: np.ndarray) -> Calibrator:
    """Centred isotonic regression (Oron and Flournoy, 2017): the pooled-adjacent-violators fit,
    with one knot at the centre of each pooled block and straight lines between. The plain step
    curve gives every buyer of a block the same PD, so it tied buyers the booster told apart
    (decision 0008). Between the first and last centre this curve keeps the booster's order;
    beyond them it is flat."""
    order = np.argsort(raw, kind="stable")
    x = np.asarray(raw, dtype=float)[order]
    pooled = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(x, np.asarray(label)[order]).predict(x)
    starts = np.r_[0, np.flatnonzero(np.diff(pooled) > 0) + 1]
    centres = np.add.reduceat(x, starts) / np.diff(np.r_[starts, len(x)])
    return Calibrator("isotonic", knots_x=tuple(map(float, centres)), knots_y=tuple(map(float, pooled[starts])))


CALIBRATION_METHODS = {"platt": fit_platt, "isotonic": fit_isotonic}


@dataclass(frozen=True)
class CalibrationChoice:
    chosen: Calibrator
    cv_log_loss: dict[str, float]  # method -> mean out-of-fold log loss on the calibration slice

    @property
    def method(self) -> str:
        return self.chosen.method


def choose_calibrator(raw: np.ndarray, label: np.ndarray, groups: np.ndarray, folds: int) -> CalibrationChoice:
    """Pick Platt or isotonic by out-of-fold log loss (folds by buyer, so a buyer's months stay
    together), then fit the winner on the whole calibration slice. In-sample, isotonic always
    wins: it can memorise; out of fold it wins only when the curve really bends."""
    events = int(label.sum())
    if min(events, len(label) - events) < folds:
        raise ValueError(
            f"the calibration slice has {events} events in {len(label)} rows: too few to choose a calibration "
            f"over {folds} folds; use a longer history, more buyers or more calibration_months"
        )
    # Stratified: with a PD of 2% a plain fold can hold no default at all.
    splitter = StratifiedGroupKFold(n_splits=folds)
    losses: dict[str, float] = {}
    for method, fit in CALIBRATION_METHODS.items():
        fold_losses = []
        for fit_rows, held_rows in splitter.split(raw, label, groups):
            try:
                calibrator = fit(raw[fit_rows], label[fit_rows])
            except ValueError:  # a Platt slope <= 0 on a fold: on a small book, noise can do that
                fold_losses.append(float("inf"))
                continue
            fold_losses.append(log_loss(label[held_rows], calibrator(raw[held_rows]), labels=[0, 1]))
        losses[method] = float(np.mean(fold_losses))
    # A tie goes to the simpler curve. Isotonic always fits: where the scores do not rank at all
    # it is flat, and the walk-forward figures show that model's poor ranking for what it is.
    best = min(losses, key=lambda m: (losses[m], m != "platt"))
    try:
        return CalibrationChoice(CALIBRATION_METHODS[best](raw, label), losses)
    except ValueError:
        return CalibrationChoice(fit_isotonic(raw, label), losses)


def model_matrix(
    frame: pl.DataFrame | pd.DataFrame, features: tuple[str, ...], categories: dict[str, list[str]], model: str
) -> pd.DataFrame:
    """A model's input frame: its features in order, numbers as float64, text as the training
    categories (an unseen level becomes missing). The same function on every path, so training
    and serving cannot encode a feature differently."""
    if isinstance(frame, pd.DataFrame):
        frame = pl.from_pandas(frame)
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise ModelInputError(f"the {model} model needs columns that are missing: {', '.join(missing)}")
    columns = {}
    for f in features:
        values = frame[f]
        if f in categories:
            columns[f] = pd.Categorical(values.cast(pl.String).to_list(), categories=categories[f])
        else:
            columns[f] = values.cast(pl.Float64).to_numpy()
    return pd.DataFrame(columns)


@dataclass(frozen=True)
class Explained:
    """Calibrated probabilities, raw scores and TreeSHAP contributions of some rows."""

    probability: np.ndarray
    raw: np.ndarray
    contributions: np.ndarray  # one column per feature, then the base value
    additivity_error: np.ndarray

    def available(self, tolerance: float) -> np.ndarray:
        return self.additivity_error <= tolerance

    def row(self, i: int) -> Explained:
        """The explanation of row ``i`` alone."""
        return Explained(self.probability[i : i + 1], self.raw[i : i + 1], self.contributions[i : i + 1], self.additivity_error[i : i + 1])


@dataclass(frozen=True)
class CreditModel:
    """A booster plus what it takes to use it: the feature order, the category levels of text
    features, the calibrator, and the monotone directions it was trained under."""

    name: str  # "default" or "late"
    label: str
    booster: lgb.Booster
    features: tuple[str, ...]
    categories: dict[str, list[str]]
    calibrator: Calibrator
    monotone: dict[str, int] = field(default_factory=dict)

    def matrix(self, frame: pl.DataFrame | pd.DataFrame) -> pd.DataFrame:
        return model_matrix(frame, self.features, self.categories, self.name)

    def array(self, x: pd.DataFrame) -> np.ndarray:
        """The model's input as a float array (text as category codes, missing as NaN): what a
        service passes to the booster, skipping pandas' per-call conversion."""
        columns = []
        for f in self.features:
            if f in self.categories:
                codes = x[f].cat.codes.to_numpy(dtype=float)
                codes[codes < 0] = np.nan  # pandas codes a missing level -1
                columns.append(codes)
            else:
                columns.append(x[f].to_numpy(dtype=float))
        return np.column_stack(columns) if columns else np.empty((len(x), 0))

    @functools.cached_property
    def _level_codes(self) -> dict[str, dict[str, int]]:
        return {f: {level: i for i, level in enumerate(levels)} for f, levels in self.categories.items()}

    def rows_array(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """:meth:`array` straight from feature dicts (one per row), with no frame in between:
        the scoring service's path. Text becomes its training level's code (an unseen level is
        missing), None is missing. A test holds it equal to ``array(matrix(frame))``."""
        out = np.full((len(rows), len(self.features)), np.nan)
        for j, f in enumerate(self.features):
            levels = self._level_codes.get(f)
            for i, row in enumerate(rows):
                value = row.get(f)
                if value is None:
                    continue
                if levels is None:
                    out[i, j] = float(value)
                elif (code := levels.get(str(value))) is not None:
                    out[i, j] = code
        return out

    def raw_score(self, x: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The booster's log-odds for a model matrix (:meth:`matrix`) or its array (:meth:`array`)."""
        return np.asarray(self.booster.predict(x, raw_score=True), dtype=float)

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """Raw scores to calibrated probabilities."""
        return self.calibrator(raw)

    def predict_matrix(self, x: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Calibrated probabilities of rows already in the model's input form."""
        return self.calibrate(self.raw_score(x))

    def predict_proba(self, frame: pl.DataFrame | pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities of the label for a frame carrying the model's features."""
        return self.predict_matrix(self.matrix(frame))

    def predict_rows(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """Calibrated probabilities straight from feature dicts (the service's and console's path)."""
        return self.predict_matrix(self.rows_array(rows))

    def contributions(self, x: pd.DataFrame | np.ndarray) -> np.ndarray:
        """LightGBM's exact TreeSHAP: one column per feature, then the base value (log-odds)."""
        return np.asarray(self.booster.predict(x, pred_contrib=True), dtype=float)

    def explain(self, x: pd.DataFrame | np.ndarray) -> Explained:
        """Score rows and explain them with LightGBM's native TreeSHAP, checking additivity per
        row: base value + contributions must equal the raw score the probability came from."""
        raw = self.raw_score(x)
        contributions = self.contributions(x)
        error = np.abs(contributions.sum(axis=1) - raw)
        error[~np.isfinite(error)] = np.inf
        return Explained(self.calibrate(raw), raw, contributions, error)

    def with_calibrator(self, calibrator: Calibrator) -> CreditModel:
        """The same booster and inputs with another calibration curve."""
        return dataclasses.replace(self, calibrator=calibrator)

    def tree_sizes(self) -> list[int]:
        """Leaves per tree."""
        return [int(t["num_leaves"]) for t in self.booster.dump_model()["tree_info"]]

    def shap_explainer(self) -> Any:
        """SHAP's own TreeExplainer of the booster: the cross-check of :meth:`contributions`."""
        import shap

        return shap.TreeExplainer(self.booster)

    def model_text(self) -> str:
        """The booster in LightGBM's text format (what :meth:`save` writes)."""
        return self.booster.model_to_string()

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(folder / BOOSTER_FILE)
        meta = {
            "name": self.name,
            "label": self.label,
            "features": list(self.features),
            "categories": self.categories,
            "calibrator": self.calibrator.as_dict(),
            "monotone": self.monotone,
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: Path) -> CreditModel:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        return cls(
            name=meta["name"],
            label=meta["label"],
            booster=lgb.Booster(model_file=str(folder / BOOSTER_FILE)),
            features=tuple(meta["features"]),
            categories=meta["categories"],
            calibrator=Calibrator.from_dict(meta["calibrator"]),
            monotone={k: int(v) for k, v in meta["monotone"].items()},
        )
