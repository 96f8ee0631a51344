"""The credit desk: limit requests, approvals under the authority matrix, overrides, and the
adjustments monitoring proposes. Plain functions over the register; what the policy says of
a buyer comes in as a :class:`PolicyView` (the service computes it with the champion models).

Separation of duties: the requester never approves; an approver signs a request once; a line
above one approver's authority needs two different approvers (four-eyes); a decline needs
one. A buyer under a knock-out (insolvency filing, credit event, overdue beyond the maximum
extension) is never approved, by the policy or by a person.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradecredit.credit.config import CreditConfig, Tier, approvals_needed
from tradecredit.credit.register import (
    DECIDED,
    GRANTS,
    Approval,
    LimitRegister,
    LimitRequest,
    LimitState,
    NewEvent,
    RegisterError,
    new_request_id,
)

KNOCK_OUT_DECISIONS = frozenset({"hold"})
WAITING = frozenset({"pending_approval", "referred"})
APPROVER_ROLES = frozenset({"approver", "administrator"})
Verdict = Literal["approve", "decline"]


@dataclass(frozen=True)
class PolicyView:
    """What the policy says of one buyer for one seller's request, as of the service clock."""

    pd_12m: float
    grade: int
    tier: Tier
    recommended: float  # the policy's limit for this buyer (capacity x grade share, capped)
    capacity: float  # what the buyer can carry, before the grade share
    decision: str  # the policy's decision on the amount asked (approve, partial, refer, decline, hold)
    decision_code: str
    reason: str
    limit_reasons: list[dict[str, Any]] = field(default_factory=list)
    pd_reasons: list[dict[str, Any]] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)

    @property
    def knocked_out(self) -> bool:
        return self.decision in KNOCK_OUT_DECISIONS


@dataclass(frozen=True)
class Reviewer:
    """A named person deciding (the console's logged-in user and their roles)."""

    name: str
    roles: frozenset[str]


@dataclass(frozen=True)
class RequestOutcome:
    request: LimitRequest
    status: str  # approved, partially_approved, declined, referred, pending_approval
    granted: float | None
    approvals: list[Approval]
    approvals_needed: int
    state: LimitState
    created: bool  # False: an idempotent replay of an earlier request


def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def next_review_on(tier: Tier, granted: float, on: date, cfg: CreditConfig) -> date:
    """Review by risk (high monthly, medium quarterly, low yearly) and by importance: a key
    buyer's line is reviewed at least every ``key_buyer_months``."""
    months = cfg.review.months_by_tier[tier]
    if granted >= cfg.review.key_buyer_limit:
        months = min(months, cfg.review.key_buyer_months)
    return add_months(on, months)


def _grant(kind: str, amount: float, view_tier: Tier, grade: int, terms: int, on: date, cfg: CreditConfig, by: str, reason: str, conditions: list[str]) -> NewEvent:
    return NewEvent(
        kind, by, reason, granted=amount, terms_days=terms, valid_from=on, valid_to=add_months(on, cfg.validity_months),  # type: ignore[arg-type]
        next_review_on=next_review_on(view_tier, amount, on, cfg), grade=grade, tier=view_tier, conditions=tuple(conditions),
    )


def other_sellers_lines(register: LimitRegister, seller_id: str, buyer_id: str, on: date, con: Connection | None = None) -> float:
    """What the buyer's other sellers already hold: its lines must fit one capacity together."""
    return sum(s.granted for s in register.states(on, buyer_id=buyer_id, con=con) if s.seller_id != seller_id and s.has_line)


