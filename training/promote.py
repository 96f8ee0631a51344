"""The champion gate: a challenger becomes champion only with evidence, re-measured on the
challenger's own out-of-time test rows (held-out buyers), never taken from the run's word."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import polars as pl
from sklearn.metrics import roc_auc_score

from tradecredit.training.config import ModelTrainingConfig
from tradecredit.training.checks import ADDITIVITY_TOLERANCE, monotone_sweep, shap_additivity_error
from tradecredit.training.evaluate import expected_calibration_error
from tradecredit.training.model import CreditModel, ModelInputError

PROMOTED, REFUSED = "promoted", "refused"
# The checks a small test slice can fail by sampling noise alone; the others are defects.
NOISY_CHECKS = frozenset({"auc_vs_champion", "auc_vs_benchmark", "ece"})


@dataclass(frozen=True)
class GateDecision:
    decision: str
    reasons: list[str]  # why it was refused (empty when promoted)
    evidence: dict[str, float | int | str | None] = field(default_factory=dict)
    failed_checks: tuple[str, ...] = ()  # auc_vs_champion, auc_vs_benchmark, ece, monotonicity, shap_additivity

    @property
    def refused_by_noise_only(self) -> bool:
        """Refused only by checks a small test slice can fail by chance (AUC, calibration)."""
        return bool(self.failed_checks) and set(self.failed_checks) <= NOISY_CHECKS


def gate(
    challenger: CreditModel,
    champion: CreditModel | None,
    test_rows_x: pd.DataFrame,
    test_rows_frame: pl.DataFrame,
    label: np.ndarray,
    benchmark_auc: float,
    cfg: ModelTrainingConfig,
    seed: int,
) -> GateDecision:
    """``test_rows_frame``: the challenger's test rows (held-out buyers) as a polars frame;
    ``test_rows_x`` the same rows as the challenger's input matrix."""
    reasons: list[str] = []
    failed: list[str] = []
    prob = challenger.predict_matrix(test_rows_x)
    auc = float(roc_auc_score(label, prob))
    evidence: dict[str, float | int | str | None] = {"test_rows": int(len(label)), "test_events": int(label.sum()), "challenger_auc": auc}

    if champion is not None:
        try:
            # The champion builds its own input: its feature list may differ from the challenger's.
            champion_auc: float | None = float(roc_auc_score(label, champion.predict_proba(test_rows_frame)))
        except ModelInputError as exc:
            champion_auc = None
            evidence["champion_unusable"] = str(exc)
        evidence["champion_auc"] = champion_auc
    else:
        champion_auc = None
    if champion_auc is not None:
        evidence["auc_rule"] = f"challenger AUC >= champion AUC - {cfg.max_auc_drop}"
        if auc < champion_auc - cfg.max_auc_drop:
            reasons.append(f"out-of-time AUC {auc:.4f} is below the champion's {champion_auc:.4f} on the same rows")
            failed.append("auc_vs_champion")
    else:
        evidence["auc_rule"] = "first model: challenger AUC > logistic benchmark AUC"
        evidence["benchmark_auc"] = benchmark_auc
        if auc <= benchmark_auc:
            reasons.append(f"out-of-time AUC {auc:.4f} does not beat the logistic benchmark's {benchmark_auc:.4f}")
            failed.append("auc_vs_benchmark")

    ece = expected_calibration_error(label, prob, cfg.ece_bins)
    evidence["ece"] = ece
    evidence["max_ece"] = cfg.max_ece
    if ece > cfg.max_ece:
        reasons.append(f"expected calibration error {ece:.4f} is above the tolerance {cfg.max_ece}")
        failed.append("ece")

    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(label), size=min(cfg.sweep_rows, len(label)), replace=False))
    x_sample = test_rows_x.iloc[sample].reset_index(drop=True)
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
