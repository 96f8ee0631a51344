"""Request and response bodies of the limit register's endpoints (``/limits``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from tradecredit.credit.desk import RequestOutcome
from tradecredit.credit.register import LimitEvent, LimitState
from tradecredit.serving.schemas import Body, BuyerId

SellerId = BuyerId  # the same id syntax


class LimitRequestBody(Body):
    buyer_id: BuyerId
    amount: float = Field(gt=0, allow_inf_nan=False, description="the credit line asked for (the whole line, not an increase)")
    terms_days: int = Field(ge=0, description="the payment terms the line is for")
    client_key: str | None = Field(default=None, min_length=1, max_length=128, description="the caller's idempotency key: the same key from the same seller returns the first answer")
    seller_id: SellerId | None = Field(default=None, description="only with an administrator key; a seller's key is its own seller")
    accept_partial: bool = Field(default=True, description="grant what delegated authority allows at once when less than asked; false: wait for an approver")


class Override(BaseModel):
    decision: str
    granted: float | None
    until: str
    by: str
    reason: str


class PendingReduction(BaseModel):
    event_id: int
    to: float = Field(description="the line after the reduction")
    proposed_on: str
    effective_on: str = Field(description="the reduction takes effect on this day unless an approver rejects it")
    reason: str


class LimitLine(BaseModel):
    seller_id: str
    buyer_id: str
    status: str = Field(description="requested, approved, partially_approved, declined, referred, pending_approval, reduced, expired, cancelled, or none")
    granted: float = Field(description="the line orders are decided against today (0 without one)")
    has_line: bool
    valid_from: str | None
    valid_to: str | None
    next_review_on: str | None
    review_due: bool
    terms_days: int | None
    conditions: list[str]
    decided_by: str | None = Field(description="policy, or the approvers' names")
    reason: str | None
    override: Override | None = Field(description="a reviewer's override in force: honoured by /assess until it expires")
    pending_reductions: list[PendingReduction]
    pending_requests: list[str] = Field(description="request ids waiting for an approver")


class Event(BaseModel):
    event_id: int
    event: str
    request_id: str | None
    granted: float | None
    decision: str | None
    valid_to: str | None
    effective_on: str | None
    decided_by: str
    reason: str
    as_of: str
    recorded_at: str


class ApprovalOut(BaseModel):
    step: int
    approver: str
    verdict: str
    amount: float | None
    reason: str
    recorded_at: str


class LimitRequestAnswer(BaseModel):
    request_id: str
    created: bool = Field(description="false: the same client_key was seen before; this is the first answer, as it stands now")
    status: str = Field(description="approved, partially_approved, declined, referred or pending_approval (or cancelled)")
    granted: float | None
    approvals_needed: int = Field(description="0: decided within delegated authority; 1; 2: four-eyes")
    approvals: list[ApprovalOut]
    requested_amount: float
    terms_days: int
    recommended: float
    proposed: float = Field(description="what the policy would grant of the amount asked")
    pd_12m: float
    grade: int
    tier: str
    decision_code: str
    reason: str
    limit_reasons: list[dict[str, Any]]
    line: LimitLine


class LimitHistory(BaseModel):
    line: LimitLine
    events: list[Event] = Field(description="the append-only history, oldest first")


class LimitListing(BaseModel):
    lines: list[LimitLine]
    total: int
    page: int
    pages: int


def line_of(state: LimitState, today: str) -> LimitLine:
    from datetime import date

    o = state.override
    return LimitLine(
        seller_id=state.seller_id, buyer_id=state.buyer_id, status=state.status, granted=state.granted, has_line=state.has_line,
        valid_from=state.valid_from, valid_to=state.valid_to, next_review_on=state.next_review_on, review_due=state.review_due(date.fromisoformat(today)),
        terms_days=state.terms_days, conditions=state.conditions, decided_by=state.decided_by, reason=state.reason,
        override=None if o is None else Override(decision=o.decision, granted=o.granted, until=o.until, by=o.by, reason=o.reason),
        pending_reductions=[PendingReduction(**p.__dict__) for p in state.pending_reductions], pending_requests=state.pending_request_ids,
    )


def event_of(e: LimitEvent) -> Event:
    return Event(**{k: getattr(e, k) for k in Event.model_fields})


def answer_of(outcome: RequestOutcome, today: str) -> LimitRequestAnswer:
    r = outcome.request
    return LimitRequestAnswer(
        request_id=r.request_id, created=outcome.created, status=outcome.status, granted=outcome.granted, approvals_needed=outcome.approvals_needed,
        approvals=[ApprovalOut(**{k: getattr(a, k) for k in ApprovalOut.model_fields}) for a in outcome.approvals],
        requested_amount=r.requested_amount, terms_days=r.terms_days, recommended=r.recommended, proposed=r.proposed, pd_12m=r.pd_12m,
        grade=r.grade, tier=r.tier, decision_code=r.decision_code, reason=r.reason, limit_reasons=list(r.details.get("limit_reasons", [])),
        line=line_of(outcome.state, today),
    )
