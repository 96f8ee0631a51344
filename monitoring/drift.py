"""Population stability (PSI) of a feature or a score against its training reference, with a
sample-size-aware significance test beside the usual fixed bands.

PSI = sum over bins of (a - e) * ln(a / e), with e and a the reference and current shares of
each bin. It is the symmetric Kullback-Leibler divergence of the two binned distributions, so
when both samples come from the same population, PSI / (1/n + 1/m) is asymptotically
chi-squared with (bins - 1) degrees of freedom (n, m: the two sample sizes). That gives a
p-value, and the PSI a sample of this size would exceed by chance only with probability
``alpha``: with 200 rows on each side and 10 bins it is 0.22 at alpha = 0.01, which is why a
fixed 0.10 fires so often on small portfolios.

Numbers are binned at the reference's deciles (fewer bins when values repeat); text by level,
with levels unseen in the reference pooled as one bin; missing values are a bin of their own
(a feature going missing is drift too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
from scipy import stats

from tradecredit.monitoring.config import DriftConfig

Band = Literal["stable", "moderate", "major"]
MISSING = "(missing)"
UNSEEN = "(unseen level)"


@dataclass(frozen=True)
class Bins:
    """How a reference sample is binned: numeric edges, or text levels."""

    edges: tuple[float, ...] | None  # inner cut points, ascending (numeric features)
    levels: tuple[str, ...] | None  # reference levels (text features)

    @property
    def labels(self) -> list[str]:
        if self.levels is not None:
            return [*self.levels, UNSEEN, MISSING]
        assert self.edges is not None
        bounds = ["-inf", *[f"{e:.6g}" for e in self.edges], "inf"]
        return [*[f"({lo}, {hi}]" for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)], MISSING]


@dataclass(frozen=True)
class PsiResult:
    name: str
    psi: float
    p_value: float
    critical_psi: float  # the PSI exceeded by chance with probability alpha, at these sample sizes
    band: Band
    significant: bool
    reference_rows: int
    current_rows: int
    bins: list[str]
    reference_share: list[float]
    current_share: list[float]


def reference_bins(reference: pl.Series, bins: int) -> Bins:
    """Bins from the reference sample: deciles (for ``bins=10``) of a number, levels of text."""
    if reference.dtype == pl.String or reference.dtype == pl.Categorical:
        return Bins(None, tuple(sorted(str(v) for v in reference.drop_nulls().unique().to_list())))
    values = reference.cast(pl.Float64).drop_nulls().drop_nans().to_numpy()
    if values.size == 0:
        return Bins((), None)
    cuts = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1], method="lower"))
    return Bins(tuple(float(c) for c in cuts), None)


def bin_counts(values: pl.Series, spec: Bins) -> np.ndarray:
    """Counts per bin, in the order of ``spec.labels``."""
    missing = int(values.null_count())
    if spec.levels is not None:
        present = values.drop_nulls().cast(pl.String).to_list()
        index = {level: i for i, level in enumerate(spec.levels)}
        counts = np.zeros(len(spec.levels) + 2)
        for value in present:
            counts[index.get(value, len(spec.levels))] += 1
        counts[-1] = missing
        return counts
    assert spec.edges is not None
    numbers = values.cast(pl.Float64)
    missing += int(numbers.is_nan().sum())
    present = numbers.drop_nulls().drop_nans().to_numpy()
    # Right-closed bins, (e_{k-1}, e_k], matching the "lower" quantile cut points.
    counts = np.bincount(np.searchsorted(np.asarray(spec.edges), present, side="left"), minlength=len(spec.edges) + 1).astype(float)
    return np.append(counts, missing)


def psi_value(reference_counts: np.ndarray, current_counts: np.ndarray, epsilon: float) -> float:
    """PSI of two count vectors; an empty bin on either side counts as ``epsilon`` of a share
    (so one new bin cannot make the index infinite)."""
    e = np.maximum(reference_counts / reference_counts.sum(), epsilon)
    a = np.maximum(current_counts / current_counts.sum(), epsilon)
    used = (reference_counts > 0) | (current_counts > 0)
    return float(np.sum((a[used] - e[used]) * np.log(a[used] / e[used])))


def psi_significance(psi: float, reference_rows: int, current_rows: int, bins_used: int, alpha: float) -> tuple[float, float]:
    """p-value of ``psi`` under "same population", and the critical PSI at ``alpha``."""
    scale = 1.0 / reference_rows + 1.0 / current_rows
    dof = max(bins_used - 1, 1)
    return float(stats.chi2.sf(psi / scale, dof)), float(stats.chi2.ppf(1 - alpha, dof) * scale)


def band_of(psi: float, moderate: float, major: float) -> Band:
    return "major" if psi >= major else "moderate" if psi >= moderate else "stable"


def population_stability(name: str, reference: pl.Series, current: pl.Series, cfg: DriftConfig) -> PsiResult:
    """PSI of ``current`` against ``reference``, its band and its significance."""
    if reference.len() == 0 or current.len() == 0:
        raise ValueError(f"{name}: PSI needs rows on both sides (reference {reference.len()}, current {current.len()})")
    spec = reference_bins(reference, cfg.bins)
    ref_counts, cur_counts = bin_counts(reference, spec), bin_counts(current, spec)
    psi = psi_value(ref_counts, cur_counts, cfg.empty_bin_share)
    used = int(((ref_counts > 0) | (cur_counts > 0)).sum())
    p_value, critical = psi_significance(psi, reference.len(), current.len(), used, cfg.alpha)
    return PsiResult(
        name=name, psi=psi, p_value=p_value, critical_psi=critical, band=band_of(psi, cfg.moderate_psi, cfg.major_psi),
        significant=p_value < cfg.alpha, reference_rows=reference.len(), current_rows=current.len(), bins=spec.labels,
        reference_share=[float(x) for x in ref_counts / ref_counts.sum()],
        current_share=[float(x) for x in cur_counts / cur_counts.sum()],
    )


@dataclass(frozen=True)
class MarketReading:
    """A market-view feature today against the training period. It is one value per date (per
    industry), not a population, so PSI does not apply: what matters is whether today lies
    within what the model was trained on (a booster is flat beyond its training range)."""

    name: str
    value: float | None  # the median over today's buyers (the book's figure; industries vary)
    reference_low: float | None
    reference_high: float | None
    percentile: float | None  # share of the training rows at or below today's value
    outside: bool  # beyond the training range: the model cannot follow it


def market_reading(name: str, reference: pl.Series, current: pl.Series) -> MarketReading:
    ref = reference.drop_nulls().cast(pl.Float64).to_numpy()
    now = current.drop_nulls().cast(pl.Float64)
    if now.is_empty() or ref.size == 0:
        return MarketReading(name, None if now.is_empty() else float(now.median()), None, None, None, False)  # type: ignore[arg-type]
    value = float(now.median())  # type: ignore[arg-type]
    low, high = float(ref.min()), float(ref.max())
    return MarketReading(name, value, low, high, float(np.mean(ref <= value)), bool(value < low or value > high))
