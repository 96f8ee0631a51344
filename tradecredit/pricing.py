"""Trade-credit insurance pricing on exposure (``policy.insurance``).

A loss happens on what is outstanding when a buyer defaults, not on a year of purchases: the
exposure at default (EAD) is the average outstanding the trade keeps, turnover x (terms + days
beyond terms) / 365, capped by the granted line (or the policy's discretionary limit when the
seller has none). The insured loss of a default is (LGD x EAD - per-buyer deductible) x the
insured share; its expected value is that times the PD.

Cover is sold as one policy per seller: the premium rate on the insured turnover is
max(floor, insured expected loss / insured turnover x (1 + loading) + expense rate), with the
annual aggregate first loss taken off the expected loss by simulating the year's defaults
(seeded, so a quote is the same every time). Each buyer's contribution is its own expected loss
with the loading, its turnover's expenses and its turnover's share of any floor top-up, so a
worse PD never lowers it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from tradecredit.policy_config import InsuranceConfig, PolicyConfig

DAYS_A_YEAR = 365.0


def lgd_of(country: str | None, policy: PolicyConfig) -> float:
    """Loss given default by the buyer's country (its insolvency regime), else the policy's."""
    return policy.insurance.lgd_by_country.get(country or "", policy.lgd)


def average_outstanding(annual_turnover: float, terms_days: float, days_beyond_terms: float) -> float:
    """What a trade keeps outstanding on average: a year's turnover spread over the days an
    invoice stays open (its terms plus the days it is paid late)."""
    return max(0.0, annual_turnover) * max(0.0, terms_days + max(0.0, days_beyond_terms)) / DAYS_A_YEAR


def buyer_premium_rate(pd_12m: float, lgd: float, terms_days: float, days_beyond_terms: float, ins: InsuranceConfig) -> float:
    """The rate of a buyer priced alone, per unit of its insured turnover (no line cap, no
    deductible): the price an order pays when its seller has no policy quote."""
    el_rate = pd_12m * lgd * ins.insured_share * max(0.0, terms_days + max(0.0, days_beyond_terms)) / DAYS_A_YEAR
    return max(ins.floor_rate, el_rate * (1 + ins.loading) + ins.expense_rate)


@dataclass(frozen=True)
class InsuredBuyer:
    """One buyer of a seller's policy, with what its price depends on."""

    buyer_id: str
    pd_12m: float
    lgd: float
    annual_turnover: float  # the seller's insured turnover with the buyer, a year
    terms_days: float
    days_beyond_terms: float  # expected lateness: the trade's own recent record
    limit: float  # the cap on the insured exposure: the granted line, else the discretionary limit
    limit_source: str  # "register" (a granted line) or "discretionary"
    grade: int | None = None
    tier: str | None = None
    industry: str | None = None
    country: str | None = None
    reasons: tuple[str, ...] = ()  # the PD's top reasons, when known

    @property
    def exposure_at_default(self) -> float:
        return min(average_outstanding(self.annual_turnover, self.terms_days, self.days_beyond_terms), max(0.0, self.limit))

    def insured_loss(self, ins: InsuranceConfig) -> float:
        """What the policy pays if this buyer defaults."""
        return max(0.0, self.lgd * self.exposure_at_default - ins.per_buyer_deductible) * ins.insured_share


@dataclass(frozen=True)
class Contribution:
    buyer_id: str
    pd_12m: float
    lgd: float
    exposure_at_default: float
    insured_turnover: float
    expected_loss: float  # the insurer's, after the deductibles (the aggregate one allocated by expected loss)
    premium: float
    share_of_expected_loss: float
    limit: float
    limit_source: str
    grade: int | None
    tier: str | None
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class PolicyQuote:
    seller_id: str
    buyers: int
    insured_share: float
    insured_turnover: float
    exposure_at_default: float
    expected_loss_before_aggregate: float  # sum of the buyers' insured expected losses
    expected_loss: float  # what the insurer expects to pay: after the aggregate first loss
    premium_rate: float
    floor_applied: bool
    premium: float
    loss_ratio: float  # expected loss / premium
    loss_ratio_interval: tuple[float, float]  # 5% and 95% of the year's simulated losses / premium
    loss_quantiles: dict[str, float]  # p50, p95, p99 of the year's insured losses
    max_liability: float
    aggregate_first_loss: float
    per_buyer_deductible: float
    discretionary_limit: float
    contributions: tuple[Contribution, ...]
    pd_multiplier: float | None = None  # set on a stressed quote

    def contribution(self, buyer_id: str) -> Contribution | None:
        return next((c for c in self.contributions if c.buyer_id == buyer_id), None)


