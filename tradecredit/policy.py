"""Credit policy as plain functions over ``configs/policy.yaml``: grade and tier, limit,
decision, expected loss and a trade-credit-insurance quote for one buyer.

Monotone by construction: a worse grade never gets a higher limit (grade shares never rise)
and never a lower premium rate (the rate rises with PD, and the grade rises with PD).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import numpy as np

from tradecredit.policy_config import PolicyConfig
from tradecredit.grades import grade_of, tier_of
from tradecredit.pricing import buyer_premium_rate

Decision = Literal["approve", "partial", "refer", "decline", "hold"]


# Buyer features the policy reads besides the PD (all in the default model's feature service).
FACT_FEATURES = ("revenue", "equity", "amount_issued_365d", "invoices_issued_365d", "open_balance", "days_since_statement", "dbt_weighted_365d")


@dataclass(frozen=True)
class BuyerFacts:
    """What the policy needs to know about a buyer besides its PD (None: unknown)."""

    revenue: float | None
    equity: float | None
    usual_monthly_purchases: float | None  # the last 365 days of invoices / 12, across sellers
    exposure: float  # open balance now (the seller's, when the request names one)
    days_since_statement: float | None = None
    seller_monthly_purchases: float | None = None  # this seller's usual monthly purchases
    days_beyond_terms: float | None = None  # amount-weighted, last 365 days


@dataclass(frozen=True)
class CreditFacts:
    """What the ledger and monitoring know that stops credit whatever the PD says."""

    insolvency_filed_on: date | None
    credit_event: tuple[str, date] | None  # (type, date): insolvency, payment_default, claim, write_off
    max_days_past_due: int | None  # the oldest open invoice's days past due
    open_red_alert: bool = False  # an open red early-warning case (orders held)
    # open amount more than 60 days past due, and the open amount it is a share of, disputed
    # invoices and small remainders left out as for max_days_past_due (None: not from a ledger)
    past_due_60_plus: float | None = None
    open_counted: float | None = None


@dataclass(frozen=True)
class LimitReason:
    """One reason of a limit, with its numbers, in English and Simplified Chinese."""

    code: str
    sentence_en: str
    sentence_zh: str


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
        days_since_statement=_number(features.get("days_since_statement")),
        days_beyond_terms=_number(features.get("dbt_weighted_365d")),
    )


@dataclass(frozen=True)
class Capacity:
    amount: float
    source: Literal["revenue", "equity", "usual_purchases", "negative_equity", "none"]


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
    cover_ratio: float  # the policy's fixed insured share
    premium_rate: float
    insured_turnover: float
    premium: float
    reason_code: str = "within_limit"
    limit_reasons: tuple[LimitReason, ...] = ()
    order_premium: float = 0.0  # the order's price: the premium rate on the amount approved
    rate_source: str = "buyer"  # policy_quote: the seller's policy rate; buyer: the buyer priced alone


def _known(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def _money(value: float) -> str:
    return f"{value:,.0f}"


def capacity_of(facts: BuyerFacts, policy: PolicyConfig) -> tuple[Capacity, list[LimitReason]]:
    """The tightest of the statement measures known; none at all from zero or negative equity;
    an old statement (or one of unknown age) haircut, a very old one ignored; without a usable
    statement, months of the buyer's usual purchases."""
    c = policy.limits.capacity
    reasons: list[LimitReason] = []
    has_statement = facts.revenue is not None or facts.equity is not None
    age = facts.days_since_statement
    weight = 1.0
    if has_statement and age is not None and age > c.statement_max_age_days:
        reasons.append(LimitReason("statement_ignored", f"the latest statement is {age:,.0f} days old (more than {c.statement_max_age_days}): not used",
                                   f"最近一期财务报表已有{age:,.0f}天（超过{c.statement_max_age_days}天）：不予采用"))
        has_statement = False
    elif has_statement and (age is None or age > c.statement_haircut_after_days):
        weight = 1.0 - c.statement_haircut
        old = "of unknown age" if age is None else f"{age:,.0f} days old"
        old_zh = "日期不明" if age is None else f"已有{age:,.0f}天"
        reasons.append(LimitReason("statement_stale_haircut", f"the latest statement is {old}: its figures count at {weight:.0%}",
                                   f"最近一期财务报表{old_zh}：按{weight:.0%}计算"))
    if has_statement and facts.equity is not None and math.isfinite(facts.equity) and facts.equity <= 0:
        reasons.append(LimitReason("negative_equity", f"equity {_money(facts.equity)} is not positive: no capacity from the statements",
                                   f"净资产{_money(facts.equity)}不为正：财务报表不支持授信额度"))
        return Capacity(0.0, "negative_equity"), reasons
    measures: list[tuple[float, str, LimitReason]] = []
    if has_statement and _known(facts.revenue):
        amount = facts.revenue * c.revenue_share * weight  # type: ignore[operator]
        measures.append((amount, "revenue", LimitReason("capacity_revenue", f"{c.revenue_share:.0%} of revenue {_money(facts.revenue)} = capacity {_money(amount)}",  # type: ignore[arg-type]
                                                        f"营业收入{_money(facts.revenue)}的{c.revenue_share:.0%} = 承受能力{_money(amount)}")))  # type: ignore[arg-type]
    if has_statement and _known(facts.equity):
        amount = facts.equity * c.equity_share * weight  # type: ignore[operator]
        measures.append((amount, "equity", LimitReason("capacity_equity", f"{c.equity_share:.0%} of equity {_money(facts.equity)} = capacity {_money(amount)}",  # type: ignore[arg-type]
                                                       f"净资产{_money(facts.equity)}的{c.equity_share:.0%} = 承受能力{_money(amount)}")))  # type: ignore[arg-type]
    if not measures and _known(facts.usual_monthly_purchases):
        amount = facts.usual_monthly_purchases * c.monthly_purchases_multiple  # type: ignore[operator]
        measures.append((amount, "usual_purchases", LimitReason(
            "capacity_purchases", f"no usable statement: {c.monthly_purchases_multiple:g} months of usual purchases {_money(facts.usual_monthly_purchases)} = capacity {_money(amount)}",  # type: ignore[arg-type]
            f"无可用财务报表：{c.monthly_purchases_multiple:g}个月的平均采购额{_money(facts.usual_monthly_purchases)} = 承受能力{_money(amount)}")))  # type: ignore[arg-type]
    if not measures:
        return Capacity(0.0, "none"), reasons
    amount, source, reason = min(measures, key=lambda m: m[0])
    if len(measures) > 1:
        reason = LimitReason(reason.code, reason.sentence_en + " (the tightest measure)", reason.sentence_zh + "（取最低值）")
    return Capacity(amount, source), [*reasons, reason]  # type: ignore[arg-type]


