"""Portfolio simulator: reproducible, in the configured bands, and its truth is the truth."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from tradecredit.simulator_config import SimulatorConfig
from tradecredit.contract import TABLES
from tradecredit.simulator import SimulatedPortfolio, simulate_portfolio, true_pd_12m, write_portfolio


def _sized(cfg: SimulatorConfig, **changes) -> SimulatorConfig:
    return SimulatorConfig.model_validate(cfg.model_dump() | changes)


@pytest.fixture(scope="module")
def portfolio(config) -> SimulatedPortfolio:
    """The default mechanism on 4,000 buyers over 36 months (about 2 s)."""
    return simulate_portfolio(_sized(config.simulator, buyers=4000, months=36, seed=11))


def _default_12m_rows(p: SimulatedPortfolio) -> pl.DataFrame:
    """Truth rows with an observed default_12m label computed straight from the credit events."""
    first_default = (
        p.ledger["credit_events"]
        .filter(pl.col("event_type").is_in(["insolvency", "payment_default"]))
        .group_by("buyer_id")
        .agg(default_on=pl.col("event_on").min())
    )
    rows = p.buyer_month_truth.join(first_default, on="buyer_id", how="left")
    rows = rows.filter(pl.col("as_of_date") + pl.duration(days=365) <= p.data_end)
    in_window = (pl.col("default_on") > pl.col("as_of_date")) & (
        pl.col("default_on") <= pl.col("as_of_date") + pl.duration(days=365)
    )
    return rows.with_columns(default_12m=in_window.fill_null(False))


def test_same_seed_same_portfolio_other_seed_differs(config):
    small = _sized(config.simulator, buyers=300, months=12)
    a, b = simulate_portfolio(small), simulate_portfolio(small)
    for name in a.ledger:
        assert a.ledger[name].equals(b.ledger[name]), name
    assert a.buyer_month_truth.equals(b.buyer_month_truth)
    c = simulate_portfolio(_sized(small, seed=small.seed + 1))
    assert not a.ledger["invoices"].equals(c.ledger["invoices"])


def test_ledger_follows_the_contract_and_holds_no_truth(portfolio):
    assert set(portfolio.ledger) == set(TABLES)
    for name, frame in portfolio.ledger.items():
        assert set(frame.columns) <= set(TABLES[name].column_names), name
    for frame in portfolio.ledger.values():
        assert not {"pd_12m", "p_late_30d", "latent_quality"} & set(frame.columns)


def test_default_configuration_is_in_the_issue_bands(portfolio):
    assert 0.01 <= portfolio.summary["annual_default_rate"] <= 0.04
    assert 0.05 <= portfolio.summary["late_30d_share"] <= 0.15


def test_true_pd_is_calibrated_and_ranks(portfolio):
    rows = _default_12m_rows(portfolio)
    # One as-of month a year keeps the rows close to independent for the binomial check.
    yearly = rows.filter(pl.col("as_of_date").dt.month() == 1)
    observed, expected = yearly["default_12m"].mean(), yearly["pd_12m"].mean()
    se = np.sqrt(expected * (1 - expected) / yearly.height)
    assert abs(observed - expected) < 4 * se, (observed, expected, se)
    auc = roc_auc_score(rows["default_12m"], rows["pd_12m"])
    assert 0.65 < auc < 0.95, auc
    # By quintile of the true PD, the observed rate follows the predicted one.
    yearly = yearly.with_columns(q=(pl.col("pd_12m").rank("ordinal") * 5 // (pl.len() + 1)))
    by_q = yearly.group_by("q").agg(obs=pl.col("default_12m").mean(), exp=pl.col("pd_12m").mean(), n=pl.len())
    for row in by_q.iter_rows(named=True):
        se = np.sqrt(row["exp"] * (1 - row["exp"]) / row["n"])
        assert abs(row["obs"] - row["exp"]) < 4 * se + 0.002, row


def test_true_late_probability_is_calibrated_and_ranks(portfolio):
    inv = portfolio.ledger["invoices"]
    paid = portfolio.ledger["payments"].group_by("invoice_id").agg(
        paid=pl.col("amount").sum(), last_paid_on=pl.col("paid_on").max()
    )
    rows = (
        inv.join(paid, on="invoice_id", how="left")
        .join(portfolio.invoice_truth, on="invoice_id")
        .filter(pl.col("due_on") + pl.duration(days=30) <= portfolio.data_end)
    )
    settled = pl.col("paid").fill_null(0) >= pl.col("amount") - 0.01
    late = ~settled | (pl.col("last_paid_on") > pl.col("due_on") + pl.duration(days=30))
    rows = rows.with_columns(late_30d=late)
    assert abs(rows["late_30d"].mean() - rows["p_late_30d"].mean()) < 0.005
    assert roc_auc_score(rows["late_30d"], rows["p_late_30d"]) > 0.7


def test_closed_form_pd_matches_monte_carlo(config):
    """The truth formula against brute-force simulation of the latent AR(1) paths."""
    qc, dc = config.simulator.quality, config.simulator.default
    rng = np.random.default_rng(0)
    states = [(0.0, 0.0, 0.0, 0.0), (-1.5, -0.4, -0.1, -0.2), (0.8, 0.5, 0.1, 0.1), (-2.5, -0.8, 0.0, 0.0)]
    paths = 200_000
    for q_static, firm, industry, macro in states:
        f = np.full(paths, firm)
        i = np.full(paths, industry)
        m = np.full(paths, macro)
        cumulative = np.zeros(paths)
        for month in range(12):
            if month:
                f = qc.firm_persistence * f + rng.normal(0, qc.firm_sd, paths)
                i = qc.industry_persistence * i + rng.normal(0, qc.industry_sd, paths)
                m = qc.macro_persistence * m + rng.normal(0, qc.macro_sd, paths)
            q = q_static + f + qc.industry_loading * i + qc.macro_loading * m
            cumulative += np.exp(dc.log_hazard_intercept - dc.quality_sensitivity * q)
        monte_carlo = 1.0 - np.exp(-cumulative).mean()
        closed = true_pd_12m(*(np.array(x) for x in (q_static, firm, industry, macro)), qc, dc)
        # Monte Carlo standard error is below 0.1 point here; the two-cumulant formula is within
        # 1% of the PD even for a firm near failure (PD about 52%).
        assert closed == pytest.approx(monte_carlo, rel=0.01, abs=0.001), (q_static, closed, monte_carlo)


def test_payments_deteriorate_before_default_across_sellers(portfolio):
    defaults = portfolio.ledger["credit_events"].filter(pl.col("event_type").is_in(["insolvency", "payment_default"]))
    paid = portfolio.ledger["payments"].group_by("invoice_id").agg(paid=pl.col("amount").sum(), last=pl.col("paid_on").max())
    late = (pl.col("paid").fill_null(0) < pl.col("amount") - 0.01) | (pl.col("last") > pl.col("due_on") + pl.duration(days=30))
    inv = (
        portfolio.ledger["invoices"]
        .join(paid, on="invoice_id", how="left")
        .join(defaults.select("buyer_id", default_on="event_on"), on="buyer_id", how="left")
        # Only invoices whose outcome is known before the data ends.
        .filter(pl.col("due_on") + pl.duration(days=30) <= portfolio.data_end)
        .with_columns(late_30d=late, months_before=(pl.col("default_on") - pl.col("issued_on")).dt.total_days() / 30.4)
    )
    near = inv.filter(pl.col("months_before").is_between(3, 9))  # due and decided before the default
    far = inv.filter(pl.col("months_before") > 21)
    healthy = inv.filter(pl.col("default_on").is_null())
    assert near["late_30d"].mean() > 1.4 * far["late_30d"].mean()
    assert far["late_30d"].mean() > healthy["late_30d"].mean()
    # Not one seller's story: drop each buyer's worst seller and the rise is still there.
    per_seller = near.group_by("buyer_id", "seller_id").agg(rate=pl.col("late_30d").mean(), n=pl.len())
    others = per_seller.sort("rate", descending=True).group_by("buyer_id").agg(pl.all().slice(1)).explode("seller_id", "rate", "n")
    others = others.drop_nulls("rate")
    assert (others["rate"] * others["n"]).sum() / others["n"].sum() > healthy["late_30d"].mean() * 1.5


def test_registry_events_rise_with_distress(portfolio):
    truth = portfolio.buyer_month_truth.with_columns(month=pl.col("as_of_date").dt.truncate("1mo"))
    events = (
        portfolio.ledger["registry_events"]
        .filter(pl.col("event_type").is_in(["lawsuit_filed", "enforcement_order", "negative_news"]))
        .with_columns(month=pl.col("event_on").dt.truncate("1mo"))
        .group_by("buyer_id", "month")
        .len()
    )
    joined = truth.join(events, on=["buyer_id", "month"], how="left").with_columns(pl.col("len").fill_null(0))
    joined = joined.with_columns(band=pl.col("pd_12m").rank("ordinal") * 4 // (pl.len() + 1))
    rates = dict(joined.group_by("band").agg(pl.col("len").mean()).iter_rows())
    assert rates[3] > 2 * rates[0]


def test_statements_are_published_after_their_period_and_within_the_data(portfolio):
    fin = portfolio.ledger["financials"]
    assert fin.height > 0
    assert (fin["published_on"] > fin["period_end"]).all()
    assert fin["published_on"].max() <= portfolio.data_end
    # Small firms and sole proprietors file less: not every buyer has statements.
    assert fin["buyer_id"].n_unique() < portfolio.ledger["buyers"].height


def test_buyers_trade_with_several_sellers(portfolio):
    sellers = portfolio.ledger["invoices"].group_by("buyer_id").agg(n=pl.col("seller_id").n_unique())["n"]
    assert sellers.min() >= 1 and (sellers > 1).mean() > 0.3


def test_macro_shock_raises_risk(config):
    calm_cfg = _sized(config.simulator, buyers=1500, months=24)
    shocked_cfg = _sized(calm_cfg, quality=calm_cfg.quality.model_dump() | {"macro_shock": {"start_month": 12, "months": 3, "size": -1.0}})
    calm, shocked = simulate_portfolio(calm_cfg), simulate_portfolio(shocked_cfg)
    late = lambda p: p.buyer_month_truth.filter(pl.col("as_of_date") >= pl.date(2024, 4, 1))["pd_12m"].mean()  # noqa: E731
    assert late(shocked) > 1.5 * late(calm)


def test_written_portfolio_keeps_truth_outside_the_ledger(tmp_path, config):
    p = simulate_portfolio(_sized(config.simulator, buyers=200, months=12))
    paths = write_portfolio(p, tmp_path / "sim", "csv")
    assert sorted(f.name for f in paths.ledger_dir.iterdir()) == sorted(f"{t}.csv" for t in TABLES)
    assert paths.truth_dir.parent == paths.ledger_dir.parent
    assert {f.name for f in paths.truth_dir.iterdir()} == {"buyer_month_pd.parquet", "invoice_late.parquet", "summary.json"}