def simulate_year(pds: np.ndarray, losses: np.ndarray, draws: int, seed: int = 20261201) -> np.ndarray:
    """The year's total loss over ``draws`` draws of independent defaults (default i costs
    ``losses[i]``). Common random numbers: the same seed gives each position the same draws, so
    a higher PD defaults in every draw a lower one did (quotes compare, contributions are monotone)."""
    rng = np.random.default_rng(seed)
    total = np.zeros(draws)
    chunk = max(1, 2_000_000 // max(1, draws))  # bounded memory on large books
    clipped = np.clip(pds, 0.0, 1.0)
    for start in range(0, len(pds), chunk):
        u = rng.random((min(chunk, len(pds) - start), draws))
        total += ((u < clipped[start:start + chunk, None]) * losses[start:start + chunk, None]).sum(axis=0)
    return total


def simulated_losses(buyers: Sequence[InsuredBuyer], ins: InsuranceConfig) -> np.ndarray:
    """A policy's year of insured losses (before the aggregate first loss), ``ins.simulations`` draws."""
    return simulate_year(np.array([b.pd_12m for b in buyers]), np.array([b.insured_loss(ins) for b in buyers]), ins.simulations)


def quote_policy(seller_id: str, buyers: Sequence[InsuredBuyer], ins: InsuranceConfig) -> PolicyQuote:
    """The policy quote for a seller's insured buyers (see the module's docstring)."""
    turnover = np.array([max(0.0, b.annual_turnover) for b in buyers])
    standalone = np.array([b.pd_12m * b.insured_loss(ins) for b in buyers])
    total_turnover = float(turnover.sum())
    before_aggregate = float(standalone.sum())
    losses = simulated_losses(buyers, ins) if buyers else np.zeros(1)
    if ins.aggregate_first_loss > 0:
        expected = float(np.maximum(losses - ins.aggregate_first_loss, 0.0).mean())
        allocated = standalone * (expected / before_aggregate) if before_aggregate > 0 else standalone * 0.0
    else:
        expected, allocated = before_aggregate, standalone
    priced = allocated * (1 + ins.loading) + turnover * ins.expense_rate
    floor_total = ins.floor_rate * total_turnover
    floor_applied = total_turnover > 0 and float(priced.sum()) < floor_total
    if floor_applied:
        priced = priced + (floor_total - float(priced.sum())) * turnover / total_turnover
    premium = float(priced.sum())
    rate = premium / total_turnover if total_turnover > 0 else 0.0
    paid = np.maximum(losses - ins.aggregate_first_loss, 0.0)
    ratio = expected / premium if premium > 0 else math.nan
    interval = (float(np.quantile(paid, 0.05)) / premium, float(np.quantile(paid, 0.95)) / premium) if premium > 0 else (math.nan, math.nan)
    contributions = tuple(
        Contribution(
            b.buyer_id, b.pd_12m, b.lgd, b.exposure_at_default, float(t), float(el), float(p),
            float(el / expected) if expected > 0 else 0.0, b.limit, b.limit_source, b.grade, b.tier, b.reasons,
        )
        for b, t, el, p in zip(buyers, turnover, allocated, priced, strict=True)
    )
    return PolicyQuote(
        seller_id=seller_id, buyers=len(buyers), insured_share=ins.insured_share, insured_turnover=total_turnover,
        exposure_at_default=float(sum(b.exposure_at_default for b in buyers)), expected_loss_before_aggregate=before_aggregate,
        expected_loss=expected, premium_rate=rate, floor_applied=floor_applied, premium=premium, loss_ratio=ratio,
        loss_ratio_interval=interval,
        loss_quantiles={q: float(np.quantile(paid, v)) for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
        max_liability=premium * ins.max_liability_multiple, aggregate_first_loss=ins.aggregate_first_loss,
        per_buyer_deductible=ins.per_buyer_deductible, discretionary_limit=ins.discretionary_limit, contributions=contributions,
    )


def stress_multiplier(buyer: InsuredBuyer, ins: InsuranceConfig) -> float:
    """The shock's PD multiplier for one buyer: the larger of its industry's and country's, else the default."""
    named = [m for m in (ins.stress.by_industry.get(buyer.industry or ""), ins.stress.by_country.get(buyer.country or "")) if m is not None]
    return max(named) if named else ins.stress.pd_multiplier


def stressed(buyers: Sequence[InsuredBuyer], ins: InsuranceConfig) -> list[InsuredBuyer]:
    """The same buyers under the configured macro shock (PDs scaled, capped at 1)."""
    return [replace(b, pd_12m=min(1.0, b.pd_12m * stress_multiplier(b, ins))) for b in buyers]