def _filing(
    cfg: CreditConfig, view: PolicyView, seller_id: str, buyer_id: str, amount: float, terms_days: int, requested_by: str,
    on: date, client_key: str | None, accept_partial: bool, taken: float,
) -> tuple[LimitRequest, list[NewEvent]]:
    """The request and its first events: decided within delegated authority, or left to approvers."""
    room = max(0.0, view.recommended - taken)
    proposed = 0.0 if view.knocked_out or view.decision == "decline" else min(amount, room)
    reason = view.reason
    if taken > 0 and room < min(amount, view.recommended):
        reason = f"{reason}; the buyer's other sellers hold {taken:,.0f} of its recommended limit {view.recommended:,.0f}"
    events: list[NewEvent] = [NewEvent("requested", requested_by, f"{amount:,.0f} on {terms_days} days", granted=amount, terms_days=terms_days, grade=view.grade, tier=view.tier)]
    needed = approvals_needed(view.tier, amount, cfg)
    if view.knocked_out or view.decision == "decline":
        needed = 0
        events.append(NewEvent("declined", "policy", view.reason, grade=view.grade, tier=view.tier))
    elif view.decision == "refer" or proposed <= 0:
        needed = max(1, needed)
        events.append(NewEvent("referred", "policy", reason if proposed > 0 or view.decision == "refer" else f"no room under the recommended limit: {reason}", grade=view.grade, tier=view.tier))
    elif proposed >= amount and needed == 0:
        events.append(_grant("approved", amount, view.tier, view.grade, terms_days, on, cfg, "policy", f"within delegated authority: {reason}", view.conditions))
    elif proposed < amount and accept_partial and approvals_needed(view.tier, proposed, cfg) == 0:
        needed = 0
        events.append(_grant("partially_approved", proposed, view.tier, view.grade, terms_days, on, cfg, "policy", f"{proposed:,.0f} of {amount:,.0f} within delegated authority: {reason}", view.conditions))
    else:
        needed = max(1, needed)
        who = "two different approvers" if needed >= 2 else "one approver"
        events.append(NewEvent("pending_approval", "policy", f"{amount:,.0f} in the {view.tier}-risk tier needs {who}: {reason}", grade=view.grade, tier=view.tier))
    request = LimitRequest(
        request_id=new_request_id(), seller_id=seller_id, buyer_id=buyer_id, client_key=client_key, requested_amount=amount,
        terms_days=terms_days, requested_by=requested_by, as_of=on.isoformat(), recorded_at=datetime.now(UTC).isoformat(),
        pd_12m=view.pd_12m, grade=view.grade, tier=view.tier, recommended=view.recommended, proposed=proposed,
        approvals_needed=needed, policy_decision=view.decision, decision_code=view.decision_code, reason=reason,
        details={"limit_reasons": view.limit_reasons, "pd_reasons": view.pd_reasons, "conditions": view.conditions, "capacity": view.capacity, "other_sellers_lines": taken},
    )
    return request, events


def file_request(
    register: LimitRegister,
    cfg: CreditConfig,
    view: PolicyView,
    seller_id: str,
    buyer_id: str,
    amount: float,
    terms_days: int,
    requested_by: str,
    on: date,
    client_key: str | None = None,
    accept_partial: bool = True,
) -> RequestOutcome:
    """File a request and decide it within delegated authority, or leave it pending approval.

    The same ``client_key`` from the same seller returns the first request's outcome (an ERP
    retrying after a timeout files nothing twice); reused with a different body it is a 409.
    """
    if client_key is not None:
        earlier = register.request_by_client_key(seller_id, client_key)
        if earlier is not None:
            if (earlier.buyer_id, earlier.requested_amount, earlier.terms_days) != (buyer_id, amount, terms_days):
                raise RegisterError(409, "client_key_reused", "this client_key was used for a different request: use a new key")
            return outcome_of(register, earlier, on, created=False)
    try:
        with register.transaction() as con:
            # The capacity is read and taken under the buyer's lock: two sellers filing at once
            # queue, and the later one sees the first one's line (first come, first served).
            taken = 0.0
            if cfg.aggregate_capacity:
                register.lock_buyer(con, buyer_id)
                taken = other_sellers_lines(register, seller_id, buyer_id, on, con)
            request, events = _filing(cfg, view, seller_id, buyer_id, amount, terms_days, requested_by, on, client_key, accept_partial, taken)
            register.add_request(con, request)
            register.append(con, seller_id, buyer_id, on, events, request.request_id)
    except sa.exc.IntegrityError:  # a concurrent retry with the same client key got there first
        if client_key is not None and (earlier := register.request_by_client_key(seller_id, client_key)) is not None:
            return outcome_of(register, earlier, on, created=False)
        raise
    # The outcome is read back from the register: what it says is what happened.
    return outcome_of(register, request, on, created=True)


def outcome_of(register: LimitRegister, request: LimitRequest, on: date, created: bool = False) -> RequestOutcome:
    events = [e for e in register.events(request.seller_id, request.buyer_id) if e.request_id == request.request_id]
    decided = [e for e in events if e.event in DECIDED]
    last = decided[-1] if decided else next(e for e in reversed(events) if e.event in WAITING | {"requested"})
    approvals = register.approvals(request.request_id)
    return RequestOutcome(
        request=request, status=last.event, granted=last.granted if last.event in GRANTS else None,
        approvals=approvals, approvals_needed=request.approvals_needed, state=register.state(request.seller_id, request.buyer_id, on), created=created,
    )


