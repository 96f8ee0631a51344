"""What a run leaves for people: plots (ROC, calibration, SHAP summary, grade table), the rate
tables, and the model card."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import polars as pl  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from tradecredit.features.catalog import FEATURE_SERVICES, ORDER_FEATURES, features_of_model, model_input_features  # noqa: E402
from tradecredit.model_specs import model_spec  # noqa: E402
from tradecredit.training.evaluate import Evaluation  # noqa: E402
from tradecredit.training.model import CreditModel  # noqa: E402
from tradecredit.training.splits import SplitPlan  # noqa: E402
from tradecredit.training.walk_forward import WalkForward  # noqa: E402

POPULATIONS = {
    "default": (
        "Every buyer on the first of each month, with its features as known that day. Excluded: buyers already "
        "in default on the as-of date, and months whose 12-month window runs past the data."
    ),
    "late": (
        "Every invoice, with the buyer's features as of the day before issue (what an order system knows when "
        "the order arrives) and the order's own amount and terms. Excluded: invoices whose outcome is not yet known."
    ),
}
LIMITS = {
    "default": [
        "A PD for the 12 months after the as-of date, for a buyer not already in default; not a lifetime PD and not a loss given default.",
        "Trained on the portfolio's own history; a buyer unlike any seen (a new country or industry) gets missing-value behaviour, not a tested score.",
        "Calibrated to the default rate of the latest labelled months (their 12 months end at the data's end): a turn in the economy since shows first in monitoring's backtests.",
        "Features older than the feature store's freshness limit make the score stale: the service flags them.",
    ],
    "late": [
        "The probability that one invoice is paid more than 30 days late, for a buyer already in the ledger.",
        "It is not a default model: slow payers that never default score high here.",
        "Terms longer than the label horizon in the config were never seen in training.",
    ],
}


@dataclass(frozen=True)
class ReportFiles:
    folder: Path
    plots: list[Path]
    tables: list[Path]


def write_plots(model: CreditModel, evaluation: Evaluation, explain_x: pd.DataFrame, folder: Path) -> ReportFiles:
    folder.mkdir(parents=True, exist_ok=True)
    e = evaluation
    plots = [
        _roc(e.label, e.prob, e.benchmark_prob, e.truth, folder / "roc.png"),
        _calibration(evaluation.deciles, folder / "calibration.png"),
        _shap_summary(model, explain_x, folder / "shap_summary.png"),
    ]
    tables = [folder / "decile_table.csv"]
    evaluation.deciles.write_csv(tables[0])
    if evaluation.grades is not None:
        plots.append(_grade_plot(evaluation.grades, folder / "grade_table.png"))
        tables.append(folder / "grade_table.csv")
        evaluation.grades.write_csv(tables[-1])
    return ReportFiles(folder, plots, tables)


def _roc(label: np.ndarray, prob: np.ndarray, benchmark: np.ndarray, truth: np.ndarray | None, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 5))
    curves = [("model", prob, label), ("logistic benchmark", benchmark, label)]
    if truth is not None and (~np.isnan(truth)).any():
        known = ~np.isnan(truth)
        curves.append(("oracle (simulator truth)", truth[known], label[known]))
    for name, score, y in curves:
        fpr, tpr, _ = roc_curve(y, score)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, out-of-time test, held-out buyers")
    ax.legend(loc="lower right")
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _calibration(deciles: pl.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 5))
    predicted, observed = deciles["predicted_rate"].to_numpy(), deciles["observed_rate"].to_numpy()
    low, high = deciles["jeffreys_low"].to_numpy(), deciles["jeffreys_high"].to_numpy()
    ax.errorbar(predicted, observed, yerr=np.maximum(0, [observed - low, high - observed]), fmt="o", capsize=3, label="deciles (Jeffreys 95%)")
    top = max(predicted.max(), high.max()) * 1.05
    ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=0.8, label="perfect calibration")
    ax.set(xlabel="mean predicted", ylabel="observed rate", title="Calibration by risk decile")
    ax.legend(loc="upper left")
    return _save(fig, path)


def _shap_summary(model: CreditModel, x: pd.DataFrame, path: Path) -> Path:
    import shap

    contributions = model.contributions(x)[:, :-1]
    display = x.copy()
    for column in model.categories:
        display[column] = display[column].cat.codes.replace(-1, np.nan)
    plt.figure()
    shap.summary_plot(contributions, display, max_display=15, show=False, plot_size=(7, 6))
    plt.title("SHAP contributions (log-odds), test rows")
    plt.tight_layout()
    plt.savefig(path, dpi=110)
    plt.close("all")
    return path


def _grade_plot(grades: pl.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    g = grades["grade"].to_numpy()
    ax.bar(g - 0.2, grades["predicted_rate"].to_numpy(), width=0.4, label="predicted PD")
    observed = grades["observed_rate"].to_numpy()
    # With no events the Jeffreys interval sits above 0: the bar is 0, the whisker starts above it.
    err = np.maximum(0, [observed - grades["jeffreys_low"].to_numpy(), grades["jeffreys_high"].to_numpy() - observed])
    ax.bar(g + 0.2, observed, width=0.4, yerr=err, capsize=2, label="observed (Jeffreys 95%)")
    ax.set_yscale("log")
    ax.set(xlabel="grade (1 best)", ylabel="12-month default rate", title="Predicted against observed by grade")
    ax.set_xticks(g)
    ax.legend()
    return _save(fig, path)


def _table(frame: pl.DataFrame, columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in frame.select(columns).iter_rows():
        cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _label_counts(definition: dict[str, Any]) -> list[str]:
    if "defaults" not in definition:
        return []
    d = definition
    return ["", f"Defaults in the ledger: {d['defaults']:,} ({d['from_credit_events']:,} from credit events, "
                f"{d['from_days_past_due']:,} from days past due; {d['cured']:,} cured) among {d['buyers_defaulted']:,} buyers."]


def _walk_forward_lines(walk_forward: WalkForward) -> list[str]:
    table = walk_forward.table()
    columns = ["trained_to", "test_from", "test_to", "train_rows", "heldout_rows", "heldout_events", "auc", "logistic_auc",
               "no_model_auc", "ece", "all_buyers_auc", "all_buyers_ece"]
    if table["oracle_auc"].null_count() < table.height:
        columns += ["oracle_auc", "oracle_ece"]
    flat = walk_forward.flat_metrics()
    spread = (f"Mean over {len(walk_forward.origins)} origin(s), held-out buyers: AUC {flat['test_auc']:.4f} "
              f"(sd {flat['test_auc_sd']:.4f}), ECE {flat['test_ece']:.4f} (sd {flat['test_ece_sd']:.4f}); "
              f"logistic benchmark AUC {flat['benchmark_auc']:.4f}"
              + (f", no-model rule AUC {flat['no_model_auc']:.4f}" if "no_model_auc" in flat else ", no-model rule: its feature has no value here")
              + (f"; all buyers AUC {flat['test_all_buyers_auc']:.4f}, ECE {flat['test_all_buyers_ece']:.4f}" if "test_all_buyers_auc" in flat else "")
              + (f"; the oracle's own ECE on the same rows {flat['oracle_ece']:.4f}" if "oracle_ece" in flat else "") + ".")
    return [_table(table.with_columns(pl.col(c).cast(pl.Float64) for c in ("heldout_rows", "heldout_events")), columns)
            .replace("| None ", "| - "), "", spread]


def model_card(
    *, model: CreditModel, version: str | None, plan: SplitPlan, slice_rows: dict[str, int], excluded: dict[str, int],
    evaluation: Evaluation, walk_forward: WalkForward, served: dict[str, Any],
    calibration: dict[str, object], explain: dict[str, float], tuning: dict[str, object],
    label_definition: dict[str, Any], sources: dict[str, bool], dropped_features: tuple[str, ...],
    config_sha256: str, data_fingerprint: str, left_out_views: tuple[str, ...] = (),
) -> str:
    """A Markdown model card: what the model predicts, for whom, from what, how well, and where not to use it."""
    m, b = evaluation.metrics, evaluation.benchmark
    service = FEATURE_SERVICES[model.name][0]
    features = [f for f in model_input_features(model.name) if f.name in model.features]
    order = [f for f in features if f in ORDER_FEATURES]  # the late model's order features
    served_count = len(features_of_model(model.name))
    constrained = ", ".join(f"`{f}` ({'+' if d > 0 else '-'})" for f, d in model.monotone.items())
    lines = [
        f"# Model card: {model.name} ({model.label})" + (f", version {version}" if version else ""),
        "",
        "## Label",
        str(label_definition.get("text", "(the training set's summary does not state its label: rebuild it)")),
        *_label_counts(label_definition),
        "",
        "## Population and exclusions",
        POPULATIONS[model.name],
        "",
        "Rows by slice: " + ", ".join(f"{k} {v:,}" for k, v in slice_rows.items()) + ".",
        "Excluded: " + (", ".join(f"{k} {v:,}" for k, v in excluded.items()) or "none") + ".",
        "",
        "## Windows",
        f"Served model: fitted on {served['rows']:,} rows, every buyer's as-of dates {plan.data_start} .. {served['last_date']} "
        f"({served['rows'] / max(slice_rows['labelled'], 1):.0%} of the {slice_rows['labelled']:,} labelled rows; "
        f"through the last complete label), {served['rounds']} boosting rounds; calibrated on the out-of-fold scores of "
        f"{served['calibration_rows']:,} rows from {served['calibration_start']} (cross-fitting by buyer).",
        "",
        f"Tuning: {plan.describe()}.",
        "",
        f"Validation: {plan.describe_walk_forward()}. Each origin fits the same procedure on the trained-on buyers' rows "
        "labelled by then; the hyperparameters are the tuning split's, whose test window is the latest origin's.",
        "",
        "## Walk-forward evaluation (the gate judges these)",
        "AUC and ECE on held-out buyers unless named; each origin's own model, logistic benchmark and no-model rule "
        f"({model_spec(model.name).no_model_rule}).",
        "",
        *_walk_forward_lines(walk_forward),
        "",
        "## Features",
        "Ledger sources with data: " + (", ".join(k for k, v in sources.items() if v) or "invoices only")
        + "; without: " + (", ".join(k for k, v in sources.items() if not v) or "none") + ".",
        (f"Left out, no value in the training set (their source is absent): {len(dropped_features)}: "
         + ", ".join(f"`{f}`" for f in dropped_features) + "." if dropped_features else "No feature was left out for want of a source."),
        *([f"Feature views served but not read, by configuration (`training.{model.name}.left_out_views`): "
           + ", ".join(f"`{v}`" for v in left_out_views) + "."] if left_out_views else []),
        "",
        (f"{len(features)} features: {len(features) - len(order)} of the {served_count} of the Feast feature service `{service}` plus the "
         f"order's own {len(order)}" if order else f"{len(features)} of the {served_count} features of the Feast feature service `{service}`")
        + f". Monotone constraints (+: never lowers risk, -: never raises it): {constrained}.",
        "",
        "## Model",
        f"LightGBM, {explain['trees']:.0f} trees, {explain['leaves']:.0f} leaves in all; tuned with Optuna TPE "
        f"({tuning['trials_completed']} trials completed, {tuning['trials_pruned']} pruned). "
        f"Calibration: {calibration['method']} (out-of-fold log loss {calibration['cv_log_loss']}). "
        f"Scoring one row takes {explain['score_ms_per_row']:.3f} ms and explaining it (TreeSHAP) "
        f"{explain['explain_ms_per_row']:.3f} ms on this machine.",
        "",
        "## Performance pooled over the origins' test months (held-out buyers)",
        "| metric | model | logistic benchmark |",
        "|---|---|---|",
        *[f"| {k} | {m[k]:.4f} | {b[k]:.4f} |" for k in ("auc", "gini", "ks", "brier", "log_loss", "ece", "pr_auc")],
        "",
        f"AUC against the benchmark: {m['auc'] - b['auc']:+.4f}. Rows {m['rows']:.0f}, events {m['positives']:.0f} "
        f"(observed rate {m['observed_rate']:.4f}, mean predicted {m['mean_predicted']:.4f})."
        + (f" On test rows of buyers it trained on, AUC is {evaluation.seen_buyers_auc:.4f}." if evaluation.seen_buyers_auc else ""),
    ]
    if evaluation.oracle:
        o = evaluation.oracle
        lines += [
            "",
            f"Against the simulator's truth on the {o['rows']:.0f} test rows that have one: oracle AUC {o['auc']:.4f}, "
            f"model AUC {o['model_auc_same_rows']:.4f} (ratio {o['auc_ratio']:.3f}); oracle ECE {o['ece']:.4f}, "
            f"model ECE {o['model_ece_same_rows']:.4f}.",
        ]
    lines += ["", "### By risk decile", _table(evaluation.deciles, ["decile", "rows", "events", "predicted_rate", "observed_rate", "jeffreys_low", "jeffreys_high", "jeffreys_p_underestimate"])]
    if evaluation.grades is not None:
        lines += ["", "### By grade", _table(evaluation.grades, ["grade", "rows", "events", "predicted_rate", "observed_rate", "jeffreys_low", "jeffreys_high", "jeffreys_p_underestimate"])]
    lines += ["", "## Limits of use", *[f"- {item}" for item in LIMITS[model.name]], "",
              f"Config SHA-256 `{config_sha256}`; training data fingerprint `{data_fingerprint}`.", ""]
    return "\n".join(lines)
