"""Portfolio simulator: reproducible, in the configured bands, and its truth is the truth."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from typing import get_args

from pydantic import ValidationError

from tradecredit.contract import TABLES
from tradecredit.ledger import load_ledger
from tradecredit.pipeline import simulate
from tradecredit.simulator import (
    DAYS_PER_MONTH,
    InvoicePaymentOdds,
    SimulatedPortfolio,
    simulate_portfolio,
    true_p_late,
    true_pd_12m,
    write_portfolio,
)
from tradecredit.simulator_config import OptionalColumn, OptionalTable, SimulatorConfig

MESSES = ("long_disputes", "slow_payers", "small_invoices_unpaid")


def _sized(cfg: SimulatorConfig, **changes) -> SimulatorConfig:
    return SimulatorConfig.model_validate(cfg.model_dump() | changes)


def _paying(cfg: SimulatorConfig, **changes) -> SimulatorConfig:
    """``cfg`` with the payment settings changed."""
    return _sized(cfg, payments=cfg.payments.model_dump() | changes)


def _late_30d_rows(p: SimulatedPortfolio) -> pl.DataFrame:
    """Invoices whose outcome is known, with the observed ``late_30d`` from the ledger and the truth."""
    paid = p.ledger["payments"].group_by("invoice_id").agg(paid=pl.col("amount").sum(), last_paid_on=pl.col("paid_on").max())
    settled = pl.col("paid").fill_null(0) >= pl.col("amount") - 0.01
    late = ~settled | (pl.col("last_paid_on") > pl.col("due_on") + pl.duration(days=30))
    return (
        p.ledger["invoices"]
        .join(paid, on="invoice_id", how="left")
        .join(p.invoice_truth, on="invoice_id")
        .filter(pl.col("due_on") + pl.duration(days=30) <= p.data_end)
        .with_columns(late_30d=late)
    )


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
        assert not {"pd_12m", "p_late_30d", "latent_quality", "slow_payer"} & set(frame.columns)


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
    rows = _late_30d_rows(portfolio)
    assert abs(rows["late_30d"].mean() - rows["p_late_30d"].mean()) < 0.005
    assert roc_auc_score(rows["late_30d"], rows["p_late_30d"]) > 0.7
    # The slow payers' invoices too: the truth knows who they are.
    slow = rows.join(portfolio.buyer_traits, on="buyer_id").filter("slow_payer")
    assert slow.height > 1000
    assert abs(slow["late_30d"].mean() - slow["p_late_30d"].mean()) < 0.015


# Each mess turned up far past its default, alone, on the same seed as without it. The truth
# must move with what the ledger shows: ignoring the mechanism would leave it 15+ points off.
AMPLIFIED = {
    "long_disputes": ({"long_disputes": {"share": 1.0, "days": [100, 200]}, "dispute_intercept": -1.0}, None),
    "slow_payers": ({"slow_payers": {"share": 0.5, "invoice_share": 0.8, "days": [40, 120]}}, "slow_payer"),
    "small_invoices_unpaid": ({"small_invoices_unpaid": {"below": 3000.0, "share": 0.5}}, "small"),
}


@pytest.mark.parametrize("mess", MESSES)
def test_true_late_probability_counts_each_mess(config, mess):
    changes, group = AMPLIFIED[mess]
    base = _sized(config.simulator, buyers=1500, months=24, seed=5)
    off = _paying(base, **{m: None for m in MESSES} | {k: v for k, v in changes.items() if k not in MESSES})
    on = _paying(off, **{mess: changes[mess]})

    with_mess, without = simulate_portfolio(on), simulate_portfolio(off)

    def measured(p: SimulatedPortfolio) -> tuple[float, float]:
        # The same buyers and invoices either way; the slow payers are those the mess picked.
        rows = _late_30d_rows(p).join(with_mess.buyer_traits, on="buyer_id")
        rows = rows.with_columns(small=pl.col("amount") < 3000)
        rows = rows.filter(group) if group else rows
        return rows["late_30d"].mean(), rows["p_late_30d"].mean()

    (observed_off, truth_off), (observed_on, truth_on) = measured(without), measured(with_mess)
    assert observed_on - observed_off > 0.15, (observed_off, observed_on)
    assert abs(truth_off - observed_off) < 0.01, (truth_off, observed_off)
    assert abs(truth_on - observed_on) < 0.01, (truth_on, observed_on)


def _brute_force_late(odds: InvoicePaymentOdds, cfg, draws: int, rng: np.random.Generator) -> float:
    """One invoice (element 0 of ``odds``) drawn ``draws`` times as documented, with a default
    at a constant daily hazard from issue; shares no code with the simulator."""
    pc = cfg.payments
    late_after = pc.late_threshold_days
    one = {k: float(np.asarray(v)[0]) for k, v in vars(odds).items()}
    left_unpaid = (one["amount"] < pc.small_invoices_unpaid.below) & (rng.random(draws) < pc.small_invoices_unpaid.share)
    disputed = rng.random(draws) < one["p_dispute"]
    held = disputed & (rng.random(draws) < pc.long_disputes.share)
    slow = bool(one["slow_payer"]) & (rng.random(draws) < pc.slow_payers.invoice_share)
    slip = rng.random(draws) < one["p_slip"]
    severe = slip & (rng.random(draws) < np.where(disputed, one["p_severe_disputed"], one["p_severe_clean"]))
    days = np.where(
        severe,
        rng.integers(pc.severe_days[0], pc.severe_days[1] + 1, draws),
        np.where(slip, rng.integers(pc.slight_days[0], pc.slight_days[1] + 1, draws), rng.integers(pc.early_days[0], pc.early_days[1] + 1, draws)),
    )
    days = np.where(slow, rng.integers(pc.slow_payers.days[0], pc.slow_payers.days[1] + 1, draws), days)
    days = np.where(held, rng.integers(pc.long_disputes.days[0], pc.long_disputes.days[1] + 1, draws), days)
    settle_day = np.maximum(one["terms"] + days, 0)
    default_day = rng.exponential(DAYS_PER_MONTH / one["monthly_hazard"], draws)
    unpaid = left_unpaid | (default_day <= settle_day)
    return float((unpaid | (days > late_after)).mean())


def test_late_probability_formula_matches_monte_carlo(config):
    """true_p_late against brute-force draws of every mechanism, for invoices from healthy to failing."""
    cfg = _paying(
        config.simulator,
        long_disputes={"share": 0.4, "days": [100, 200]},
        slow_payers={"share": 0.1, "invoice_share": 0.7, "days": [40, 120]},
        small_invoices_unpaid={"below": 150.0, "share": 0.4},
    )
    rng = np.random.default_rng(3)
    # p_dispute, p_slip, p_severe_clean, p_severe_disputed, monthly hazard, terms, amount, slow payer
    cases = [
        (0.02, 0.2, 0.2, 0.5, 0.001, 30, 3000.0, False),
        (0.30, 0.2, 0.2, 0.5, 0.001, 60, 3000.0, False),
        (0.05, 0.3, 0.3, 0.6, 0.002, 45, 3000.0, True),
        (0.05, 0.3, 0.3, 0.6, 0.002, 30, 100.0, False),
        (0.20, 0.9, 0.7, 0.9, 0.30, 90, 120.0, True),  # near failure: the default term counts
        (0.10, 0.6, 0.1, 0.3, 0.50, 60, 5000.0, False),
    ]
    draws = 400_000
    for case in cases:
        odds = InvoicePaymentOdds(*(np.array([x]) for x in case))
        closed = float(true_p_late(odds, cfg.payments)[0])
        brute = _brute_force_late(odds, cfg, draws, rng)
        se = np.sqrt(brute * (1 - brute) / draws)
        # The closed form takes the default term at the mean timely delay (exp is nearly linear
        # over it): within 4 standard errors plus 0.002 for a buyer about to fail.
        assert abs(closed - brute) < 4 * se + 0.002, (case, closed, brute)


def test_messes_put_healthy_buyers_past_due_and_leave_risk_alone(config, portfolio):
    cfg = _sized(config.simulator, buyers=4000, months=36, seed=11)
    clean = simulate_portfolio(_paying(cfg, **{m: None for m in MESSES}))
    s, c = portfolio.summary, clean.summary
    # Without the messes no buyer that does not default reaches 90 days past due, and the naive
    # rule labels exactly the true rate; with them it overstates it.
    assert c["nondefaulting_buyers_90dpd_share"] == 0.0
    assert c["naive_dpd90_default_12m_rate"] == pytest.approx(c["true_default_12m_rate"])
    assert 0.05 < s["nondefaulting_buyers_90dpd_share"] < 0.5
    assert s["naive_dpd90_default_12m_rate"] > 2 * s["true_default_12m_rate"]
    assert s["true_default_12m_rate"] == pytest.approx(c["true_default_12m_rate"])
    assert s["slow_payers"] > 0 and s["long_disputes"] > 0 and s["small_invoices_unpaid"] > 0
    # Hazards untouched: the same buyers, the same defaults, the same true PDs.
    assert portfolio.buyer_month_truth.equals(clean.buyer_month_truth)
    assert portfolio.ledger["credit_events"].equals(clean.ledger["credit_events"])
    assert portfolio.ledger["invoices"].select("invoice_id", "issued_on", "amount").equals(
        clean.ledger["invoices"].select("invoice_id", "issued_on", "amount")
    )
    # A long dispute is paid in full 100+ days beyond terms by buyers that never default.
    defaulters = portfolio.ledger["credit_events"]["buyer_id"].unique().implode()
    rows = _late_30d_rows(portfolio).filter(~pl.col("buyer_id").is_in(defaulters))
    assert rows.filter(pl.col("last_paid_on") > pl.col("due_on") + pl.duration(days=100)).height > 0


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
    # Measured as the excess over buyers that never default: slow payers and long disputes add
    # lateness to every kind of buyer alike, and that is no signal of a default.
    excess = lambda rows: rows["late_30d"].mean() - healthy["late_30d"].mean()  # noqa: E731
    assert excess(near) > 1.4 * excess(far)
    assert excess(far) > 0
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
    assert {f.name for f in paths.truth_dir.iterdir()} == {
        "buyer_month_pd.parquet",
        "invoice_late.parquet",
        "buyer_traits.parquet",
        "summary.json",
    }


ALL_OPTIONAL_TABLES = list(get_args(OptionalTable))
ALL_OPTIONAL_COLUMNS = list(get_args(OptionalColumn))


def test_omit_lists_name_the_contracts_optional_tables_and_columns():
    optional_tables = {name for name, spec in TABLES.items() if not spec.required}
    optional_columns = {
        c.name for t in ("buyers", "invoices") for c in TABLES[t].columns if not c.required
    } - {"paid_on"}  # the shorthand the simulator writes when payments are left out
    assert set(ALL_OPTIONAL_TABLES) == optional_tables
    assert set(ALL_OPTIONAL_COLUMNS) == optional_columns


def test_left_out_tables_and_columns_load_to_the_same_settlements(tmp_path, config):
    """Omitted optional tables and columns are absent from the files (none left from an earlier
    run), the loader takes what is left without a reject, and paid_on in place of payments gives
    every invoice the settlement date the payments gave it."""
    full_cfg = _sized(config.simulator, buyers=300, months=12)
    bare_cfg = _sized(full_cfg, omit={"tables": ALL_OPTIONAL_TABLES, "columns": ALL_OPTIONAL_COLUMNS})
    full, bare = simulate_portfolio(full_cfg), simulate_portfolio(bare_cfg)
    write_portfolio(full, tmp_path / "sim", "csv")
    paths = write_portfolio(bare, tmp_path / "sim", "csv")
    assert sorted(f.name for f in paths.ledger_dir.iterdir()) == ["buyers.csv", "invoices.csv"]
    assert bare.ledger["buyers"].columns == ["buyer_id"]
    assert bare.ledger["invoices"].columns == ["invoice_id", "buyer_id", "issued_on", "due_on", "amount", "paid_on"]
    assert bare.invoice_truth.equals(full.invoice_truth) and bare.buyer_month_truth.equals(full.buyer_month_truth)
    assert bare.summary["payments"] == 0 and bare.summary["omitted_tables"] == ", ".join(ALL_OPTIONAL_TABLES)
    # Partly paid invoices exist, and are written as open.
    partly = full.ledger["payments"].group_by("invoice_id").agg(paid=pl.col("amount").sum()).join(
        full.ledger["invoices"], on="invoice_id"
    ).filter(pl.col("paid") < pl.col("amount") - 0.01)
    assert partly.height > 0
    settled = {}
    for name, folder in (("full", tmp_path / "full"), ("bare", tmp_path / "sim")):
        if name == "full":
            write_portfolio(full, folder, "csv")
        loaded = load_ledger(folder / "ledger", config.ledger)
        assert loaded.summary.rows_rejected == 0, name
        settled[name] = loaded.tables["invoices"].select("invoice_id", "settled_on")
    assert settled["bare"].equals(settled["full"])
    assert settled["bare"].filter(pl.col("invoice_id").is_in(partly["invoice_id"].implode()))["settled_on"].null_count() == partly.height


@pytest.mark.parametrize(
    "payments, message",
    [
        ({"long_disputes": {"share": 0.1, "days": [20, 200]}}, "long_disputes.days must start after"),
        ({"slow_payers": {"share": 0.1, "invoice_share": 0.5, "days": [60, 40]}}, "slow_payers.days must start after"),
        ({"small_invoices_unpaid": {"below": 100, "share": 1.5}}, "share"),
    ],
)
def test_mess_settings_out_of_range_are_refused(config, payments, message):
    with pytest.raises(ValidationError, match=message):
        _paying(config.simulator, **payments)


def test_unknown_omitted_table_is_refused(config):
    with pytest.raises(ValidationError, match="omit.tables"):
        _sized(config.simulator, omit={"tables": ["invoices"], "columns": []})


def test_simulate_describes_the_past_due_figures(tmp_path, config):
    text = simulate(_sized(config.simulator, buyers=200, months=12), tmp_path / "sim").describe()
    assert "True 12-month default rate" in text and "90+ days past due" in text and "slow payers" in text
