"""Walk-forward evaluation of the training procedure: at each origin, the procedure fitted on the
trained-on buyers' rows labelled by then, the logistic benchmark fitted on the same rows and the
no-model rule, all scored on the months after the gap. The headline is the mean over origins on
held-out buyers, with its spread, and the same on all buyers beside it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from tradecredit.model_specs import model_spec
from tradecredit.policy_config import PolicyConfig
from tradecredit.training.config import ModelTrainingConfig
from tradecredit.training.evaluate import (
    Evaluation,
    benchmark_predict,
    binary_metrics,
    evaluate_predictions,
    expected_calibration_error,
    fit_benchmark,
    ranking_metrics,
)
from tradecredit.training.procedure import FittedProcedure, ProcedureSpec, fit_procedure
from tradecredit.training.significance import AucDifference, CalibrationTest, auc_differences, calibration_test
from tradecredit.training.splits import HOLDOUT, ORIGIN, Origin, SplitPlan

MODEL, LOGISTIC, NO_MODEL, TRUTH = "prob", "benchmark_prob", "no_model_score", "truth"
# The figures each origin reports, per population (held-out buyers, all buyers).
ORIGIN_METRICS = ("rows", "positives", "observed_rate", "mean_predicted", "auc", "ece", "brier", "log_loss", "ks", "gini", "pr_auc")


def _day(frame: pl.DataFrame, column: str) -> pl.Expr:
    return pl.col(column) if frame.schema[column] == pl.Date else pl.col(column).dt.date()


def no_model_score(rows: pl.DataFrame, feature: str) -> np.ndarray | None:
    """The buyer's own history as its score; a row without that history gets the rows' median
    (neither safest nor riskiest). None when the ledger cannot feed the feature at all."""
    if feature not in rows.columns or rows[feature].null_count() == rows.height:
        return None
    values = rows[feature].cast(pl.Float64)
    return values.fill_null(values.median()).to_numpy()


@dataclass(frozen=True)
class OriginResult:
    origin: Origin
    fitted: FittedProcedure | None  # None when rebuilt from a run's predictions (evaluate)
    metrics: dict[str, dict[str, float | None]]  # population -> score -> AUC / ECE ... ("model", "logistic", "no_model")


@dataclass(frozen=True)
class WalkForward:
    origins: tuple[OriginResult, ...]
    predictions: pl.DataFrame  # every origin's test rows: keys, origin, holdout_buyer, label, the scores, truth
    label: str
    evaluation: Evaluation  # pooled held-out predictions: the card's decile and grade tables, the plots

    def rows(self, holdout: bool | None = True) -> pl.DataFrame:
        return self.predictions if holdout is None else self.predictions.filter(pl.col(HOLDOUT) == holdout)

    def mean(self, population: str, score: str, metric: str) -> tuple[float, float] | None:
        values = [v for o in self.origins if (v := o.metrics[population].get(f"{score}_{metric}")) is not None]
        if not values:
            return None
        return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0

    def flat_metrics(self) -> dict[str, float]:
        """``test_*``: the mean over origins on held-out buyers (``*_sd`` its spread); the logistic
        benchmark's and the no-model rule's beside; ``test_all_buyers_*`` on every buyer."""
        flat: dict[str, float] = {"walk_forward_origins": float(len(self.origins))}
        wanted = [("heldout", "model", "test", ORIGIN_METRICS),
                  ("heldout", "logistic", "benchmark", ("auc", "gini", "ks", "brier", "log_loss", "ece", "pr_auc")),
                  ("heldout", "no_model", "no_model", ("auc", "gini", "ks", "pr_auc")),
                  ("heldout", "oracle", "oracle", ("auc", "ece", "auc_ratio")),
                  ("all", "model", "test_all_buyers", ("rows", "auc", "ece")),
                  ("all", "logistic", "benchmark_all_buyers", ("auc", "ece")),
                  ("all", "no_model", "no_model_all_buyers", ("auc",)),
                  ("seen", "model", "test_seen_buyers", ("auc",))]
        for population, score, prefix, metrics in wanted:
            for metric in metrics:
                if (m := self.mean(population, score, metric)) is not None:
                    flat[f"{prefix}_{metric}"] = m[0]
        for metric in ("auc", "ece"):
            if (m := self.mean("heldout", "model", metric)) is not None:
                flat[f"test_{metric}_sd"] = m[1]
        # The oracle's rows may be fewer than the test rows: the model on exactly those rows.
        for metric in ("auc", "ece"):
            if (m := self.mean("heldout", "oracle", f"model_{metric}")) is not None:
                flat[f"oracle_model_{metric}_same_rows"] = m[0]
        flat["auc_lift_over_benchmark"] = flat["test_auc"] - flat["benchmark_auc"]
        if "no_model_auc" in flat:
            flat["auc_lift_over_no_model"] = flat["test_auc"] - flat["no_model_auc"]
        return flat

    def table(self) -> pl.DataFrame:
        """One row per origin (latest last): windows, rows, and each score's AUC and ECE."""
        rows = []
        for r in reversed(self.origins):
            h, a = r.metrics["heldout"], r.metrics["all"]
            rows.append({
                "trained_to": r.origin.train_end.isoformat(), "test_from": r.origin.test_start.isoformat(),
                "test_to": r.origin.test_end.isoformat(), "train_rows": r.fitted.rows if r.fitted else None,
                "rounds": r.fitted.rounds if r.fitted else None,
                "calibration": r.fitted.calibration.method if r.fitted else None, "heldout_rows": h.get("model_rows"), "heldout_events": h.get("model_positives"),
                "auc": h.get("model_auc"), "logistic_auc": h.get("logistic_auc"), "no_model_auc": h.get("no_model_auc"),
                "ece": h.get("model_ece"), "oracle_ece": h.get("oracle_ece"), "oracle_auc": h.get("oracle_auc"),
                "all_buyers_auc": a.get("model_auc"), "all_buyers_ece": a.get("model_ece"),
            })
        return pl.DataFrame(rows)