def need_cap(facts: BuyerFacts, terms_days: int | None, policy: PolicyConfig) -> tuple[float | None, LimitReason | None]:
    """A multiple of what the seller's usual trade keeps outstanding; None without history."""
    n = policy.limits.need
    monthly = facts.seller_monthly_purchases if _known(facts.seller_monthly_purchases) else facts.usual_monthly_purchases
    if not _known(monthly):
        return None, None
    terms = terms_days if terms_days is not None else n.default_terms_days
    late = max(0.0, facts.days_beyond_terms or 0.0)
    outstanding = monthly * max(1.0, (terms + late) / 30)  # type: ignore[operator]
    cap = outstanding * n.months_of_purchases
    whose, whose_zh = ("the seller's", "该供货商的") if _known(facts.seller_monthly_purchases) else ("the buyer's", "买方的")
    return cap, LimitReason(
        "need_cap", f"need: {n.months_of_purchases:g} x {whose} usual outstanding {_money(outstanding)} ({_money(monthly)} a month on {terms} days + {late:.0f} days late) = {_money(cap)}",  # type: ignore[arg-type]
        f"需求上限：{n.months_of_purchases:g} x {whose_zh}平均应收余额{_money(outstanding)}（月均{_money(monthly)}，账期{terms}天+逾期{late:.0f}天）= {_money(cap)}",  # type: ignore[arg-type]
    )


def recommended_limit(grade: int, capacity: Capacity, policy: PolicyConfig, need: float | None = None) -> float:
    limits = policy.limits
    raw = min(capacity.amount * limits.grade_share[grade - 1], limits.max_limit, math.inf if need is None else need)
    return math.floor(raw / limits.rounding) * limits.rounding


