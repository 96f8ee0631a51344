"""The champion gate: a challenger becomes champion only with evidence. AUC and calibration are
recomputed from the row-level walk-forward predictions of the challenger's run (held-out
buyers) and weighed against sampling noise; monotonicity and SHAP additivity are re-measured on
the served model itself."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import polars as pl

from tradecredit.training.config import ModelTrainingConfig
from tradecredit.training.checks import ADDITIVITY_TOLERANCE, monotone_sweep, shap_additivity_error
from tradecredit.training.model import CreditModel

PROMOTED, REFUSED = "promoted", "refused"
# The statistical checks (each already allows for sampling noise); the others are defects of the model.
NOISY_CHECKS = frozenset({"auc_vs_champion", "auc_vs_benchmark", "auc_vs_no_model", "ece"})


@dataclass(frozen=True)
class GateDecision:
    decision: str
    reasons: list[str]  # why it was refused (empty when promoted)
    evidence: dict[str, float | int | str | None] = field(default_factory=dict)
    failed_checks: tuple[str, ...] = ()  # auc_vs_champion, auc_vs_benchmark, auc_vs_no_model, ece, monotonicity, shap_additivity

    @property
    def refused_by_noise_only(self) -> bool:
        """Refused only by the statistical checks (AUC, calibration), not by a defect of the model."""
        return bool(self.failed_checks) and set(self.failed_checks) <= NOISY_CHECKS


@dataclass(frozen=True)
class ChampionScores:
    """The champion's scores of rows out of time for it too, or why there are none."""

    rows: pl.DataFrame | None  # the challenger's held-out walk-forward rows the champion never trained on
    scores: np.ndarray | None  # the champion's probability of each
    source: str  # how the rows were chosen, or why the champion cannot be compared


def gate(
    challenger: CreditModel,
    predictions: pl.DataFrame,
    sweep_x: pd.DataFrame,
    champion: ChampionScores | None,
    cfg: ModelTrainingConfig,
    seed: int,
) -> GateDecision:
    """``predictions``: the challenger's walk-forward test rows of held-out buyers (its origins'
    models, the logistic benchmark, the no-model rule); ``sweep_x``: rows of the served model's
    input for the monotonicity sweep and the SHAP check. AUC and calibration are refused only
    beyond sampling noise (docs/decisions/0008-production-models.md)."""
    from tradecredit.training.walk_forward import noise_evidence

    reasons: list[str] = []
    failed: list[str] = []
    label = challenger.label
    noise = noise_evidence(predictions, label, cfg, seed)
    level = f"{cfg.gate.confidence:.0%}"
    evidence: dict[str, float | int | str | None] = {
        "test_rows": predictions.height, "test_events": int(predictions[label].sum()),
        "walk_forward_origins": int(predictions["origin"].n_unique()),
        "challenger_auc": noise.auc["model"], "confidence": cfg.gate.confidence,
    }
    names = {"logistic": ("auc_vs_benchmark", "the logistic benchmark"), "no_model": ("auc_vs_no_model", "the no-model rule")}
    for key, (check, what) in names.items():
        if key not in noise.against:
            evidence[f"{key}_auc"] = None
            continue
        diff = noise.against[key]
        evidence[f"{key}_auc"] = noise.auc[key]
        evidence[f"auc_minus_{key}"] = diff.difference
        evidence[f"auc_minus_{key}_low"], evidence[f"auc_minus_{key}_high"] = diff.low, diff.high
        if diff.worse:
            reasons.append(f"walk-forward AUC {evidence['challenger_auc']:.4f} is below {what}'s {evidence[f'{key}_auc']:.4f} "
                           f"beyond sampling noise (difference {diff.describe()})")
            failed.append(check)
    evidence["benchmark_auc"] = evidence.get("logistic_auc")

    if champion is not None:
        evidence["champion_rows"] = champion.source
        if champion.rows is not None and champion.scores is not None:
            on_champion_rows = noise_evidence(champion.rows, label, cfg, seed, extra={"champion": champion.scores})
            versus = on_champion_rows.against["champion"]
            evidence |= {"champion_auc": on_champion_rows.auc["champion"], "auc_minus_champion": versus.difference, "auc_minus_champion_high": versus.high,
                         "auc_rule": f"refused if the challenger is below the champion by more than {cfg.max_auc_drop} at {level}"}
            if versus.high < -cfg.max_auc_drop:
                reasons.append(f"AUC is below the champion's on {champion.rows.height:,} rows new to both, beyond sampling noise "
                               f"(difference {versus.describe()})")
                failed.append("auc_vs_champion")
    if "auc_rule" not in evidence:
        evidence["auc_rule"] = f"refused if below the logistic benchmark or the no-model rule beyond noise at {level}"

    ece, test = noise.ece, noise.calibration
    evidence |= {"ece": ece, "max_ece": cfg.max_ece, **test.as_dict(), "calibration_alpha": cfg.gate.calibration_alpha,
                 "observed_rate": test.observed_rate, "mean_predicted": test.mean_predicted}
    if ece > cfg.max_ece and test.spiegelhalter_p < cfg.gate.calibration_alpha:
        reasons.append(f"expected calibration error {ece:.4f} is above the tolerance {cfg.max_ece} and not sampling noise "
                       f"(Spiegelhalter z {test.spiegelhalter_z:+.2f}, p {test.spiegelhalter_p:.2g}; observed "
                       f"{test.observed_rate:.4f}, predicted {test.mean_predicted:.4f})")
        failed.append("ece")

    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(sweep_x), size=min(cfg.sweep_rows, len(sweep_x)), replace=False))
    x_sample = sweep_x.iloc[sample].reset_index(drop=True)
    sweep = monotone_sweep(challenger, x_sample)
    evidence |= {"monotone_features": sweep.features_checked, "monotone_rows": sweep.rows, "monotone_violations": sweep.violations}
    if sweep.violations:
        reasons.append(
            f"monotonicity sweep: {sweep.violations} moves against the declared direction "
            f"(worst {sweep.worst_step:.2e} in PD on {sweep.worst_feature})"
        )
        failed.append("monotonicity")
    additivity = shap_additivity_error(challenger, x_sample)
    evidence["shap_additivity_max_error"] = additivity
    if not additivity <= ADDITIVITY_TOLERANCE:
        reasons.append(f"SHAP additivity fails: contributions miss the raw score by up to {additivity:.2e}")
        failed.append("shap_additivity")
    return GateDecision(REFUSED if reasons else PROMOTED, reasons, evidence, tuple(failed))