def decide_request(
    register: LimitRegister,
    cfg: CreditConfig,
    request_id: str,
    reviewer: Reviewer,
    verdict: Verdict,
    reason: str,
    on: date,
    amount: float | None = None,
    knock_out: str | None = None,
) -> RequestOutcome:
    """One approver's verdict on a waiting request. ``knock_out`` is the buyer's knock-out now
    (a request filed before an insolvency filing cannot be approved after it)."""
    request = register.request(request_id)
    if request is None:
        raise RegisterError(404, "unknown_request", "no such limit request")
    if not reviewer.roles & APPROVER_ROLES:
        raise RegisterError(403, "forbidden", "deciding a limit needs the approver role")
    if reviewer.name == request.requested_by or request.requested_by == f"user:{reviewer.name}":
        raise RegisterError(403, "forbidden", "the requester cannot approve their own request")
    if not reason.strip():
        raise RegisterError(400, "invalid_field", "write the reason for the decision")
    grant = request.requested_amount if amount is None else amount
    if verdict == "approve":
        if knock_out is not None:
            raise RegisterError(409, "knocked_out", f"this buyer cannot be approved: {knock_out}")
        if not 0 < grant <= request.requested_amount:
            raise RegisterError(400, "invalid_field", f"the amount granted is above 0 and at most the {request.requested_amount:,.0f} requested")
    with register.transaction() as con:
        # Locks in one order everywhere (the buyer, then the request), so two decisions cannot deadlock.
        if verdict == "approve" and cfg.aggregate_capacity:
            register.lock_buyer(con, request.buyer_id)
            taken = other_sellers_lines(register, request.seller_id, request.buyer_id, on, con)
            capacity = float(request.details.get("capacity", request.recommended))
            if grant + taken > capacity:
                raise RegisterError(409, "over_capacity", f"the buyer's lines across sellers would be {grant + taken:,.0f}, above its capacity {capacity:,.0f}")
        register.lock_request(con, request_id)
        events = [e for e in register.events(request.seller_id, request.buyer_id, con) if e.request_id == request_id]
        if any(e.event in DECIDED for e in events):
            raise RegisterError(409, "already_decided", "this request was already decided: reload it")
        earlier = register.approvals(request_id, con)
        if any(a.approver == reviewer.name for a in earlier):
            raise RegisterError(403, "forbidden", "you already approved this request: a different approver must sign the second step")
        register.add_approval(con, Approval(request_id, len(earlier) + 1, reviewer.name, verdict, grant if verdict == "approve" else None, reason, datetime.now(UTC).isoformat()))
        by = ", ".join([*(a.approver for a in earlier), reviewer.name])
        if verdict == "decline":
            register.append(con, request.seller_id, request.buyer_id, on, [NewEvent("declined", reviewer.name, reason)], request_id)
        else:
            amounts = [a.amount for a in earlier if a.amount is not None] + [grant]
            granted = min(amounts)  # two approvers who disagree grant the smaller
            needed = max(1, approvals_needed(request.tier, granted, cfg))  # type: ignore[arg-type]
            if len(amounts) >= needed:
                kind = "approved" if granted >= request.requested_amount else "partially_approved"
                register.append(con, request.seller_id, request.buyer_id, on, [
                    NewEvent("approval", reviewer.name, reason, granted=grant),
                    _grant(kind, granted, request.tier, request.grade, request.terms_days, on, cfg, by, reason, list(request.details.get("conditions", []))),  # type: ignore[arg-type]
                ], request_id)
            else:
                register.append(con, request.seller_id, request.buyer_id, on, [NewEvent("approval", reviewer.name, f"step {len(amounts)} of {needed}: {reason}", granted=grant)], request_id)
    return outcome_of(register, request, on)


def cancel_request(register: LimitRegister, request_id: str, by: str, reason: str, on: date) -> RequestOutcome:
    request = register.request(request_id)
    if request is None:
        raise RegisterError(404, "unknown_request", "no such limit request")
    with register.transaction() as con:
        register.lock_request(con, request_id)
        events = [e for e in register.events(request.seller_id, request.buyer_id, con) if e.request_id == request_id]
        if any(e.event in DECIDED for e in events):
            raise RegisterError(409, "already_decided", "this request was already decided")
        register.append(con, request.seller_id, request.buyer_id, on, [NewEvent("cancelled", by, reason)], request_id)
    return outcome_of(register, request, on)


