"""The credit policy: hand-checked cases and monotonicity properties (Hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradecredit.policy import BuyerFacts, decide, premium_rate

FACTS = BuyerFacts(revenue=1_000_000.0, equity=None, usual_monthly_purchases=20_000.0, exposure=30_000.0)


def test_a_good_buyer_by_hand(config):
    d = decide(0.002, FACTS, 40_000.0, config.policy)  # grade 2: 100% of 10% of revenue
    assert (d.grade, d.tier, d.capacity.source) == (2, "low", "revenue")
    assert d.recommended_limit == 100_000 and d.available_limit == 70_000
    assert d.decision == "approve" and d.approved_amount == 40_000
    assert d.expected_loss == pytest.approx(0.002 * 0.45 * 70_000)
    assert d.premium_rate == pytest.approx(max(0.0015, 0.002 * 0.45 * 1.3 + 0.001))
    assert d.insured_turnover == 240_000 and d.premium == pytest.approx(d.premium_rate * 240_000)
    assert d.cover_ratio == 0.9


def test_partial_refer_and_decline(config):
    assert decide(0.002, FACTS, 90_000.0, config.policy).decision == "partial"
    assert decide(0.002, FACTS, 90_000.0, config.policy).approved_amount == 70_000
    full = BuyerFacts(revenue=1_000_000.0, equity=None, usual_monthly_purchases=20_000.0, exposure=150_000.0)
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
    full = BuyerFacts(revenue=1_000_000.0, equity=None, usual_monthly_purchases=20_000.0, exposure=150_000.0)
    used_up = decide(0.002, full, None, config.policy)
    assert used_up.decision == "refer" and "uses the whole limit" in used_up.reason


def test_a_forced_referral_keeps_the_numbers(config):
    d = decide(0.002, FACTS, 10_000.0, config.policy, refer_because="features are stale")
    assert (d.decision, d.reason, d.approved_amount) == ("refer", "features are stale", 0.0)
    assert d.recommended_limit == 100_000 and d.premium_rate > 0
    assert decide(0.5, FACTS, 1.0, config.policy, refer_because="x").decision == "decline"  # decline still wins


def test_capacity_falls_back_in_order(config):
    by_equity = decide(0.002, BuyerFacts(None, 200_000.0, 20_000.0, 0.0), None, config.policy)
    by_purchases = decide(0.002, BuyerFacts(None, None, 20_000.0, 0.0), None, config.policy)
    assert (by_equity.capacity.source, by_equity.capacity.amount) == ("equity", 50_000.0)
    assert (by_purchases.capacity.source, by_purchases.capacity.amount) == ("usual_purchases", 40_000.0)


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
    assert w.cover_ratio <= b.cover_ratio
    assert 0 <= w.approved_amount <= max(requested, 0) and w.recommended_limit <= config.policy.limits.max_limit


def test_premium_rate_has_its_floor(config):
    assert premium_rate(0.0, config.policy) == config.policy.insurance.floor_rate
