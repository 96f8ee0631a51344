"""The credit policy: hand-checked cases and monotonicity properties (Hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datetime import date

from tradecredit.policy import BuyerFacts, CreditFacts, decide
from tradecredit.pricing import buyer_premium_rate

# A fresh statement and enough trade that the need cap (3 x 40,000 on 30 days) does not bind.
FACTS = BuyerFacts(revenue=1_000_000.0, equity=None, usual_monthly_purchases=40_000.0, exposure=30_000.0, days_since_statement=100)


def facts(**changes) -> BuyerFacts:
    from dataclasses import replace

    return replace(FACTS, **changes)


def test_a_good_buyer_by_hand(config):
    d = decide(0.002, FACTS, 40_000.0, config.policy)  # grade 2: 100% of 10% of revenue
    assert (d.grade, d.tier, d.capacity.source) == (2, "low", "revenue")
    assert d.recommended_limit == 100_000 and d.available_limit == 70_000
    assert d.decision == "approve" and d.approved_amount == 40_000
    assert d.expected_loss == pytest.approx(0.002 * 0.45 * 70_000)
    # priced on its exposure: 30 days of terms (the default), paid on time, 90% insured
    ins = config.policy.insurance
    assert d.premium_rate == pytest.approx(max(ins.floor_rate, 0.002 * 0.45 * 0.9 * 30 / 365 * 1.3 + ins.expense_rate))
    assert d.insured_turnover == 480_000 and d.premium == pytest.approx(d.premium_rate * 480_000)
    assert d.order_premium == pytest.approx(d.premium_rate * 40_000) and d.rate_source == "buyer"
    assert d.cover_ratio == 0.9
    quoted = decide(0.002, FACTS, 40_000.0, config.policy, policy_rate=0.004, terms_days=60)
    assert (quoted.premium_rate, quoted.rate_source, quoted.order_premium) == (0.004, "policy_quote", pytest.approx(160.0))


def test_partial_refer_and_decline(config):
    assert decide(0.002, FACTS, 90_000.0, config.policy).decision == "partial"
    assert decide(0.002, FACTS, 90_000.0, config.policy).approved_amount == 70_000
    full = facts(exposure=150_000.0)
    assert decide(0.002, full, 1.0, config.policy).decision == "refer"
    assert decide(0.15, FACTS, 1.0, config.policy).decision == "refer"  # grade 9
    assert decide(0.5, FACTS, 1.0, config.policy).decision == "decline"  # grade 10
    unknown = BuyerFacts(revenue=None, equity=None, usual_monthly_purchases=None, exposure=0.0)
    assert decide(0.002, unknown, 1.0, config.policy).reason.startswith("no revenue")


def test_a_requested_limit_caps_the_line_and_an_order_uses_what_it_leaves(config):
    line_only = decide(0.002, FACTS, None, config.policy, requested_limit=80_000.0)  # recommended 100,000
    assert (line_only.decision, line_only.approved_amount) == ("approve", 80_000.0)
    assert line_only.expected_loss == pytest.approx(0.002 * 0.45 * 30_000)  # an undrawn line adds no exposure
    too_big = decide(0.002, FACTS, None, config.policy, requested_limit=150_000.0)
    assert (too_big.decision, too_big.approved_amount) == ("partial", 100_000.0)
    both = decide(0.002, FACTS, 60_000.0, config.policy, requested_limit=80_000.0)  # line 80,000 - exposure 30,000
    assert (both.available_limit, both.decision, both.approved_amount) == (50_000.0, "partial", 50_000.0)


def test_with_nothing_requested_the_decision_says_whether_room_is_left(config):
    room = decide(0.002, FACTS, None, config.policy)
    assert (room.decision, room.approved_amount) == ("approve", 0.0) and "70,000 is available" in room.reason
    used_up = decide(0.002, facts(exposure=150_000.0), None, config.policy)
    assert used_up.decision == "refer" and "uses the whole limit" in used_up.reason


def test_a_forced_referral_keeps_the_numbers(config):
    d = decide(0.002, FACTS, 10_000.0, config.policy, refer_because="features are stale")
    assert (d.decision, d.reason, d.approved_amount) == ("refer", "features are stale", 0.0)
    assert d.recommended_limit == 100_000 and d.premium_rate > 0
    assert decide(0.5, FACTS, 1.0, config.policy, refer_because="x").decision == "decline"  # decline still wins


def test_capacity_falls_back_to_purchases_only_without_a_statement(config):
    by_equity = decide(0.002, BuyerFacts(None, 200_000.0, 20_000.0, 0.0, days_since_statement=100), None, config.policy)
    by_purchases = decide(0.002, BuyerFacts(None, None, 20_000.0, 0.0), None, config.policy)
    assert (by_equity.capacity.source, by_equity.capacity.amount) == ("equity", 50_000.0)
    assert (by_purchases.capacity.source, by_purchases.capacity.amount) == ("usual_purchases", 40_000.0)


def test_the_tightest_statement_measure_binds(config):
    both = decide(0.002, facts(equity=200_000.0), None, config.policy)  # 10% of 1M revenue vs 25% of 200k equity
    assert (both.capacity.source, both.capacity.amount) == ("equity", 50_000.0)
    assert any(r.code == "capacity_equity" and "tightest" in r.sentence_en and "取最低值" in r.sentence_zh for r in both.limit_reasons)
    rich = decide(0.002, facts(equity=10_000_000.0), None, config.policy)
    assert (rich.capacity.source, rich.capacity.amount) == ("revenue", 100_000.0)


def test_negative_equity_gives_no_limit_even_with_revenue(config):
    for equity in (-250_000.0, 0.0):
        d = decide(0.002, facts(equity=equity), 10_000.0, config.policy)
        assert (d.capacity.source, d.capacity.amount, d.recommended_limit) == ("negative_equity", 0.0, 0.0)
        assert (d.decision, d.reason_code, d.approved_amount) == ("refer", "negative_equity", 0.0)
        assert any(r.code == "negative_equity" and "不为正" in r.sentence_zh for r in d.limit_reasons)


def test_an_old_statement_is_haircut_and_a_very_old_one_ignored(config):
    c = config.policy.limits.capacity
    fresh = decide(0.002, facts(days_since_statement=c.statement_haircut_after_days), None, config.policy)
    old = decide(0.002, facts(days_since_statement=c.statement_haircut_after_days + 1), None, config.policy)
    unknown = decide(0.002, facts(days_since_statement=None), None, config.policy)
    ignored = decide(0.002, facts(days_since_statement=c.statement_max_age_days + 1), None, config.policy)
    assert fresh.capacity.amount == 100_000.0
    assert old.capacity.amount == unknown.capacity.amount == pytest.approx(100_000.0 * (1 - c.statement_haircut))
    assert {r.code for r in old.limit_reasons} >= {"statement_stale_haircut"}
    assert (ignored.capacity.source, ignored.capacity.amount) == ("usual_purchases", 40_000.0 * c.monthly_purchases_multiple)
    assert "statement_ignored" in {r.code for r in ignored.limit_reasons}


def test_the_limit_is_tied_to_need(config):
    n = config.policy.limits.need
    small = facts(seller_monthly_purchases=5_000.0, days_beyond_terms=15.0)
    d = decide(0.002, small, None, config.policy, terms_days=45)
    need = 5_000.0 * (45 + 15) / 30 * n.months_of_purchases  # 30,000
    assert d.recommended_limit == need and d.capacity.amount == 100_000.0
    binding = next(r for r in d.limit_reasons if r.code == "need_cap")
    assert "seller's" in binding.sentence_en and "not binding" not in binding.sentence_en
    longer = decide(0.002, small, None, config.policy, terms_days=90)
    assert longer.recommended_limit > d.recommended_limit  # longer terms keep more outstanding
    assert decide(0.002, facts(seller_monthly_purchases=None, usual_monthly_purchases=None), None, config.policy).recommended_limit == 100_000.0


CLEAN = CreditFacts(insolvency_filed_on=None, credit_event=None, max_days_past_due=10)


@pytest.mark.parametrize("knock_out, code", [
    (CreditFacts(date(2026, 1, 5), None, None), "insolvency_filing"),
    (CreditFacts(None, ("write_off", date(2025, 11, 30)), None), "credit_event"),
    (CreditFacts(None, ("claim", date(2025, 11, 30)), None), "credit_event"),
    (CreditFacts(None, None, 91), "overdue_beyond_extension"),
])
def test_each_knock_out_holds_and_stays_quiet_on_a_clean_buyer(config, knock_out, code):
    held = decide(0.001, FACTS, 1_000.0, config.policy, credit_facts=knock_out, granted_limit=500_000.0)  # grade 1 and a big line
    assert (held.decision, held.reason_code, held.approved_amount) == ("hold", code, 0.0)
    assert code in {r.code for r in held.limit_reasons}
    clean = decide(0.001, FACTS, 1_000.0, config.policy, credit_facts=CLEAN, granted_limit=500_000.0)
    assert (clean.decision, clean.reason_code) == ("approve", "within_limit")
    at_limit = CreditFacts(None, None, config.policy.knock_outs.max_extension_days)
    assert decide(0.001, FACTS, 1_000.0, config.policy, credit_facts=at_limit).decision == "approve"


def test_a_red_case_holds_and_long_terms_and_a_likely_late_payment_refer(config):
    k = config.policy.knock_outs
    red = decide(0.001, FACTS, 1_000.0, config.policy, credit_facts=CreditFacts(None, None, None, open_red_alert=True))
    assert (red.decision, red.reason_code, red.approved_amount) == ("hold", "red_alert", 0.0)
    long_terms = decide(0.001, FACTS, 1_000.0, config.policy, terms_days=k.max_terms_days + 1)
    assert (long_terms.decision, long_terms.reason_code) == (k.terms_above_max, "terms_above_max")
    assert decide(0.001, FACTS, 1_000.0, config.policy, terms_days=k.max_terms_days).decision == "approve"
    late = decide(0.001, FACTS, 1_000.0, config.policy, late_probability=k.late_probability_refer_above + 0.01)
    assert (late.decision, late.reason_code) == ("refer", "late_probability")


def test_an_order_is_decided_against_the_granted_line(config):
    within = decide(0.002, FACTS, 20_000.0, config.policy, granted_limit=50_000.0)  # 50,000 - 30,000 exposure
    assert (within.decision, within.available_limit, within.approved_amount) == ("approve", 20_000.0, 20_000.0)
    over = decide(0.002, FACTS, 25_000.0, config.policy, granted_limit=50_000.0)
    assert (over.decision, over.approved_amount) == ("partial", 20_000.0)
    assert over.recommended_limit == 100_000.0  # still reported
    no_capacity = decide(0.002, BuyerFacts(None, None, None, 0.0), 5_000.0, config.policy, granted_limit=10_000.0)
    assert no_capacity.decision == "approve"  # a person granted the line: the order fits it


def test_bad_inputs_are_refused(config):
    with pytest.raises(ValueError, match="probability"):
        decide(1.5, FACTS, None, config.policy)
    with pytest.raises(ValueError, match="zero or more"):
        decide(0.01, FACTS, -5.0, config.policy)


amounts = st.one_of(st.none(), st.floats(min_value=1, max_value=1e10))


@settings(max_examples=300, deadline=None)
@given(
    pd_a=st.floats(min_value=0, max_value=1),
    pd_b=st.floats(min_value=0, max_value=1),
    revenue=amounts,
    equity=amounts,
    purchases=amounts,
    exposure=st.floats(min_value=0, max_value=1e9),
    requested=st.floats(min_value=0, max_value=1e9),
)
def test_a_worse_grade_never_gets_a_higher_limit_or_a_lower_premium_rate(config, pd_a, pd_b, revenue, equity, purchases, exposure, requested):
    facts = BuyerFacts(revenue, equity, purchases, exposure)
    better, worse = sorted((pd_a, pd_b))
    b, w = decide(better, facts, requested, config.policy), decide(worse, facts, requested, config.policy)
    assert w.grade >= b.grade
    assert w.recommended_limit <= b.recommended_limit
    assert w.approved_amount <= b.approved_amount
    assert w.premium_rate >= b.premium_rate
    assert w.cover_ratio == b.cover_ratio == config.policy.insurance.insured_share  # fixed: risk is steered by limits
    assert 0 <= w.approved_amount <= max(requested, 0) and w.recommended_limit <= config.policy.limits.max_limit


def test_premium_rate_has_its_floor(config):
    ins = config.policy.insurance
    assert ins.floor_rate > ins.expense_rate  # else the floor would never bind and this tests nothing
    assert buyer_premium_rate(0.0, 0.45, 30, 0, ins) == ins.floor_rate