def record_override(
    register: LimitRegister, cfg: CreditConfig, seller_id: str, buyer_id: str, tier: Tier, decision: str, limit: float | None,
    reviewer: Reviewer, reason: str, on: date, knock_out: str | None = None,
) -> int:
    """A reviewer's override: honoured by every later answer for this (seller, buyer) until it
    expires (``override_days``) or is revoked. One person may override only within one
    approver's authority; a larger line is a limit request for two approvers."""
    if not reviewer.roles & APPROVER_ROLES:
        raise RegisterError(403, "forbidden", "an override needs the approver role")
    if decision in ("approve", "partial"):
        if knock_out is not None:
            raise RegisterError(409, "knocked_out", f"this buyer cannot be approved: {knock_out}")
        if limit is not None and approvals_needed(tier, limit, cfg) >= 2:
            raise RegisterError(403, "four_eyes", f"a line of {limit:,.0f} in the {tier}-risk tier needs two approvers: file a limit request")
    with register.transaction() as con:
        return register.append(con, seller_id, buyer_id, on, [
            NewEvent("override", reviewer.name, reason, granted=limit, decision=decision, valid_from=on, valid_to=on + timedelta(days=cfg.override_days), tier=tier)
        ])[0]


def revoke_override(register: LimitRegister, seller_id: str, buyer_id: str, reviewer: Reviewer, reason: str, on: date) -> None:
    state = register.state(seller_id, buyer_id, on)
    if state.override is None:
        raise RegisterError(404, "no_override", "this line has no override in force")
    if not reviewer.roles & APPROVER_ROLES:
        raise RegisterError(403, "forbidden", "revoking an override needs the approver role")
    with register.transaction() as con:
        # Read again under the lock: a rival may have revoked it since.
        register.lock_event(con, state.override.event_id)
        now = register.state(seller_id, buyer_id, on, con).override
        if now is None or now.event_id != state.override.event_id:
            raise RegisterError(409, "already_decided", "this override was revoked or replaced meanwhile: reload it")
        register.append(con, seller_id, buyer_id, on, [NewEvent("override_revoked", reviewer.name, reason, ref_event_id=now.event_id)])


def settle_reduction(register: LimitRegister, seller_id: str, buyer_id: str, event_id: int, reviewer: Reviewer, confirm: bool, reason: str, on: date) -> None:
    """An approver confirms a proposed reduction (it takes effect today) or rejects it."""
    if not reviewer.roles & APPROVER_ROLES:
        raise RegisterError(403, "forbidden", "deciding a reduction needs the approver role")
    with register.transaction() as con:
        # Checked under the lock: of two people deciding one reduction, the later reads the first's decision.
        register.lock_event(con, event_id)
        state = register.state(seller_id, buyer_id, on, con)
        if event_id not in {p.event_id for p in state.pending_reductions}:
            raise RegisterError(409, "not_pending", "this reduction is not pending: it took effect, was decided, or does not exist")
        register.append(con, seller_id, buyer_id, on, [NewEvent("reduction_confirmed" if confirm else "reduction_rejected", reviewer.name, reason, ref_event_id=event_id)])


# --------------------------------------------------------------------------- monitoring


@dataclass(frozen=True)
class BuyerRisk:
    """What a monitoring run knows of a buyer now."""

    pd_12m: float
    grade: int
    tier: Tier
    recommended: float
    red_alert: bool  # an open red early-warning case
    exposure_by_seller: dict[str, float] = field(default_factory=dict)
    review_case: bool = False  # an open yellow case: its lines are reviewed now


@dataclass(frozen=True)
class AdjustmentOutcome:
    on: date
    reductions_proposed: int
    increases_requested: int
    expired: int
    reviews_due: list[LimitState]
    pending_reductions: list[tuple[LimitState, Any]]