@dataclass(frozen=True)
class KnockOut:
    code: str
    reason: str


def knock_outs_of(facts: CreditFacts | None, policy: PolicyConfig) -> list[KnockOut]:
    """The facts that hold new credit whatever the PD says."""
    if facts is None:
        return []
    out = []
    if facts.insolvency_filed_on is not None:
        out.append(KnockOut("insolvency_filing", f"an insolvency filing on {facts.insolvency_filed_on}"))
    if facts.credit_event is not None:
        kind, day = facts.credit_event
        out.append(KnockOut("credit_event", f"a credit event ({kind.replace('_', ' ')}) on {day}"))
    limit = policy.knock_outs.max_extension_days
    if facts.max_days_past_due is not None and facts.max_days_past_due > limit:
        out.append(KnockOut("overdue_beyond_extension", f"an invoice {facts.max_days_past_due} days past due, beyond the maximum extension of {limit} days"))
    return out


def decide(
    pd_12m: float,
    facts: BuyerFacts,
    requested: float | None,
    policy: PolicyConfig,
    requested_limit: float | None = None,
    refer_because: str | None = None,
    credit_facts: CreditFacts | None = None,
    terms_days: int | None = None,
    late_probability: float | None = None,
    granted_limit: float | None = None,
    lgd: float | None = None,
    policy_rate: float | None = None,
) -> CreditDecision:
    """The whole policy for one buyer.

    ``requested`` is an order amount (new exposure); ``requested_limit`` a credit line asked
    for. Without a ``granted_limit`` the line is the smaller of the recommended and the
    requested limit; with one (the seller's line in the register) the order is decided against
    it. An order is decided against what the line leaves after the exposure; with only a line
    asked for, the decision is on the line. Knock-outs (``credit_facts``) hold everything, and
    so does an open red early-warning case; terms above the maximum, a likely late payment and ``refer_because``
    (stale features, an explanation that failed its check) refer, without hiding the numbers.

    The insurance price is the seller's policy rate (``policy_rate``, from its quote) when it
    has one, else the buyer's own rate on its exposure (:func:`~tradecredit.pricing.buyer_premium_rate`);
    ``lgd`` is the buyer's (by country), else ``policy.lgd``.
    """
    if not 0.0 <= pd_12m <= 1.0 or not math.isfinite(pd_12m):
        raise ValueError(f"pd_12m must be a probability, got {pd_12m}")
    for name, value in (("requested amount", requested), ("requested limit", requested_limit), ("granted limit", granted_limit)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ValueError(f"the {name} must be zero or more, got {value}")
    grade = int(grade_of(np.array([pd_12m]), policy)[0])
    tier = str(tier_of(np.array([grade]), policy)[0])
    limits, knock = policy.limits, policy.knock_outs
    capacity, reasons = capacity_of(facts, policy)
    need, need_reason = need_cap(facts, terms_days, policy)
    limit = recommended_limit(grade, capacity, policy, need)
    share = limits.grade_share[grade - 1]
    reasons.append(LimitReason("grade_share", f"grade {grade} grants {share:.0%} of capacity: {_money(capacity.amount * share)}",
                               f"评级{grade}级可获承受能力的{share:.0%}：{_money(capacity.amount * share)}"))
    if need_reason is not None:
        reasons.append(need_reason if need is not None and need < min(capacity.amount * share, limits.max_limit) else
                       LimitReason(need_reason.code, need_reason.sentence_en + " (not binding)", need_reason.sentence_zh + "（未构成约束）"))
    if capacity.amount * share > limits.max_limit and (need is None or need > limits.max_limit):
        reasons.append(LimitReason("max_limit", f"capped at the largest limit {_money(limits.max_limit)}", f"以最高额度{_money(limits.max_limit)}为上限"))
    if granted_limit is not None:
        line = granted_limit
    else:
        line = limit if requested_limit is None else min(limit, requested_limit)
    exposure = max(0.0, facts.exposure)
    available = max(0.0, line - exposure)
    on_line = requested is None and requested_limit is not None
    asked = (requested_limit if on_line else requested) or 0.0
    room = limit if on_line else available
    what = "requested limit" if on_line else "requested"
    knocked = knock_outs_of(credit_facts, policy)
    reasons += [LimitReason(k.code, f"knock-out: {k.reason}", f"否决项：{k.reason}") for k in knocked]
    decision: Decision
    if knocked:
        decision, approved, code = "hold", 0.0, knocked[0].code
        reason = "no new credit, orders held: " + "; ".join(k.reason for k in knocked)
    elif grade >= limits.decline_from_grade:
        decision, approved, code, reason = "decline", 0.0, "grade_decline", f"grade {grade} is at or past the decline grade {limits.decline_from_grade}"
    elif grade >= limits.refer_from_grade:
        decision, approved, code, reason = "refer", 0.0, "grade_refer", f"grade {grade} needs a credit analyst (refer from grade {limits.refer_from_grade})"
    elif credit_facts is not None and credit_facts.open_red_alert:
        decision, approved, code = "hold", 0.0, "red_alert"
        reason = "an open red early-warning case: orders held until a reviewer resolves it (console, Cases)"
    elif terms_days is not None and terms_days > knock.max_terms_days:
        decision, approved, code = knock.terms_above_max, 0.0, "terms_above_max"
        reason = f"terms of {terms_days} days are above the maximum of {knock.max_terms_days}"
    elif late_probability is not None and late_probability > knock.late_probability_refer_above:
        decision, approved, code = "refer", 0.0, "late_probability"
        reason = f"late-payment probability {late_probability:.0%} is above {knock.late_probability_refer_above:.0%}: shorter terms or security first"
    elif refer_because is not None:
        decision, approved, code, reason = "refer", 0.0, "not_assessable", refer_because
    elif granted_limit is None and capacity.source == "negative_equity":
        decision, approved, code, reason = "refer", 0.0, "negative_equity", "the latest statement shows no positive equity: no limit without a person"
    elif granted_limit is None and capacity.source == "none":
        decision, approved, code, reason = "refer", 0.0, "no_capacity", "no revenue, equity or purchase history to size a limit"
    elif requested is None and requested_limit is None and room > 0:
        decision, approved, code, reason = "approve", 0.0, "nothing_requested", f"nothing requested; {room:,.0f} is available under the limit"
    elif asked <= room and (asked > 0 or room > 0):
        decision, approved, code = "approve", asked, "within_limit"
        reason = f"within the recommended limit ({limit:,.0f})" if on_line else f"within the available limit ({available:,.0f})"
    elif room > 0:
        decision, approved, code = "partial", room, "partial"
        reason = f"{what} {asked:,.0f}; {room:,.0f} is {'the recommended limit' if on_line else 'available under the limit'}"
    else:
        decision, approved, code, reason = "refer", 0.0, "limit_used", f"exposure {exposure:,.0f} already uses the whole limit ({line:,.0f})"
    ins = policy.insurance
    loss_given_default = policy.lgd if lgd is None else lgd
    terms = terms_days if terms_days is not None else policy.limits.need.default_terms_days
    rate = policy_rate if policy_rate is not None else buyer_premium_rate(pd_12m, loss_given_default, terms, facts.days_beyond_terms or 0.0, ins)
    monthly = facts.seller_monthly_purchases if facts.seller_monthly_purchases is not None else facts.usual_monthly_purchases
    turnover = (monthly or 0.0) * ins.turnover_months
    if turnover <= 0:
        turnover = asked  # a buyer without history: the order itself is the turnover
    new_exposure = 0.0 if on_line else approved  # a line is not yet drawn
    return CreditDecision(
        pd_12m=pd_12m, grade=grade, tier=tier, capacity=capacity, recommended_limit=limit, exposure=exposure,
        available_limit=available, requested=requested, decision=decision, approved_amount=approved, reason=reason,
        expected_loss=pd_12m * loss_given_default * (exposure + new_exposure), cover_ratio=ins.insured_share,
        premium_rate=rate, insured_turnover=turnover, premium=rate * turnover, reason_code=code, limit_reasons=tuple(reasons),
        order_premium=rate * new_exposure, rate_source="policy_quote" if policy_rate is not None else "buyer",
    )
