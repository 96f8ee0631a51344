"""Is a difference more than sampling noise? A paired bootstrap of AUC differences that resamples
buyers (a buyer's rows move together: its months and invoices are not independent draws), and
Spiegelhalter's z-test of calibration, its standard error clustered by buyer, with the
Hosmer-Lemeshow statistic by group beside it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


class _RankedScores:
    """One score vector sorted once, so that each bootstrap replicate's AUC is a weighted sum in
    O(rows): the AUC with weights w is the weighted share of (event, non-event) pairs ranked
    right, ties counting half."""

    def __init__(self, score: np.ndarray, label: np.ndarray) -> None:
        order = np.argsort(score, kind="stable")
        self.order = order
        sorted_score = score[order]
        self.starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
        self.label = label[order].astype(bool)

    def auc(self, weight: np.ndarray) -> float:
        w = weight[self.order]
        pos = np.add.reduceat(np.where(self.label, w, 0.0), self.starts)
        neg = np.add.reduceat(np.where(self.label, 0.0, w), self.starts)
        below = np.cumsum(neg) - neg  # non-event weight strictly below each tie group
        total_pos, total_neg = pos.sum(), neg.sum()
        if total_pos == 0 or total_neg == 0:
            return float("nan")
        return float((pos * (below + 0.5 * neg)).sum() / (total_pos * total_neg))


@dataclass(frozen=True)
class AucDifference:
    """AUC of ``a`` minus AUC of ``b`` on the same rows, with a one-sided bootstrap bound each side."""

    difference: float
    low: float  # a is ahead by at least this, at the confidence level
    high: float  # a is behind by at most -high, at the confidence level
    confidence: float
    samples: int

    @property
    def worse(self) -> bool:
        """``a`` is below ``b`` beyond sampling noise."""
        return self.high < 0

    @property
    def better(self) -> bool:
        return self.low > 0

    def describe(self) -> str:
        return f"{self.difference:+.4f} ({self.confidence:.0%} one-sided bounds {self.low:+.4f} .. {self.high:+.4f})"

    def as_dict(self) -> dict[str, float]:
        return {"difference": self.difference, "low": self.low, "high": self.high}


def buyer_weights(groups: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """``samples`` x rows weights: each replicate draws buyers with replacement and a row weighs as
    often as its buyer was drawn."""
    _, index = np.unique(groups, return_inverse=True)
    buyers = int(index.max()) + 1
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(buyers, np.full(buyers, 1.0 / buyers), size=samples).astype(float)
    return counts[:, index]


@dataclass(frozen=True)
class AucComparison:
    auc: dict[str, float]  # each score's AUC: the mean over blocks
    against: dict[str, AucDifference]  # the base score's AUC minus each other's


def auc_differences(
    label: np.ndarray, scores: dict[str, np.ndarray], against: str, groups: np.ndarray, blocks: np.ndarray,
    samples: int, confidence: float, seed: int,
) -> AucComparison:
    """Paired bootstrap of AUC(``against``) - AUC(other) for each other score, on the same
    replicates. With ``blocks`` (walk-forward origins), the AUC is each block's, averaged: the
    headline's own definition. ``groups``: the buyer of each row, the unit resampled."""
    label = np.asarray(label).astype(int)
    block_ids = [b for b in np.unique(blocks) if 0 < label[blocks == b].sum() < (blocks == b).sum()]
    masks = [blocks == b for b in block_ids]
    ranked = {name: [_RankedScores(np.asarray(s, dtype=float)[m], label[m]) for m in masks] for name, s in scores.items()}

    def mean_auc(name: str, weight: np.ndarray) -> float:
        values = [r.auc(weight[m]) for r, m in zip(ranked[name], masks, strict=True)]
        return float(np.nanmean(values)) if not all(np.isnan(values)) else float("nan")

    ones = np.ones(len(label))
    point = {name: mean_auc(name, ones) for name in ranked}
    replicates: dict[str, list[float]] = {name: [] for name in ranked}
    for w in buyer_weights(groups, samples, seed):
        for name in ranked:
            replicates[name].append(mean_auc(name, w))
    base = np.asarray(replicates[against])
    out = {}
    for name in ranked:
        if name == against:
            continue
        diff = base - np.asarray(replicates[name])
        diff = diff[np.isfinite(diff)]
        low, high = np.quantile(diff, [1 - confidence, confidence]) if len(diff) else (float("nan"), float("nan"))
        out[name] = AucDifference(point[against] - point[name], float(low), float(high), confidence, int(len(diff)))
    return AucComparison(point, out)


@dataclass(frozen=True)
class CalibrationTest:
    spiegelhalter_z: float
    spiegelhalter_p: float  # two-sided: small means the PDs do not match the outcomes
    hosmer_lemeshow: float
    hosmer_lemeshow_p: float  # by equal-count groups of the prediction, df = groups (an out-of-sample test)
    groups: int
    observed_rate: float
    mean_predicted: float

    def as_dict(self) -> dict[str, float]:
        return {"spiegelhalter_z": self.spiegelhalter_z, "spiegelhalter_p": self.spiegelhalter_p,
                "hosmer_lemeshow": self.hosmer_lemeshow, "hosmer_lemeshow_p": self.hosmer_lemeshow_p,
                "hl_groups": float(self.groups)}


def calibration_test(label: np.ndarray, prob: np.ndarray, groups: int, buyers: np.ndarray | None = None) -> CalibrationTest:
    """Spiegelhalter's z: sum (y - p)(1 - 2p) over its standard error under perfect calibration;
    Hosmer-Lemeshow: sum over groups of (O - E)^2 / (E (1 - E / n)).

    With ``buyers``, the standard error is also estimated with the rows of a buyer as one
    cluster, and the larger of the two is used: a buyer's consecutive months share one 12-month
    outcome, so treating them as independent draws would call a small miss significant."""
    y, p = np.asarray(label, dtype=float), np.clip(np.asarray(prob, dtype=float), 1e-12, 1 - 1e-12)
    terms = (y - p) * (1 - 2 * p)
    variance = float(np.sum((1 - 2 * p) ** 2 * p * (1 - p)))
    if buyers is not None:
        _, cluster = np.unique(buyers, return_inverse=True)
        variance = max(variance, float(np.sum(np.bincount(cluster, weights=terms) ** 2)))
    z = float(np.sum(terms) / np.sqrt(variance)) if variance > 0 else 0.0
    hl = 0.0
    order = np.argsort(p, kind="stable")
    chunks = [c for c in np.array_split(order, groups) if len(c)]
    for chunk in chunks:
        expected, n = p[chunk].sum(), len(chunk)
        if 0 < expected < n:
            hl += (y[chunk].sum() - expected) ** 2 / (expected * (1 - expected / n))
    return CalibrationTest(z, float(2 * stats.norm.sf(abs(z))), float(hl), float(stats.chi2.sf(hl, len(chunks))), len(chunks),
                           float(y.mean()), float(p.mean()))