def _population_metrics(rows: pl.DataFrame, label: str, ece_bins: int) -> dict[str, float | None]:
    """The model's, the benchmark's, the no-model rule's and (where known) the truth's figures on some rows."""
    y = rows[label].to_numpy().astype(int)
    out: dict[str, float | None] = {}
    if rows.height == 0 or y.min() == y.max():
        return out
    for score, column in (("model", MODEL), ("logistic", LOGISTIC), ("no_model", NO_MODEL)):
        if column in rows.columns and rows[column].null_count() == 0:
            measure = ranking_metrics(y, rows[column].to_numpy()) if column == NO_MODEL else binary_metrics(y, rows[column].to_numpy(), ece_bins)
            out |= {f"{score}_{k}": v for k, v in measure.items()}
    if TRUTH in rows.columns:
        known = rows.filter(pl.col(TRUTH).is_not_nan() & pl.col(TRUTH).is_not_null())
        yk = known[label].to_numpy().astype(int)
        if known.height and yk.min() != yk.max():
            truth = binary_metrics(yk, known[TRUTH].to_numpy(), ece_bins)
            same = binary_metrics(yk, known[MODEL].to_numpy(), ece_bins)
            out |= {"oracle_auc": truth["auc"], "oracle_ece": truth["ece"], "oracle_model_auc": same["auc"],
                    "oracle_model_ece": same["ece"], "oracle_auc_ratio": same["auc"] / truth["auc"]}
    return out


def walk_forward(
    frame: pl.DataFrame, plan: SplitPlan, spec: ProcedureSpec, cfg: ModelTrainingConfig, seed: int,
    truth_of: Callable[[pl.DataFrame], np.ndarray | None], policy: PolicyConfig,
    sample: Callable[[pl.DataFrame], pl.DataFrame],
) -> WalkForward:
    """Run the procedure at each origin of ``plan``. ``frame`` carries ``holdout_buyer``;
    ``truth_of(rows)`` gives the simulator's truth per row (or None), ``sample(rows)`` the rows
    to fit on (``max_train_rows``)."""
    keys = list(model_spec(spec.model).keys)
    no_model_feature = model_spec(spec.model).no_model_feature
    day = _day(frame, spec.date_column)
    fitted_at, parts = [], []
    for index, origin in enumerate(plan.origins):
        train_rows = sample(frame.filter((day <= origin.train_end) & ~pl.col(HOLDOUT)))
        fitted = fit_procedure(train_rows, spec, cfg)
        logistic = fit_benchmark(fitted.model.matrix(train_rows), train_rows[spec.label].to_numpy(), seed)
        test = frame.filter(day.is_between(origin.test_start, origin.test_end))
        x = fitted.model.matrix(test)
        scores = {MODEL: fitted.model.predict_matrix(x), LOGISTIC: benchmark_predict(logistic, x)}
        no_model = no_model_score(test, no_model_feature)
        if no_model is not None:
            scores[NO_MODEL] = no_model
        truth = truth_of(test)
        if truth is not None:
            scores[TRUTH] = truth
        parts.append(test.select(*dict.fromkeys(["buyer_id", *keys, spec.date_column]), HOLDOUT, spec.label).with_columns(
            pl.lit(index).alias(ORIGIN), *[pl.Series(k, v, dtype=pl.Float64) for k, v in scores.items()]))
        fitted_at.append(fitted)
    return summarise(pl.concat(parts, how="diagonal_relaxed"), plan, spec.model, spec.label, cfg, policy, fitted_at)


