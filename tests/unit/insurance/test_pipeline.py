"""A seller's policy quote and the pricing backtest on a hand-made invoice-only ledger with
known answers; planted future facts must not move a quote."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from tradecredit.insurance.pipeline import AddedBuyer, QuoteError, WhatIf, parse_what_if, pricing_backtest, quote_seller
from tradecredit.errors import StageError
from tradecredit.workspace import Workspace

QUOTED_ON = date(2025, 6, 30)


def invoices(extra=()) -> pl.DataFrame:
    rows = [
        # S1 sells to B1 monthly, 30-day terms, each paid 10 days late; B1's June invoice is still open
        *[(f"I1-{m}", "B1", "S1", date(2024, m + 6, 1) if m <= 6 else date(2025, m - 6, 1), 30_000.0) for m in range(1, 13)],
        # S1 sells to B2 (which files for insolvency) and to B3 (not scored); S2 sells to B4
        ("I2", "B2", "S1", date(2025, 3, 1), 10_000.0), ("I3", "B3", "S1", date(2025, 3, 1), 5_000.0), ("I4", "B4", "S2", date(2025, 2, 1), 50_000.0),
        *extra,
    ]
    frame = pl.DataFrame(rows, schema=["invoice_id", "buyer_id", "seller_id", "issued_on", "amount"], orient="row")
    return frame.with_columns(due_on=pl.col("issued_on") + pl.duration(days=30))


def payments(frame: pl.DataFrame, extra=()) -> pl.DataFrame:
    paid = frame.filter(pl.col("buyer_id") == "B1", pl.col("issued_on") < date(2025, 6, 1)).select(
        "invoice_id", paid_on=pl.col("due_on") + pl.duration(days=10), amount="amount")
    return pl.concat([paid, pl.DataFrame(list(extra), schema=paid.schema, orient="row")]) if extra else paid


def tables(extra_invoices=(), extra_payments=(), registry=()) -> dict[str, pl.DataFrame]:
    inv = invoices(extra_invoices)
    out = {"invoices": inv, "payments": payments(inv, extra_payments)}
    events = [("B2", date(2025, 5, 1), "insolvency_filing"), *registry]
    out["registry_events"] = pl.DataFrame(events, schema=["buyer_id", "event_on", "event_type"], orient="row")
    return out


@pytest.fixture
def ws(tmp_path) -> Workspace:
    ws = Workspace(tmp_path / "ws")
    run = ws.monitoring_run(QUOTED_ON).folder
    run.mkdir(parents=True)
    pl.DataFrame({"buyer_id": ["B1", "B2", "B4"], "pd_12m": [0.04, 0.3, 0.01], "grade": [7, 9, 4], "tier": ["medium", "high", "low"]}).write_parquet(
        run / "scores.parquet")
    return ws


def test_a_quote_by_hand_on_an_invoice_only_ledger(ws, config):
    q = quote_seller(config, ws, "S1", QUOTED_ON, tables=tables())
    [b1] = q.quote.contributions
    assert b1.buyer_id == "B1" and b1.limit_source == "discretionary"
    # 360,000 a year on 30 days' terms paid 10 days late: 360,000 x 40 / 365 outstanding, capped by the discretionary limit
    ins = config.policy.insurance
    ead = min(360_000 * 40 / 365, ins.discretionary_limit)
    assert b1.exposure_at_default == pytest.approx(ead)
    assert b1.expected_loss == pytest.approx(0.04 * config.policy.lgd * ead * ins.insured_share)
    assert {e.buyer_id: e.reason.split(":")[0] for e in q.excluded} == {"B2": "not insurable", "B3": "no PD"}
    assert q.stressed.expected_loss == pytest.approx(b1.expected_loss * ins.stress.pd_multiplier)


def test_a_planted_future_fact_never_moves_a_quote(ws, config):
    clean = quote_seller(config, ws, "S1", QUOTED_ON, tables=tables()).quote
    future = quote_seller(config, ws, "S1", QUOTED_ON, tables=tables(
        extra_invoices=[("I9", "B1", "S1", date(2025, 7, 1), 900_000.0), ("I8", "B5", "S1", date(2025, 7, 2), 1_000.0)],
        extra_payments=[("I1-12", date(2025, 7, 1), 30_000.0)],
        registry=[("B1", date(2025, 7, 3), "insolvency_filing")],
    )).quote
    assert future == clean


def test_what_ifs_add_remove_and_change_terms(ws, config):
    base = quote_seller(config, ws, "S1", QUOTED_ON, tables=tables()).quote
    added = quote_seller(config, ws, "S1", QUOTED_ON, WhatIf(add=(AddedBuyer("B4", 200_000.0, 60.0),)), tables=tables())
    assert added.baseline == base and added.quote.premium > base.premium and added.quote.contribution("B4") is not None
    longer = quote_seller(config, ws, "S1", QUOTED_ON, WhatIf(terms_days=90.0), tables=tables()).quote
    assert longer.contribution("B1").exposure_at_default >= base.contribution("B1").exposure_at_default
    with pytest.raises(QuoteError, match="no purchases from seller S1"):
        quote_seller(config, ws, "S1", QUOTED_ON, WhatIf(add=(AddedBuyer("B4"),)), tables=tables())
    with pytest.raises(QuoteError, match="not insured buyers"):
        quote_seller(config, ws, "S1", QUOTED_ON, WhatIf(remove=("B4",)), tables=tables())
    with pytest.raises(QuoteError, match="no seller 'S9'"):
        quote_seller(config, ws, "S9", QUOTED_ON, tables=tables())
    assert parse_what_if(["B4:200000:60", "B5"], ["B1"], None) == WhatIf((AddedBuyer("B4", 200_000.0, 60.0), AddedBuyer("B5")), ("B1",), None)
    with pytest.raises(StageError, match="BUYER"):
        parse_what_if(["B4:lots"], [], None)


def test_a_quote_before_any_monitoring_run_says_what_to_run(tmp_path, config):
    with pytest.raises(StageError, match="tradecredit monitor"):
        quote_seller(config, Workspace(tmp_path / "empty"), "S1", QUOTED_ON, tables=tables())


def test_the_backtest_on_a_planted_history_with_a_known_answer(ws, config):
    t = tables()
    # B1 defaults on 2025-09-15 with its June to September invoices open; B4 defaults after the window; B2 before the quote
    t["invoices"] = pl.concat([t["invoices"], invoices([(f"I1-n{m}", "B1", "S1", date(2025, m, 1), 30_000.0) for m in (7, 8, 9)]).tail(3)])
    spells = pl.DataFrame({"buyer_id": ["B1", "B4", "B2"], "default_on": [date(2025, 9, 15), date(2026, 8, 1), date(2025, 5, 1)]})
    result = pricing_backtest(config, ws, QUOTED_ON, t, spells)
    ins = config.policy.insurance
    # S1 insures only B1 (B2 filed, B3 unscored): open at default 4 x 30,000, capped by the discretionary limit
    [s1] = [s for s in result.sellers if s.segment == "S1"]
    expected_loss = min(120_000.0, ins.discretionary_limit) * config.policy.lgd * ins.insured_share
    assert (s1.buyers, s1.defaults) == (1, 1) and s1.realised_loss == pytest.approx(expected_loss)
    [s2] = [s for s in result.sellers if s.segment == "S2"]
    assert (s2.defaults, s2.realised_loss) == (0, 0.0)  # B4's default is after the year
    assert result.total.realised_loss == pytest.approx(expected_loss) and result.total.buyers == 2
    assert result.total.premium == pytest.approx(s1.premium + s2.premium)
    assert {t.segment: t.defaults for t in result.tiers} == {"medium": 1, "low": 0}
    assert result.total.realised_loss_ratio == pytest.approx(expected_loss / result.total.premium)
