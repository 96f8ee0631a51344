"""Request and response bodies of the scoring service: the OpenAPI document is generated from
these, so every field carries its meaning. Bounds that depend on configuration (the largest
order, the largest batch) are checked by the service and answered with the same error shape."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

BuyerId = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$", description="the buyer's id in the ledger")
]
Money = Annotated[float, Field(ge=0, allow_inf_nan=False, description="an amount in the ledger's currency")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Order(Body):
    amount: Annotated[float, Field(gt=0, allow_inf_nan=False, description="order amount (new exposure if accepted)")]
    terms_days: Annotated[int, Field(ge=0, description="payment terms in days")]


class AssessRequest(Body):
    buyer_id: BuyerId
    seller_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")] | None = Field(
        default=None, description="the seller the order is for: a seller's API key is its own seller (naming another is 403); an administrator key may name any")
    order: Order | None = Field(default=None, description="an order to decide on; gives its late-payment probability")
    requested_limit: Money | None = Field(default=None, description="a credit line asked for")


class Reason(BaseModel):
    feature: str
    value: float | int | str | None = Field(description="the feature's value (null: unknown)")
    contribution: float = Field(description="SHAP contribution in log-odds of the model's raw score")
    direction: Literal["raises_risk", "lowers_risk"]
    monotone: int = Field(description="the model's monotone constraint on the feature: 1, -1 or 0")
    sentence_en: str
    sentence_zh: str = Field(description="the same sentence in Simplified Chinese")


class LimitReasonOut(BaseModel):
    code: str = Field(description="capacity_revenue, capacity_equity, capacity_purchases, negative_equity, statement_stale_haircut, statement_ignored, grade_share, need_cap, max_limit, or a knock-out's code")
    sentence_en: str
    sentence_zh: str = Field(description="the same sentence in Simplified Chinese")


class Explanation(BaseModel):
    available: bool = Field(description="false when base value + contributions did not equal the raw score")
    additivity_error: float = Field(description="|base value + sum of contributions - raw score| in log-odds")
    base_value: float = Field(description="the model's expected raw score (log-odds)")
    raw_score: float
    reasons: list[Reason] = Field(description="largest contributions first; empty when unavailable")


class Insurance(BaseModel):
    cover_ratio: float = Field(description="share of a loss the policy pays: the policy's fixed insured share")
    premium_rate: float = Field(
        description="the seller's policy rate (rate_source policy_quote, from `tradecredit insurance quote`), else the buyer priced alone on its "
        "exposure: max(floor, PD x LGD x insured share x (terms + days beyond terms) / 365 x (1 + loading) + expense rate)"
    )
    rate_source: Literal["policy_quote", "buyer"] = Field(description="where premium_rate comes from")
    insured_turnover: float = Field(description="a year of the seller's usual purchases from the buyer (else the buyer's, else the order)")
    premium: float = Field(description="premium rate x insured turnover: the buyer's share of a year's premium")
    order_premium: float = Field(description="this order's price: premium rate x the amount approved (0 for a line or a refusal)")
    lgd: float = Field(description="loss given default used: by the buyer's country (policy.insurance.lgd_by_country), else policy.lgd")


class LatePayment(BaseModel):
    probability: float = Field(description="calibrated probability of the late model's label: paid more than N days late (late_{N}d)")
    label: str = Field(description="the late model's label, late_{N}d: settled more than N days after due (configs/labels.yaml late_days)")
    order_amount: float
    terms_days: int
    explanation: Explanation


class Freshness(BaseModel):
    features_as_of: str | None = Field(description="oldest snapshot time among the buyer's features (UTC)")
    age_days: float | None = Field(description="service clock minus features_as_of")
    stale: bool = Field(description="a feature is older than the configured age, missing, or dated after the clock")
    stale_features: list[str]


class Assessment(BaseModel):
    decision_id: str = Field(description="the decision log's key for this answer")
    buyer_id: str
    seller_id: str | None = Field(description="the seller the decision is for (null: an administrator asked without naming one)")
    assessed_at: str = Field(description="the service clock (UTC) the buyer was assessed at")
    pd_12m: float = Field(description="calibrated probability of default within 12 months")
    grade: int = Field(description="master-scale grade, 1 best")
    tier: Literal["low", "medium", "high"]
    late_payment_probability: float | None = Field(description="the order's late-payment probability (null without an order)")
    recommended_limit: float
    exposure: float = Field(description="the buyer's open balance")
    available_limit: float = Field(description="the granted line minus the exposure")
    capacity: float
    capacity_source: Literal["revenue", "equity", "usual_purchases", "negative_equity", "none"] = Field(
        description="the tightest measure known of what the buyer can carry (negative_equity: none at all)")
    limit_reasons: list[LimitReasonOut] = Field(description="why this limit: the binding measure, the grade's share, the need cap, the largest limit, knock-outs")
    requested_amount: float | None
    requested_limit: float | None
    decision: Literal["approve", "partial", "refer", "decline", "hold"] = Field(
        description="hold: a knock-out (insolvency filing, credit event, overdue beyond the maximum extension): no new credit, orders held")
    decision_code: str = Field(description="a stable code for the decision's path, e.g. within_limit, partial, limit_used, grade_refer, grade_decline, "
                                           "red_alert, terms_above_max, late_probability, insolvency_filing, credit_event, overdue_beyond_extension, "
                                           "negative_equity, no_capacity, not_assessable, override_refer, override_decline")
    approved_amount: float
    decision_reason: str
    granted_limit: float | None = Field(description="the seller's line the order was decided against (null: no seller, or no order)")
    limit_source: Literal["override", "register", "discretionary", "none"] | None = Field(
        description="where that line came from: a reviewer's override in force, the register's granted line, the policy's own authority without a line, or none")
    limit_status: str | None = Field(description="the register's status of the seller's line (none: never requested)")
    limit_note: str | None = Field(description="why this line, in words")
    expected_loss: float = Field(description="PD x LGD x exposure at default")
    insurance: Insurance
    explanation: Explanation = Field(description="why the default model gave this PD")
    late_payment: LatePayment | None
    model_versions: dict[str, str] = Field(description="registered model name -> version used")
    freshness: Freshness


class BatchRequest(Body):
    requests: list[AssessRequest] = Field(description="buyers to assess (at most serving.max_batch_size)")


class ErrorDetail(BaseModel):
    status: int
    code: str = Field(description="a stable machine-readable code, e.g. invalid_field, unknown_buyer")
    message: str
    field: str | None = Field(default=None, description="dotted path of the field at fault, when one is")


class ErrorBody(BaseModel):
    error: ErrorDetail


class BatchItem(BaseModel):
    index: int = Field(description="position in the request")
    buyer_id: str
    assessment: Assessment | None
    error: ErrorDetail | None = Field(description="why this item got no assessment (e.g. unknown_buyer)")


class BatchResponse(BaseModel):
    assessed: int
    failed: int
    results: list[BatchItem]


class ServiceStatus(BaseModel):
    ready: bool
    model_versions: dict[str, str]
    clock: str = Field(description="the service clock: 'wall' or a fixed replay time")
    features_max_age_days: int
    decisions_logged: int


class QuoteAddition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    buyer_id: BuyerId
    annual_turnover: Money | None = Field(default=None, description="a year's insured turnover with the buyer; default: the seller's purchases in the ledger")
    terms_days: Annotated[float, Field(gt=0, le=365)] | None = Field(default=None, description="default: the trade's usual terms")


class QuoteRequest(BaseModel):
    """A seller's policy quote, optionally a what-if: buyers added or removed, every buyer's terms changed."""

    model_config = ConfigDict(extra="forbid")
    seller_id: str | None = Field(default=None, description="an administrator key names the seller; a seller's key quotes its own")
    add: list[QuoteAddition] = Field(default_factory=list)
    remove: list[BuyerId] = Field(default_factory=list)
    terms_days: Annotated[float, Field(gt=0, le=365)] | None = Field(default=None, description="what-if: every insured buyer on these terms")