def summarise(
    predictions: pl.DataFrame, plan: SplitPlan, model: str, label: str, cfg: ModelTrainingConfig, policy: PolicyConfig,
    fitted: list[FittedProcedure] | None = None,
) -> WalkForward:
    """Every walk-forward figure from the row-level predictions: what training reports, and what
    ``evaluate`` and the gate recompute from the run's predictions file."""
    results = []
    for index, origin in enumerate(plan.origins):
        part = predictions.filter(pl.col(ORIGIN) == index)
        metrics = {
            "heldout": _population_metrics(part.filter(pl.col(HOLDOUT)), label, cfg.ece_bins),
            "all": _population_metrics(part, label, cfg.ece_bins),
            "seen": _population_metrics(part.filter(~pl.col(HOLDOUT)), label, cfg.ece_bins),
        }
        results.append(OriginResult(origin, fitted[index] if fitted else None, metrics))
    if not any(r.metrics["heldout"] for r in results):
        raise ValueError(
            f"no walk-forward origin's test months hold both outcomes among held-out buyers "
            f"({predictions.filter(pl.col(HOLDOUT)).height} rows, {int(predictions.filter(pl.col(HOLDOUT))[label].sum())} events): "
            "too small a book to measure the model out of time; use a longer history or more buyers"
        )
    return WalkForward(tuple(results), predictions, label, pooled_evaluation(predictions, model, label, cfg, policy))


def pooled_evaluation(predictions: pl.DataFrame, model: str, label: str, cfg: ModelTrainingConfig, policy: PolicyConfig) -> Evaluation:
    held = predictions.filter(pl.col(HOLDOUT))
    seen = predictions.filter(~pl.col(HOLDOUT))
    truth = held[TRUTH].fill_null(float("nan")).to_numpy() if TRUTH in held.columns else None
    return evaluate_predictions(
        label=held[label].to_numpy().astype(int), prob=held[MODEL].to_numpy(), benchmark_prob=held[LOGISTIC].to_numpy(),
        truth=truth, ece_bins=cfg.ece_bins, policy=policy if model == "default" else None,
        seen_label=seen[label].to_numpy().astype(int), seen_prob=seen[MODEL].to_numpy(),
    )


@dataclass(frozen=True)
class NoiseEvidence:
    """The challenger's walk-forward predictions weighed against sampling noise."""

    auc: dict[str, float]  # "model", "logistic", "no_model" (and "champion") -> AUC, the mean over origins
    against: dict[str, AucDifference]  # the model's AUC minus each other's, mean over origins
    ece: float  # the model's, the mean over origins
    calibration: CalibrationTest


def noise_evidence(predictions: pl.DataFrame, label: str, cfg: ModelTrainingConfig, seed: int,
                   extra: dict[str, np.ndarray] | None = None) -> NoiseEvidence:
    """Paired buyer bootstrap of the model's AUC minus each benchmark's (each origin's AUC, then the
    mean over origins, as the headline); Spiegelhalter on the pooled rows. ``predictions``: the
    held-out rows the gate judges; ``extra``: more scores of the same rows (the champion's)."""
    scores = {"model": predictions[MODEL].to_numpy()}
    scores["logistic"] = predictions[LOGISTIC].to_numpy()
    if NO_MODEL in predictions.columns and predictions[NO_MODEL].null_count() == 0:
        scores["no_model"] = predictions[NO_MODEL].to_numpy()
    scores |= extra or {}
    y = predictions[label].to_numpy().astype(int)
    origins = predictions[ORIGIN].to_numpy()
    compared = auc_differences(y, scores, "model", predictions["buyer_id"].to_numpy(), origins,
                               cfg.gate.bootstrap_samples, cfg.gate.confidence, seed)
    eces = [expected_calibration_error(y[origins == o], scores["model"][origins == o], cfg.ece_bins)
            for o in np.unique(origins) if 0 < y[origins == o].sum() < (origins == o).sum()]
    return NoiseEvidence(compared.auc, compared.against, float(np.mean(eces)) if eces else float("nan"),
                         calibration_test(y, scores["model"], cfg.ece_bins, predictions["buyer_id"].to_numpy()))
