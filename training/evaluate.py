"""Out-of-time evaluation: discrimination and calibration metrics, rate tables with a Jeffreys
test per row, the logistic-regression benchmark, and the simulator's oracle when there is one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl
from scipy import stats
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score, roc_curve
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from tradecredit.policy_config import PolicyConfig
from tradecredit.grades import grade_of

# Jeffreys interval level of the rate tables (the ECB's validation instructions use the
# one-sided Jeffreys test; the two-sided 95% interval is what a reviewer reads).
INTERVAL = 0.95


def expected_calibration_error(label: np.ndarray, prob: np.ndarray, bins: int) -> float:
    """Row-weighted mean |predicted - observed| over equal-count bins of the prediction.
    Equal-count bins: with PDs of a few percent, equal-width bins would put almost every row
    in the first one."""
    order = np.argsort(prob, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            total += len(chunk) * abs(prob[chunk].mean() - label[chunk].mean())
    return float(total / len(prob))


def ranking_metrics(label: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """What a score that is not a probability can be judged on: how it ranks (the no-model rule)."""
    label = np.asarray(label, dtype=int)
    score = np.asarray(score, dtype=float)
    if label.min() == label.max():
        raise ValueError("the evaluation rows have only one outcome class: AUC is undefined")
    auc = roc_auc_score(label, score)
    fpr, tpr, _ = roc_curve(label, score)
    return {
        "rows": float(len(label)),
        "positives": float(label.sum()),
        "observed_rate": float(label.mean()),
        "auc": float(auc),
        "gini": float(2 * auc - 1),
        "ks": float(np.max(tpr - fpr)),
        "pr_auc": float(average_precision_score(label, score)),
    }


def binary_metrics(label: np.ndarray, prob: np.ndarray, ece_bins: int) -> dict[str, float]:
    label = np.asarray(label, dtype=int)
    prob = np.asarray(prob, dtype=float)
    return ranking_metrics(label, prob) | {
        "mean_predicted": float(prob.mean()),
        "brier": float(brier_score_loss(label, prob)),
        "log_loss": float(log_loss(label, np.clip(prob, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "ece": expected_calibration_error(label, prob, ece_bins),
    }


def rate_table(label: np.ndarray, prob: np.ndarray, group: np.ndarray, group_name: str) -> pl.DataFrame:
    """Predicted against observed rate per group, with the Jeffreys interval of the observed
    rate, the one-sided Jeffreys p-value (small: the predicted rate is too low) and a two-sided
    exact binomial p-value of the predicted rate."""
    rows = []
    for g in np.unique(group):
        mask = group == g
        n, d = int(mask.sum()), int(label[mask].sum())
        predicted = float(prob[mask].mean())
        beta = stats.beta(d + 0.5, n - d + 0.5)
        low, high = beta.ppf((1 - INTERVAL) / 2), beta.ppf(1 - (1 - INTERVAL) / 2)
        rows.append({
            group_name: int(g),
            "rows": n,
            "events": d,
            "predicted_rate": predicted,
            "observed_rate": d / n,
            "jeffreys_low": float(low),
            "jeffreys_high": float(high),
            "jeffreys_p_underestimate": float(beta.cdf(predicted)),
            "binomial_p": float(stats.binomtest(d, n, min(max(predicted, 1e-12), 1 - 1e-12)).pvalue),
            "predicted_within_interval": bool(low <= predicted <= high),
        })
    return pl.DataFrame(rows)


def risk_deciles(prob: np.ndarray) -> np.ndarray:
    """1 = the tenth of rows with the lowest predicted risk, 10 = the highest."""
    ranks = np.argsort(np.argsort(prob, kind="stable"), kind="stable")
    return (ranks * 10 // len(prob)) + 1


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]  # model on the headline rows
    benchmark: dict[str, float]  # logistic regression, same rows
    seen_buyers_auc: float | None  # the model on test rows of buyers it trained on
    oracle: dict[str, float] | None  # truth on the rows that have one, and the model on those rows
    deciles: pl.DataFrame
    grades: pl.DataFrame | None
    # The headline rows' outcomes and scores, kept for the plots (truth: NaN where none).
    label: np.ndarray
    prob: np.ndarray
    benchmark_prob: np.ndarray
    truth: np.ndarray | None


def evaluate_predictions(
    label: np.ndarray,
    prob: np.ndarray,
    benchmark_prob: np.ndarray,
    truth: np.ndarray | None,
    ece_bins: int,
    policy: PolicyConfig | None,
    seen_label: np.ndarray | None = None,
    seen_prob: np.ndarray | None = None,
) -> Evaluation:
    """``truth``: the simulator's true probability per row (NaN where it has none)."""
    oracle = None
    if truth is not None:
        known = ~np.isnan(truth)
        if known.sum() and label[known].min() != label[known].max():
            oracle_metrics = binary_metrics(label[known], truth[known], ece_bins)
            model_same_rows = binary_metrics(label[known], prob[known], ece_bins)
            oracle = {
                "rows": oracle_metrics["rows"],
                "auc": oracle_metrics["auc"],
                "ece": oracle_metrics["ece"],
                "log_loss": oracle_metrics["log_loss"],
                "model_auc_same_rows": model_same_rows["auc"],
                "model_ece_same_rows": model_same_rows["ece"],
                "auc_ratio": model_same_rows["auc"] / oracle_metrics["auc"],
            }
    seen_auc = None
    if seen_label is not None and seen_prob is not None and len(seen_label) and seen_label.min() != seen_label.max():
        seen_auc = float(roc_auc_score(seen_label, seen_prob))
    return Evaluation(
        metrics=binary_metrics(label, prob, ece_bins),
        benchmark=binary_metrics(label, benchmark_prob, ece_bins),
        seen_buyers_auc=seen_auc,
        oracle=oracle,
        deciles=rate_table(label, prob, risk_deciles(prob), "decile"),
        grades=rate_table(label, prob, grade_of(prob, policy), "grade") if policy is not None else None,
        label=label,
        prob=prob,
        benchmark_prob=benchmark_prob,
        truth=truth,
    )


def _signed_log(x: np.ndarray) -> np.ndarray:
    # Amounts, capital and counts are heavy-tailed; a logistic model needs them compressed.
    return np.sign(x) * np.log1p(np.abs(x))


def fit_benchmark(x: pd.DataFrame, label: np.ndarray, seed: int) -> Pipeline:
    """The simple model the booster must beat: logistic regression on the same features, with
    median imputation plus missing flags, a signed log, scaling, and one-hot text."""
    text = [c for c in x.columns if isinstance(x[c].dtype, pd.CategoricalDtype)]
    numbers = [c for c in x.columns if c not in text]
    prepare = ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                                  FunctionTransformer(_signed_log), StandardScaler()), numbers),
        ("text", OneHotEncoder(handle_unknown="ignore"), text),
    ])
    model = Pipeline([("prepare", prepare), ("logistic", LogisticRegression(C=0.1, max_iter=2000, random_state=seed))])
    return model.fit(_as_objects(x, text), label)


def benchmark_predict(model: Pipeline, x: pd.DataFrame) -> np.ndarray:
    text = [c for c in x.columns if isinstance(x[c].dtype, pd.CategoricalDtype)]
    return model.predict_proba(_as_objects(x, text))[:, 1]


def _as_objects(x: pd.DataFrame, text: list[str]) -> pd.DataFrame:
    # OneHotEncoder wants plain strings; a missing level becomes its own "missing" category.
    out = x.copy()
    for c in text:
        out[c] = out[c].astype(object).where(out[c].notna(), "missing")
    return out
