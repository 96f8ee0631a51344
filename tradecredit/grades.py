"""The master scale: a 12-month PD to a grade (1 best) and a risk tier (configs/policy.yaml)."""

from __future__ import annotations

import numpy as np

from tradecredit.policy_config import PolicyConfig


def grade_of(pd_12m: np.ndarray, policy: PolicyConfig) -> np.ndarray:
    """The first grade whose band's upper PD is at or above each PD."""
    bounds = np.array([band.max_pd for band in policy.master_scale])
    index = np.searchsorted(bounds, np.asarray(pd_12m, dtype=float), side="left")
    return np.minimum(index, len(bounds) - 1) + 1


def tier_of(grade: np.ndarray, policy: PolicyConfig) -> np.ndarray:
    tiers = np.array([band.tier for band in policy.master_scale])
    return tiers[np.asarray(grade) - 1]