def adjust_limits(register: LimitRegister, cfg: CreditConfig, risks: dict[str, BuyerRisk], on: date) -> AdjustmentOutcome:
    """Each monitoring run: a worsened grade or a red early-warning case proposes a reduction that takes
    effect after ``notice_days`` unless an approver rejects it; a clearly better recommended
    limit files an increase request for approval (never a silent increase); lines past their
    validity are marked expired; reviews falling due, and the lines of buyers with a yellow case,
    are listed. Rerunning a date adds nothing."""
    done: dict[str, int] = {"expired": 0, "proposed": 0, "increase": 0}
    for seen in register.states(on):
        risk = risks.get(seen.buyer_id)
        if _line_action(cfg, seen, risk, on) is None:
            continue
        with register.transaction() as con:
            # Decided again on the line read under the buyer's lock: a second run or an approval
            # may have changed it since the list was read, and nothing is proposed twice.
            register.lock_buyer(con, seen.buyer_id)
            line = register.state(seen.seller_id, seen.buyer_id, on, con)
            action = _line_action(cfg, line, risk, on)
            if action is not None:
                kind, events = action
                if kind == "increase" and risk is not None:  # an increase is only ever proposed on a known risk
                    _file_increase(register, cfg, line, risk, on, con)
                else:
                    register.append(con, line.seller_id, line.buyer_id, on, events)
                done[kind] += 1
    states = register.states(on)
    return AdjustmentOutcome(
        on=on, reductions_proposed=done["proposed"], increases_requested=done["increase"], expired=done["expired"],
        reviews_due=[s for s in states if s.review_due(on) or (s.has_line and s.buyer_id in risks and risks[s.buyer_id].review_case)],
        pending_reductions=[(s, p) for s in states for p in s.pending_reductions],
    )


def _line_action(cfg: CreditConfig, s: LimitState, risk: BuyerRisk | None, on: date) -> tuple[str, list[NewEvent]] | None:
    """What a run does to one line: ("expired" or "proposed", the events to append), ("increase",
    []) for an increase request, or None."""
    a = cfg.adjustments
    grant = next((e for e in reversed(s.events) if e.event_id == s.grant_event_id), None)
    if grant is None:
        return None
    if s.status == "expired":
        if any(e.event == "expired" and e.ref_event_id == grant.event_id for e in s.events):
            return None
        return "expired", [NewEvent("expired", "policy", f"valid to {s.valid_to}", ref_event_id=grant.event_id)]
    if risk is None or not s.has_line:
        return None
    targets: list[tuple[float, str]] = []
    if a.reduce_on_red_alert and risk.red_alert:
        exposure = risk.exposure_by_seller.get(s.seller_id, 0.0)
        targets.append((exposure, f"a red early-warning case: no new headroom above the exposure {exposure:,.0f}"))
    if s.grade_at_decision is not None and risk.grade >= s.grade_at_decision + a.grade_steps:
        targets.append((risk.recommended, f"grade {risk.grade}, {risk.grade - s.grade_at_decision} steps worse than at the decision (grade {s.grade_at_decision}): the recommended limit is {risk.recommended:,.0f}"))
    earlier = {(e.ref_event_id, e.granted) for e in s.events if e.event == "reduction_proposed"}
    floor = min(s.pending_reductions, key=lambda p: p.to).to if s.pending_reductions else s.granted
    for target, why in sorted(targets):
        target = max(0.0, float(target))
        if target < floor and (grant.event_id, target) not in earlier:
            return "proposed", [
                NewEvent("reduction_proposed", "policy:monitoring", why, granted=target, effective_on=on + timedelta(days=a.notice_days), ref_event_id=grant.event_id, grade=risk.grade, tier=risk.tier)
            ]
    if a.propose_increase_share > 0 and not targets and not s.pending_request_ids and risk.recommended >= s.granted * (1 + a.propose_increase_share) and s.granted > 0:
        return "increase", []
    return None


def _file_increase(register: LimitRegister, cfg: CreditConfig, s: LimitState, risk: BuyerRisk, on: date, con: Connection) -> None:
    needed = max(1, approvals_needed(risk.tier, risk.recommended, cfg))
    request = LimitRequest(
        request_id=new_request_id(), seller_id=s.seller_id, buyer_id=s.buyer_id, client_key=None, requested_amount=risk.recommended,
        terms_days=s.terms_days or 0, requested_by="policy:monitoring", as_of=on.isoformat(), recorded_at=datetime.now(UTC).isoformat(),
        pd_12m=risk.pd_12m, grade=risk.grade, tier=risk.tier, recommended=risk.recommended, proposed=risk.recommended,
        approvals_needed=needed, policy_decision="approve", decision_code="improved",
        reason=f"the recommended limit {risk.recommended:,.0f} is well above the line {s.granted:,.0f} (grade {risk.grade})",
        details={"capacity": risk.recommended, "conditions": s.conditions},
    )
    register.add_request(con, request)
    register.append(con, s.seller_id, s.buyer_id, on, [
        NewEvent("requested", "policy:monitoring", request.reason, granted=risk.recommended, grade=risk.grade, tier=risk.tier),
        NewEvent("pending_approval", "policy", f"an increase is never silent: {needed} approver(s)", grade=risk.grade, tier=risk.tier),
    ], request.request_id)
