"""The credit policy's config models (``configs/policy.yaml``): the master scale of grades,
the limit rules and the credit-insurance pricing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from tradecredit.config_base import NonNegativeFloat, PositiveFloat, PositiveInt, Probability, StrictModel


class GradeBand(StrictModel):
    grade: Annotated[int, Field(ge=1)]
    max_pd: Annotated[float, Field(gt=0.0, le=1.0)] = Field(description="highest 12-month PD of the grade (inclusive)")
    tier: Literal["low", "medium", "high"]


class CapacityConfig(StrictModel):
    """What a buyer can carry: the tightest of the statement measures known (revenue share,
    positive equity share), else months of its usual purchases."""

    revenue_share: Probability = Field(description="share of annual revenue")
    equity_share: Probability = Field(description="share of equity (none from zero or negative equity)")
    monthly_purchases_multiple: PositiveFloat = Field(
        description="months of the buyer's usual purchases (used when no statement figure is usable)"
    )
    statement_haircut_after_days: PositiveInt = Field(description="a statement older than this (or of unknown age) counts at (1 - statement_haircut)")
    statement_haircut: Probability
    statement_max_age_days: PositiveInt = Field(description="a statement older than this is ignored")

    @model_validator(mode="after")
    def _ages(self) -> CapacityConfig:
        if self.statement_max_age_days <= self.statement_haircut_after_days:
            raise ValueError("statement_max_age_days must be above statement_haircut_after_days")
        return self


class NeedConfig(StrictModel):
    """A cap tied to need: what the seller's usual trade with the buyer keeps outstanding."""

    months_of_purchases: PositiveFloat = Field(description="the cap is this many times the usual outstanding (monthly purchases x (terms + days beyond terms) / 30)")
    default_terms_days: PositiveInt = Field(description="terms assumed when neither the request nor the ledger gives them")


class KnockOutConfig(StrictModel):
    """Facts that stop new credit before any approval (decision ``hold``), and order terms."""

    max_extension_days: PositiveInt = Field(description="an open invoice more than this many days past due holds new orders")
    max_terms_days: PositiveInt = Field(description="terms above this are not accepted automatically")
    terms_above_max: Literal["refer", "decline"]
    late_probability_refer_above: Probability = Field(description="an order whose late-payment probability is above this is referred")


class LimitConfig(StrictModel):
    capacity: CapacityConfig
    need: NeedConfig
    grade_share: list[Probability] = Field(description="share of capacity granted, grade 1 first; never rises")
    max_limit: PositiveFloat
    rounding: PositiveFloat = Field(description="limits are rounded down to a multiple of this")
    refer_from_grade: PositiveInt = Field(description="from this grade on, a person decides (refer)")
    decline_from_grade: PositiveInt = Field(description="from this grade on, no credit (decline)")


class StressConfig(StrictModel):
    """A macro shock for the quote: every PD scaled, by sector or country where given."""

    pd_multiplier: PositiveFloat = Field(description="PDs are multiplied by this (capped at 1) unless a sector or country names its own")
    by_industry: dict[str, PositiveFloat] = Field(description="industry -> multiplier (the larger of industry and country applies)")
    by_country: dict[str, PositiveFloat] = Field(description="country -> multiplier")


class InsuranceConfig(StrictModel):
    """Trade-credit insurance as it is sold: one policy per seller covering its insured buyers
    at a fixed insured percentage, priced on the expected loss of the exposure at default."""

    insured_share: Annotated[float, Field(gt=0.0, le=0.9)] = Field(description="share of each insured loss the policy pays (fixed; the seller keeps the rest)")
    loading: NonNegativeFloat = Field(description="margin on the expected-loss rate")
    expense_rate: NonNegativeFloat = Field(description="the insurer's costs, per unit of insured turnover")
    floor_rate: NonNegativeFloat = Field(description="the lowest premium rate")
    turnover_months: PositiveInt = Field(description="insured turnover = this many months of usual purchases")
    lgd_by_country: dict[str, Probability] = Field(description="loss given default by the buyer's country (insolvency regime); others use policy.lgd")
    discretionary_limit: NonNegativeFloat = Field(description="a buyer without a granted line is insured up to this (the seller's own discretion)")
    max_liability_multiple: PositiveFloat = Field(description="the policy pays at most this many annual premiums in a year")
    aggregate_first_loss: NonNegativeFloat = Field(description="annual aggregate deductible: the seller bears the year's first insured losses up to this")
    per_buyer_deductible: NonNegativeFloat = Field(description="each buyer's loss is reduced by this before the insured share")
    simulations: PositiveInt = Field(description="draws of the year's defaults for the loss distribution (seeded: the same quote every time)")
    stress: StressConfig


class PolicyConfig(StrictModel):
    master_scale: list[GradeBand] = Field(description="grades from best to worst; the last band must end at PD 1")
    lgd: Probability = Field(description="loss given default of an unsecured trade receivable")
    limits: LimitConfig
    knock_outs: KnockOutConfig
    insurance: InsuranceConfig

    @model_validator(mode="after")
    def _check(self) -> PolicyConfig:
        grades = [b.grade for b in self.master_scale]
        if grades != list(range(1, len(grades) + 1)):
            raise ValueError("master_scale grades must be 1, 2, 3, ... in order")
        bounds = [b.max_pd for b in self.master_scale]
        if bounds != sorted(set(bounds)) or bounds[-1] != 1.0:
            raise ValueError("master_scale max_pd must rise strictly from grade to grade and end at 1.0")
        order = {"low": 0, "medium": 1, "high": 2}
        tiers = [order[b.tier] for b in self.master_scale]
        if tiers != sorted(tiers):
            raise ValueError("master_scale tiers must run low, medium, high as grades worsen")
        shares = self.limits.grade_share
        if len(shares) != len(grades) or any(b > a for a, b in zip(shares, shares[1:])):
            raise ValueError(f"limits.grade_share needs one share per grade ({len(grades)}), never rising as grades worsen")
        if not 1 <= self.limits.refer_from_grade <= self.limits.decline_from_grade <= len(grades) + 1:
            raise ValueError("limits: refer_from_grade must come at or before decline_from_grade, within the scale")
        return self
