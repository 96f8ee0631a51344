"""The report is self-contained (every plot embedded, nothing fetched) and escapes what
comes from the data."""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime

import numpy as np
import polars as pl

from tradecredit.features.build import KNOWN_AT_TS, SNAPSHOT_TS
from tradecredit.monitoring.alerts import AlertStore, FiredAlert
from tradecredit.monitoring.drift import population_stability
from tradecredit.features.catalog import AGING_COLUMNS
from tradecredit.monitoring.portfolio_view import portfolio_view
from tradecredit.monitoring.report import ReportInputs, render_report, summary_of

EVIL = "<script>alert(1)</script>"


def test_report_embeds_every_plot_and_escapes_the_data(tmp_path, config):
    rng = np.random.default_rng(3)
    n = 200
    ids = [f"B{i}" for i in range(n - 1)] + [EVIL]
    pd_12m = rng.uniform(0.001, 0.2, n)
    scores = pl.DataFrame({"buyer_id": ids, "pd_12m": pd_12m, "grade": rng.integers(1, 11, n), "tier": ["low"] * n})
    features = pl.DataFrame({
        "buyer_id": ids, "industry": ["C"] * n, "country": ["DE"] * n, "open_balance": rng.uniform(0, 1e4, n),
        "amount_issued_365d": [5e4] * n, "revenue": [1e6] * n, "equity": [None] * n, "days_since_first_invoice": [400] * n,
    }, schema_overrides={"equity": pl.Float64})
    snapshots = tmp_path / "payment_behaviour.parquet"
    month = datetime(2026, 1, 1, tzinfo=UTC)
    pl.DataFrame({"buyer_id": ["B0"], SNAPSHOT_TS: [month], KNOWN_AT_TS: [month], **{c: [1.0] for c in AGING_COLUMNS}, "open_balance": [5.0], "amount_issued_90d": [9.0]}).write_parquet(snapshots)
    view = portfolio_view(scores, features, snapshots, date(2026, 2, 1), config.policy, config.monitoring.portfolio)
    drift = [population_stability("pd_12m", pl.Series(rng.uniform(0.001, 0.2, 500)), pl.Series(pd_12m), config.monitoring.drift),
             population_stability("open_balance", pl.Series(rng.uniform(0, 1e4, 500)), features["open_balance"], config.monitoring.drift)]
    store = AlertStore(tmp_path / "alerts.db")
    store.apply(date(2026, 2, 1), [FiredAlert(EVIL, "negative_news", "red", f"news about {EVIL}", {"negative_news_90d": 2})], {"yellow": "y", "red": "r"}, "1")
    inputs = ReportInputs(
        as_of="2026-02-01", model="m", model_version="1", late_model_version=None, active_buyers=n, inactive_buyers=0, drift=drift,
        view=view, alerts=None, alert_note=None, open_alerts=store.alerts("open"), backtests=[], late_backtests=[], late_scored_invoices=0, top_features=20,
    )
    summary = summary_of(inputs, config.monitoring.drift.moderate_psi)
    html = render_report(inputs, summary, config.monitoring.drift.moderate_psi, config.monitoring.drift.major_psi)
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', html)
    assert [alt for alt, _ in images] == [
        "score distribution", "PSI by feature", "calibration by grade", "exposure by grade, industry and country", "aging and concentration", "open alerts by signal",
    ]
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for _, data in images)
    # Self-contained: no script, no stylesheet or image from anywhere else.
    assert "<script" not in html and not re.search(r'(src|href)="(?!data:)', html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert summary["concentration"]["top_n_share"] <= 1 and summary["alerts"] is None
    store.close()
    # Without a pricing backtest the report gives the reason the monitoring run recorded.
    why = "No pricing backtest: no insurable buyer on 2025-02-01: nothing to backtest."
    assert why not in html and "the pricing backtest needs a matured year" in html
    noted = render_report(inputs, summary | {"pricing_backtest_note": why}, config.monitoring.drift.moderate_psi, config.monitoring.drift.major_psi)
    assert why in noted and "the pricing backtest needs a matured year" not in noted
    # The market view is a table of today's values against the training range, not PSI bars.
    from dataclasses import replace

    from tradecredit.monitoring.drift import MarketReading

    assert "Market conditions" not in html
    market = replace(inputs, market=[MarketReading("market_late_share_90d", 0.31, 0.10, 0.22, 1.0, True)])
    with_market = render_report(market, summary_of(market, config.monitoring.drift.moderate_psi), config.monitoring.drift.moderate_psi, config.monitoring.drift.major_psi)
    assert "Market conditions" in with_market and "0.1-0.22" in with_market and "<b>beyond</b>" in with_market
