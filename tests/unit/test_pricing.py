"""Insurance pricing on exposure: a policy quote worked by hand, its structure (line caps,
deductibles, the floor, the aggregate first loss against an exact enumeration), the stress, and
a property: a worse PD never lowers a buyer's contribution."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradecredit.pricing import InsuredBuyer, average_outstanding, quote_policy, simulate_year, stress_multiplier, stressed


def buyer(name: str, pd: float, turnover: float = 365_000.0, terms: float = 30.0, dbt: float = 10.0, limit: float = 1e9, **kw) -> InsuredBuyer:
    return InsuredBuyer(name, pd, 0.5, turnover, terms, dbt, limit, "register", **kw)


@pytest.fixture
def ins(config):
    return config.policy.insurance.model_copy(update={"insured_share": 0.9, "loading": 0.3, "expense_rate": 0.0003, "floor_rate": 0.0008,
                                                      "aggregate_first_loss": 0.0, "per_buyer_deductible": 0.0, "simulations": 20_000})


def test_a_quote_by_hand(ins):
    a, b = buyer("A", 0.02), buyer("B", 0.05, turnover=730_000.0, terms=60.0, dbt=0.0, limit=100_000.0)
    # A keeps 365,000 x 40 / 365 = 40,000 outstanding; B 730,000 x 60 / 365 = 120,000, capped by its 100,000 line
    assert a.exposure_at_default == pytest.approx(40_000.0) and b.exposure_at_default == pytest.approx(100_000.0)
    q = quote_policy("S", [a, b], ins)
    el_a, el_b = 0.02 * 0.5 * 40_000 * 0.9, 0.05 * 0.5 * 100_000 * 0.9
    assert q.expected_loss == pytest.approx(el_a + el_b)
    premium = (el_a + el_b) * 1.3 + 0.0003 * 1_095_000
    assert q.premium == pytest.approx(premium) and q.premium_rate == pytest.approx(premium / 1_095_000) and not q.floor_applied
    assert q.loss_ratio == pytest.approx((el_a + el_b) / premium)
    assert q.max_liability == pytest.approx(premium * ins.max_liability_multiple)
    assert q.contribution("A").premium == pytest.approx(el_a * 1.3 + 0.0003 * 365_000)
    assert sum(c.premium for c in q.contributions) == pytest.approx(q.premium)
    low, high = q.loss_ratio_interval
    assert low <= q.loss_ratio <= high


def test_the_premium_is_on_exposure_not_on_a_year_of_purchases(ins):
    """The measured defect: a year of purchases at PD x LGD priced 6-8x the expected loss."""
    q = quote_policy("S", [buyer(f"B{i}", 0.03) for i in range(50)], ins)
    assert 1.3 < q.premium / q.expected_loss < 2.2
    assert q.expected_loss == pytest.approx(50 * 0.03 * 0.5 * average_outstanding(365_000, 30, 10) * 0.9)


def test_the_floor_tops_up_by_turnover(ins):
    q = quote_policy("S", [buyer("A", 0.0001), buyer("B", 0.0001, turnover=730_000.0)], ins)
    assert q.floor_applied and q.premium_rate == pytest.approx(ins.floor_rate)
    assert q.contribution("B").premium == pytest.approx(2 * q.contribution("A").premium, rel=1e-3)


def test_a_per_buyer_deductible_comes_off_each_loss(ins):
    ded = ins.model_copy(update={"per_buyer_deductible": 5_000.0})
    a = buyer("A", 0.1)  # EAD 40,000: LGD 0.5 -> 20,000 lost, 15,000 after the deductible
    assert a.insured_loss(ded) == pytest.approx(15_000 * 0.9)
    assert quote_policy("S", [a], ded).expected_loss == pytest.approx(0.1 * 15_000 * 0.9)


def test_the_aggregate_first_loss_against_an_exact_enumeration(ins):
    afl = ins.model_copy(update={"aggregate_first_loss": 15_000.0, "simulations": 200_000})
    buyers = [buyer("A", 0.2), buyer("B", 0.3, turnover=730_000.0), buyer("C", 0.1, turnover=182_500.0)]
    losses = [b.insured_loss(afl) for b in buyers]
    exact = 0.0
    for outcome in itertools.product((0, 1), repeat=3):
        p = np.prod([b.pd_12m if d else 1 - b.pd_12m for b, d in zip(buyers, outcome, strict=True)])
        exact += p * max(0.0, sum(l for l, d in zip(losses, outcome, strict=True) if d) - 15_000.0)
    q = quote_policy("S", buyers, afl)
    assert q.expected_loss == pytest.approx(exact, rel=0.02)
    assert q.expected_loss < q.expected_loss_before_aggregate
    assert sum(c.expected_loss for c in q.contributions) == pytest.approx(q.expected_loss)


def test_a_quote_is_the_same_every_time(ins):
    buyers = [buyer(f"B{i}", 0.01 * (i % 7 + 1)) for i in range(30)]
    assert quote_policy("S", buyers, ins) == quote_policy("S", buyers, ins)


def test_the_stress_scales_pds_by_sector_and_country(ins):
    shock = ins.model_copy(update={"stress": ins.stress.model_copy(update={"pd_multiplier": 2.0, "by_industry": {"construction": 3.0}, "by_country": {"IT": 2.5}})})
    plain, built, italian = buyer("A", 0.1), buyer("B", 0.1, industry="construction", country="IT"), buyer("C", 0.5, country="IT")
    assert [stress_multiplier(b, shock) for b in (plain, built, italian)] == [2.0, 3.0, 2.5]
    assert [b.pd_12m for b in stressed([plain, built, italian], shock)] == pytest.approx([0.2, 0.3, 1.0])  # capped at 1
    base, hit = quote_policy("S", [plain, built], shock), quote_policy("S", stressed([plain, built], shock), shock)
    assert hit.premium > base.premium and hit.expected_loss / base.premium > base.loss_ratio


def test_common_random_numbers_make_a_riskier_year_never_cheaper():
    pds, losses = np.array([0.1, 0.2, 0.3]), np.array([10.0, 20.0, 30.0])
    low, high = simulate_year(pds, losses, 5_000), simulate_year(pds * 1.5, losses, 5_000)
    assert (high >= low).all() and high.mean() > low.mean()


@settings(max_examples=60, deadline=None)
@given(
    pds=st.lists(st.floats(min_value=0.0, max_value=0.6), min_size=1, max_size=6),
    turnovers=st.lists(st.floats(min_value=1_000.0, max_value=5e6), min_size=6, max_size=6),
    which=st.integers(min_value=0, max_value=5),
    worse_by=st.floats(min_value=0.0, max_value=0.4),
    afl=st.sampled_from([0.0, 20_000.0]),
    floor=st.sampled_from([0.0008, 0.02]),
)
def test_a_worse_pd_never_lowers_a_buyers_contribution(config, pds, turnovers, which, worse_by, afl, floor):
    ins = config.policy.insurance.model_copy(update={"aggregate_first_loss": afl, "floor_rate": floor, "simulations": 2_000})
    buyers = [buyer(f"B{i}", pd, turnover=turnovers[i]) for i, pd in enumerate(pds)]
    i = which % len(buyers)
    worse = list(buyers)
    worse[i] = replace(buyers[i], pd_12m=min(1.0, buyers[i].pd_12m + worse_by))
    before, after = quote_policy("S", buyers, ins).contributions[i], quote_policy("S", worse, ins).contributions[i]
    assert after.premium >= before.premium - 1e-9 * max(1.0, before.premium)
    assert after.expected_loss >= before.expected_loss - 1e-9 * max(1.0, before.expected_loss)
