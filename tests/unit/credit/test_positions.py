"""Ledger positions on a hand-made ledger with known answers, and planted future facts that
must not leak into a position."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from tradecredit.credit.positions import DisputeRule, ledger_positions

AS_OF = date(2026, 6, 30)


def d(text: str) -> date:
    return date.fromisoformat(text)


def ledger(extra_invoices=(), extra_payments=(), registry=(), credit=()) -> dict[str, pl.DataFrame]:
    invoices = [
        # buyer B1 with seller S1: one open and 60 days past due, one paid in full
        ("I1", "B1", "S1", "2026-03-01", "2026-05-01", 12_000.0, None),
        ("I2", "B1", "S1", "2026-04-01", "2026-05-01", 6_000.0, None),
        # buyer B1 with seller S2: half paid, not yet due
        ("I3", "B1", "S2", "2026-06-01", "2026-07-31", 10_000.0, None),
        # buyer B2: 120 days past due but disputed; and an old invoice outside the 365 days
        ("I4", "B2", "S1", "2026-01-01", "2026-03-02", 5_000.0, "2026-03-10"),
        ("I5", "B2", "S1", "2025-01-01", "2025-02-01", 9_000.0, None),
        *extra_invoices,
    ]
    payments = [("I2", "2026-04-20", 6_000.0), ("I3", "2026-06-15", 5_000.0), ("I5", "2025-02-01", 9_000.0), *extra_payments]
    frame = pl.DataFrame(invoices, schema=["invoice_id", "buyer_id", "seller_id", "issued_on", "due_on", "amount", "disputed_on"], orient="row")
    frame = frame.with_columns(pl.col(c).str.to_date() for c in ("issued_on", "due_on", "disputed_on"))
    tables = {
        "invoices": frame,
        "payments": pl.DataFrame(payments, schema=["invoice_id", "paid_on", "amount"], orient="row").with_columns(pl.col("paid_on").str.to_date()),
    }
    if registry:
        tables["registry_events"] = pl.DataFrame(list(registry), schema=["buyer_id", "event_on", "event_type"], orient="row").with_columns(pl.col("event_on").str.to_date())
    if credit:
        tables["credit_events"] = pl.DataFrame(list(credit), schema=["buyer_id", "event_on", "event_type"], orient="row").with_columns(pl.col("event_on").str.to_date())
    return tables


def test_positions_by_hand():
    p = ledger_positions(ledger(), AS_OF)
    s1 = p.sellers[("S1", "B1")]
    assert s1.open_balance == 12_000.0 and s1.max_days_past_due == 60
    assert s1.monthly_purchases == pytest.approx(18_000.0 / 12)
    assert s1.usual_terms_days == pytest.approx((61 * 12_000 + 30 * 6_000) / 18_000)
    s2 = p.sellers[("S2", "B1")]
    assert (s2.open_balance, s2.max_days_past_due) == (5_000.0, None)
    b2 = p.sellers[("S1", "B2")]
    assert b2.open_balance == 5_000.0 and b2.max_days_past_due is None  # disputed: not counted as past due
    assert b2.monthly_purchases == pytest.approx(5_000.0 / 12)  # the 2025 invoice is older than 365 days
    assert p.buyers["B1"].max_days_past_due == 60 and p.buyers["B1"].insolvency_filed_on is None


def test_days_beyond_terms_of_settled_invoices_by_hand():
    p = ledger_positions(ledger(extra_invoices=[("I6", "B1", "S1", "2026-01-01", "2026-02-01", 3_000.0, None)],
                                extra_payments=[("I6", "2026-02-20", 1_000.0), ("I6", "2026-03-03", 2_000.0)]), AS_OF)
    # I2 (6,000) paid 11 days early counts as 0; I6 (3,000) settled by its last payment 30 days late
    assert p.sellers[("S1", "B1")].days_beyond_terms == pytest.approx(30 * 3_000 / 9_000)
    assert p.sellers[("S2", "B1")].days_beyond_terms is None  # half paid: nothing settled
    assert p.sellers[("S1", "B2")].days_beyond_terms is None  # settled more than 365 days ago


def test_knock_out_facts_by_hand():
    p = ledger_positions(ledger(registry=[("B1", "2026-05-05", "insolvency_filing"), ("B1", "2026-01-01", "lawsuit_filed")],
                                credit=[("B2", "2026-06-01", "claim"), ("B2", "2026-06-20", "write_off")]), AS_OF)
    assert p.buyers["B1"].insolvency_filed_on == d("2026-05-05")
    assert p.buyers["B2"].credit_event == ("claim", d("2026-06-01"))  # the first one


def test_a_planted_future_fact_never_leaks():
    clean = ledger_positions(ledger(), AS_OF)
    future = ledger_positions(ledger(
        extra_invoices=[("I9", "B1", "S1", "2026-07-01", "2026-07-02", 99_000.0, None), ("I8", "B3", "S1", "2026-07-15", "2026-08-15", 1.0, None)],
        extra_payments=[("I1", "2026-07-01", 12_000.0)],  # paid the day after: still open on AS_OF
        registry=[("B1", "2026-07-01", "insolvency_filing")],
        credit=[("B2", "2026-07-01", "payment_default")],
    ), AS_OF)
    assert future.sellers == clean.sellers
    assert future.buyers == clean.buyers
    assert ("S1", "B3") not in future.sellers


def test_a_small_unpaid_remainder_never_counts_as_past_due():
    leftover = ledger(extra_invoices=[("I7", "B3", "S1", "2025-01-01", "2025-02-01", 1_000.0, None)], extra_payments=[("I7", "2025-02-01", 996.0)])
    assert ledger_positions(leftover, AS_OF).buyers["B3"].max_days_past_due > 400  # without the rule: held for good
    assert ledger_positions(leftover, AS_OF, small_balance=5.0).buyers["B3"].max_days_past_due is None
    assert ledger_positions(leftover, AS_OF, small_balance=5.0).buyers["B1"].max_days_past_due == 60  # a real arrear still counts


def test_the_amount_60_days_past_due_leaves_disputes_and_small_remainders_out():
    """What early warnings read as past_due_60_plus: undisputed open amounts more than 60 days
    past due on the date, small remainders left out, later payments and disputes not seen."""
    rows = [
        ("I10", "B9", "S1", "2026-01-01", "2026-02-01", 2_000.0, None),  # 149 days past due: counts
        ("I11", "B9", "S1", "2026-01-01", "2026-02-01", 5_000.0, "2026-02-10"),  # disputed: left out
        ("I12", "B9", "S1", "2026-05-01", "2026-06-01", 7_000.0, None),  # 29 days past due: not 60+
        ("I13", "B9", "S1", "2025-01-01", "2025-02-01", 3.0, None),  # a small remainder
        ("I14", "B9", "S1", "2026-01-01", "2026-02-01", 4_000.0, "2026-07-15"),  # disputed after the date: counts
    ]
    future_payment = [("I10", "2026-07-10", 2_000.0)]  # after the date: I10 is still open on it
    positions = ledger_positions(ledger(extra_invoices=rows, extra_payments=future_payment), AS_OF, small_balance=5.0)
    assert positions.buyers["B9"].past_due_60_plus == 6_000.0
    assert positions.buyers["B1"].past_due_60_plus == 0.0  # I1 is 60 days past due, not more
    assert positions.buyers["B2"].past_due_60_plus == 0.0  # I4 is disputed
    # The share's base: B9's open invoices less the disputed one and the small remainder.
    assert positions.buyers["B9"].open_counted == 2_000.0 + 7_000.0 + 4_000.0
    # Without the small-balance rule the 3.00 remainder, 545 days late, counts.
    assert ledger_positions(ledger(extra_invoices=rows), AS_OF).buyers["B9"].past_due_60_plus == 6_003.0


def test_the_labels_dispute_rule_shields_only_an_early_and_recent_dispute():
    """With the default label's rule (disputed before 90 days past due, for 270 days) a dispute
    raised late, or one older than 270 days, no longer hides an arrear; without a rule, any does."""
    rows = [
        ("I20", "B7", "S1", "2026-01-01", "2026-02-01", 8_000.0, "2026-06-03"),  # disputed 122 days past due: stalling
        ("I21", "B8", "S1", "2024-12-01", "2025-01-01", 8_000.0, "2025-01-20"),  # disputed early, 526 days ago
        ("I22", "B6", "S1", "2026-01-01", "2026-02-01", 8_000.0, "2026-02-20"),  # disputed early, 130 days ago
    ]
    rule = DisputeRule(before_days=90, lasts_days=270)
    ruled = ledger_positions(ledger(extra_invoices=rows), AS_OF, disputes=rule).buyers
    assert (ruled["B7"].past_due_60_plus, ruled["B8"].past_due_60_plus, ruled["B6"].past_due_60_plus) == (8_000.0, 8_000.0, 0.0)
    assert ruled["B8"].max_days_past_due == (AS_OF - d("2025-01-01")).days and ruled["B6"].max_days_past_due is None
    assert ruled["B2"].max_days_past_due is None  # I4: disputed 8 days after its due date, 112 days ago
    anyone = ledger_positions(ledger(extra_invoices=rows), AS_OF).buyers
    assert all(anyone[b].past_due_60_plus == 0.0 for b in ("B6", "B7", "B8"))
    never = ledger_positions(ledger(extra_invoices=rows), AS_OF, disputes=DisputeRule(0, 0)).buyers
    assert never["B6"].past_due_60_plus == 8_000.0 and never["B2"].max_days_past_due == 120
