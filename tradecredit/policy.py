"""Credit policy as plain functions over ``configs/policy.yaml``: grade and tier, limit,
decision, expected loss and a trade-credit-insurance quote for one buyer.

Monotone by construction: a worse grade never gets a higher limit (grade shares never rise)
and never a lower premium rate (the rate rises with PD, and the grade rises with PD).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from tradecredit.policy_config import PolicyConfig
from tradecredit.grades import grade_of, tier_of

Decision = Literal["approve", "partial", "refer", "decline"]


# Buyer features the policy reads besides the PD (all in the default model's feature service).
FACT_FEATURES = ("revenue", "equity", "amount_issued_365d", "invoices_issued_365d", "open_balance")


@dataclass(frozen=True)
class BuyerFacts:
    """What the policy needs to know about a buyer besides its PD (None: unknown)."""

    revenue: float | None
    equity: float | None
    usual_monthly_purchases: float | None  # the last 365 days of invoices / 12
    exposure: float  # open balance now


def _number(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def buyer_facts(features: dict[str, Any]) -> BuyerFacts:
    """The facts of a buyer's feature row (online or point in time)."""
    issued = _number(features.get("amount_issued_365d"))
    return BuyerFacts(
        revenue=_number(features.get("revenue")),
        equity=_number(features.get("equity")),
        usual_monthly_purchases=None if issued is None else issued / 12,
        exposure=_number(features.get("open_balance")) or 0.0,
    )


@dataclass(frozen=True)
class Capacity:
    amount: float
    source: Literal["revenue", "equity", "usual_purchases", "none"]


@dataclass(frozen=True)
class CreditDecision:
    pd_12m: float
    grade: int
    tier: str
    capacity: Capacity
    recommended_limit: float
    exposure: float
    available_limit: float
    requested: float | None
    decision: Decision
    approved_amount: float
    reason: str
    expected_loss: float  # PD x LGD x exposure at default (exposure + approved amount)
    cover_ratio: float
    premium_rate: float
    insured_turnover: float
    premium: float


def _known(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def capacity_of(facts: BuyerFacts, policy: PolicyConfig) -> Capacity:
    c = policy.limits.capacity
    if _known(facts.revenue):
        return Capacity(facts.revenue * c.revenue_share, "revenue")  # type: ignore[operator]
    if _known(facts.equity):
        return Capacity(facts.equity * c.equity_share, "equity")  # type: ignore[operator]
    if _known(facts.usual_monthly_purchases):
        return Capacity(facts.usual_monthly_purchases * c.monthly_purchases_multiple, "usual_purchases")  # type: ignore[operator]
    return Capacity(0.0, "none")


def recommended_limit(grade: int, capacity: Capacity, policy: PolicyConfig) -> float:
    limits = policy.limits
    raw = min(capacity.amount * limits.grade_share[grade - 1], limits.max_limit)
    return math.floor(raw / limits.rounding) * limits.rounding


def premium_rate(pd_12m: float, policy: PolicyConfig) -> float:
    """max(floor, expected-loss rate x (1 + loading) + expense rate); the expected-loss rate is
    PD x LGD, so the rate never falls as PD rises."""
    ins = policy.insurance
    return max(ins.floor_rate, pd_12m * policy.lgd * (1 + ins.loading) + ins.expense_rate)


def decide(
    pd_12m: float,
    facts: BuyerFacts,
    requested: float | None,
    policy: PolicyConfig,
    requested_limit: float | None = None,
    refer_because: str | None = None,
) -> CreditDecision:
    """The whole policy for one buyer.

    ``requested`` is an order amount (new exposure); ``requested_limit`` a credit line asked
    for. The line granted is the smaller of the recommended and the requested limit; an order
    is decided against what that line leaves after the current exposure. With only a line
    asked for, the decision is on the line. ``refer_because`` forces a referral (stale
    features, an explanation that failed its check) without hiding the numbers.
    """
    if not 0.0 <= pd_12m <= 1.0 or not math.isfinite(pd_12m):
        raise ValueError(f"pd_12m must be a probability, got {pd_12m}")
    for name, value in (("requested amount", requested), ("requested limit", requested_limit)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ValueError(f"the {name} must be zero or more, got {value}")
    grade = int(grade_of(np.array([pd_12m]), policy)[0])
    tier = str(tier_of(np.array([grade]), policy)[0])
    capacity = capacity_of(facts, policy)
    limit = recommended_limit(grade, capacity, policy)
    line = limit if requested_limit is None else min(limit, requested_limit)
    exposure = max(0.0, facts.exposure)
    available = max(0.0, line - exposure)
    limits = policy.limits
    on_line = requested is None and requested_limit is not None
    asked = (requested_limit if on_line else requested) or 0.0
    room = limit if on_line else available
    what = "requested limit" if on_line else "requested"
    decision: Decision
    if grade >= limits.decline_from_grade:
        decision, approved, reason = "decline", 0.0, f"grade {grade} is at or past the decline grade {limits.decline_from_grade}"
    elif grade >= limits.refer_from_grade:
        decision, approved, reason = "refer", 0.0, f"grade {grade} needs a credit analyst (refer from grade {limits.refer_from_grade})"
    elif refer_because is not None:
        decision, approved, reason = "refer", 0.0, refer_because
    elif capacity.source == "none":
        decision, approved, reason = "refer", 0.0, "no revenue, equity or purchase history to size a limit"
    elif requested is None and requested_limit is None and room > 0:
        decision, approved, reason = "approve", 0.0, f"nothing requested; {room:,.0f} is available under the limit"
    elif asked <= room and (asked > 0 or room > 0):
        decision, approved = "approve", asked
        reason = f"within the recommended limit ({limit:,.0f})" if on_line else f"within the available limit ({available:,.0f})"
    elif room > 0:
        decision, approved = "partial", room
        reason = f"{what} {asked:,.0f}; {room:,.0f} is {'the recommended limit' if on_line else 'available under the limit'}"
    else:
        decision, approved, reason = "refer", 0.0, f"exposure {exposure:,.0f} already uses the whole limit ({line:,.0f})"
    rate = premium_rate(pd_12m, policy)
    turnover = (facts.usual_monthly_purchases or 0.0) * policy.insurance.turnover_months
    if turnover <= 0:
        turnover = asked  # a buyer without history: the order itself is the turnover
    new_exposure = 0.0 if on_line else approved  # a line is not yet drawn
    return CreditDecision(
        pd_12m=pd_12m, grade=grade, tier=tier, capacity=capacity, recommended_limit=limit, exposure=exposure,
        available_limit=available, requested=requested, decision=decision, approved_amount=approved, reason=reason,
        expected_loss=pd_12m * policy.lgd * (exposure + new_exposure),
        cover_ratio=policy.insurance.cover_ratio_by_tier[tier],  # type: ignore[index]
        premium_rate=rate, insured_turnover=turnover, premium=rate * turnover,
    )
