"""The credit department's rules (``configs/credit.yaml``): who may grant how much per risk
tier (the authority matrix), how long a limit stands and when it is reviewed, and how
monitoring adjusts granted limits."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tradecredit.config_base import NonNegativeFloat, PositiveInt, StrictModel

Tier = Literal["low", "medium", "high"]
TIERS: tuple[Tier, ...] = ("low", "medium", "high")


class TierAuthority(StrictModel):
    """Approvals a limit needs in one tier, by the amount granted (the whole line)."""

    automatic_up_to: NonNegativeFloat = Field(description="the policy grants lines up to this without a person (0: never)")
    one_approver_up_to: NonNegativeFloat = Field(description="above automatic and up to this, one approver; above it two different approvers (four-eyes)")

    @model_validator(mode="after")
    def _check(self) -> TierAuthority:
        if self.one_approver_up_to < self.automatic_up_to:
            raise ValueError("one_approver_up_to must be at or above automatic_up_to")
        return self


class ReviewConfig(StrictModel):
    months_by_tier: dict[Tier, PositiveInt] = Field(description="a granted limit is due for review this many months after its decision")
    key_buyer_limit: NonNegativeFloat = Field(description="a line at or above this is a key buyer's: reviewed at least every key_buyer_months")
    key_buyer_months: PositiveInt


class AdjustmentConfig(StrictModel):
    """What each monitoring run does to granted limits."""

    notice_days: PositiveInt = Field(description="a proposed reduction takes effect this many days after it is proposed, unless an approver rejects it (or confirms it at once)")
    grade_steps: PositiveInt = Field(description="a grade this many steps worse than at the decision proposes a reduction")
    reduce_on_red_alert: bool = Field(description="a red early-warning alert proposes a reduction to the current exposure")
    propose_increase_share: NonNegativeFloat = Field(description="a recommended limit this share above the granted one files an increase request (0: never); it goes through the authority matrix like any request")


class CreditConfig(StrictModel):
    authority: dict[Tier, TierAuthority] = Field(description="approvals needed per tier and amount; the requester never approves")
    validity_months: PositiveInt = Field(description="a granted limit expires this many months after it is granted")
    override_days: PositiveInt = Field(description="a reviewer's override of a decision holds for this many days unless revoked")
    aggregate_capacity: bool = Field(description="a buyer's lines across all sellers must fit its recommended limit (allocated first come, first served)")
    review: ReviewConfig
    adjustments: AdjustmentConfig

    @model_validator(mode="after")
    def _check(self) -> CreditConfig:
        for section in (self.authority, self.review.months_by_tier):
            if set(section) != set(TIERS):
                raise ValueError("authority and review.months_by_tier need low, medium and high")
        a = self.authority
        if not a["low"].automatic_up_to >= a["medium"].automatic_up_to >= a["high"].automatic_up_to:
            raise ValueError("authority: automatic_up_to must not rise as risk rises")
        if not a["low"].one_approver_up_to >= a["medium"].one_approver_up_to >= a["high"].one_approver_up_to:
            raise ValueError("authority: one_approver_up_to must not rise as risk rises")
        return self


def approvals_needed(tier: Tier, amount: float, cfg: CreditConfig) -> int:
    """0 (automatic), 1 or 2 (four-eyes) approvals for a line of ``amount`` in ``tier``."""
    rule = cfg.authority[tier]
    if amount <= rule.automatic_up_to:
        return 0
    return 1 if amount <= rule.one_approver_up_to else 2



