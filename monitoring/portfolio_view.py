"""The portfolio view of a monitoring run: exposure by grade, tier, industry and country;
concentration; the customer mix against its target; aging and DSO over time; expected loss
and insurance premium totals.

Exposure is a buyer's open balance at the run date. Limits, expected loss and premiums come
from the scoring service's own policy (``tradecredit.policy.decide`` with nothing requested), so
the report and the service never disagree about a buyer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from tradecredit.monitoring.config import PortfolioViewConfig
from tradecredit.policy_config import PolicyConfig
from tradecredit.features.build import KNOWN_AT_TS, SNAPSHOT_TS
from tradecredit.features.catalog import AGING_COLUMNS
from tradecredit.policy import buyer_facts, decide

SEGMENTS = ("core", "growth", "new")


@dataclass(frozen=True)
class Concentration:
    total_exposure: float
    largest_buyer: str | None
    largest_share: float
    top_n: int
    top_n_share: float
    hhi: float  # Herfindahl-Hirschman index of exposure shares, 0..1 (x 10,000 for the usual points)
    effective_buyers: float  # 1 / HHI: as many equal buyers would give the same concentration


@dataclass(frozen=True)
class PortfolioView:
    as_of: date
    positions: pl.DataFrame  # one row per scored buyer
    by_grade: pl.DataFrame
    by_tier: pl.DataFrame
    by_industry: pl.DataFrame
    by_country: pl.DataFrame
    concentration: Concentration
    customer_mix: pl.DataFrame  # segment, buyers, exposure, share, target, gap, off_target
    aging_history: pl.DataFrame  # month, open_<bucket>..., open_balance, amount_issued_90d, dso_days
    expected_loss: float
    premium: float
    recommended_limits: float


def positions(scores: pl.DataFrame, features: pl.DataFrame, policy: PolicyConfig, mix: PortfolioViewConfig) -> pl.DataFrame:
    """Each scored buyer with its exposure, limit, expected loss, premium and mix segment."""
    cols = ["buyer_id", "industry", "country", "open_balance", "amount_issued_365d", "revenue", "equity", "days_since_first_invoice"]
    # The statement's age and the lateness the policy also reads, where the features carry them.
    cols += [c for c in ("days_since_statement", "dbt_weighted_365d") if c in features.columns]
    frame = scores.select("buyer_id", "pd_12m", "grade", "tier").join(features.select(cols), on="buyer_id", how="left")
    limits, losses, rates, premiums = [], [], [], []
    for row in frame.iter_rows(named=True):
        decision = decide(row["pd_12m"], buyer_facts(row), None, policy)
        limits.append(decision.recommended_limit)
        losses.append(decision.expected_loss)
        rates.append(decision.premium_rate)
        premiums.append(decision.premium)
    c = mix.customer_mix
    days = pl.col("days_since_first_invoice")
    return frame.with_columns(
        exposure=pl.col("open_balance").fill_null(0.0),
        recommended_limit=pl.Series(limits, dtype=pl.Float64),
        expected_loss=pl.Series(losses, dtype=pl.Float64),
        premium_rate=pl.Series(rates, dtype=pl.Float64),
        premium=pl.Series(premiums, dtype=pl.Float64),
        segment=pl.when(days.is_null() | (days < c.new_below_days))
        .then(pl.lit("new"))
        .when((days >= c.core_from_days) & pl.col("tier").is_in(c.core_tiers))
        .then(pl.lit("core"))
        .otherwise(pl.lit("growth")),
    ).drop("open_balance")


def exposure_by(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    total = float(frame["exposure"].sum()) or 1.0
    return (
        frame.group_by(pl.col(key).fill_null("(unknown)") if frame[key].dtype == pl.String else pl.col(key))
        .agg(
            buyers=pl.len(), exposure=pl.col("exposure").sum(), mean_pd=pl.col("pd_12m").mean(),
            expected_loss=pl.col("expected_loss").sum(), premium=pl.col("premium").sum(),
        )
        .with_columns(share=pl.col("exposure") / total)
        .sort(key)
    )


def concentration(frame: pl.DataFrame, top_n: int) -> Concentration:
    exposure = frame.select("buyer_id", "exposure").filter(pl.col("exposure") > 0).sort("exposure", "buyer_id", descending=[True, False])
    total = float(exposure["exposure"].sum())
    if total <= 0:
        return Concentration(0.0, None, 0.0, top_n, 0.0, 0.0, 0.0)
    shares = exposure["exposure"] / total
    hhi = float((shares**2).sum())
    return Concentration(total, exposure["buyer_id"][0], float(shares[0]), top_n, float(shares.head(top_n).sum()), hhi, 1.0 / hhi)


def customer_mix(frame: pl.DataFrame, cfg: PortfolioViewConfig) -> pl.DataFrame:
    target = cfg.customer_mix.target
    total = float(frame["exposure"].sum()) or 1.0
    counts = frame.group_by("segment").agg(buyers=pl.len(), exposure=pl.col("exposure").sum())
    base = pl.DataFrame({"segment": list(SEGMENTS), "target": [target[s] for s in SEGMENTS]})
    return (
        base.join(counts, on="segment", how="left")
        .with_columns(pl.col("buyers").fill_null(0), pl.col("exposure").fill_null(0.0))
        .with_columns(share=pl.col("exposure") / total)
        .with_columns(gap=pl.col("share") - pl.col("target"))
        .with_columns(off_target=pl.col("gap").abs() > cfg.customer_mix.tolerance)
        .select("segment", "buyers", "exposure", "share", "target", "gap", "off_target")
    )


def aging_history(payment_snapshots: Path, as_of: date, months: int) -> pl.DataFrame:
    """Portfolio aging buckets and DSO at each of the last ``months`` month starts up to
    ``as_of``, from the feature build's monthly snapshots known by ``as_of`` (never later)."""
    cut = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)
    snapshots = (
        pl.scan_parquet(payment_snapshots)
        .filter((pl.col(SNAPSHOT_TS) <= cut) & (pl.col(KNOWN_AT_TS) <= cut) & (pl.col(SNAPSHOT_TS).dt.day() == 1))
        .select(SNAPSHOT_TS, *AGING_COLUMNS, "open_balance", "amount_issued_90d")
        .group_by(pl.col(SNAPSHOT_TS).dt.date().alias("month"))
        .agg(pl.col(*AGING_COLUMNS, "open_balance", "amount_issued_90d").fill_null(0).sum())
        .sort("month")
        .collect()
    )
    return snapshots.tail(months).with_columns(
        dso_days=pl.when(pl.col("amount_issued_90d") > 0).then(pl.col("open_balance") / pl.col("amount_issued_90d") * 90)
    )


def portfolio_view(
    scores: pl.DataFrame, features: pl.DataFrame, payment_snapshots: Path, as_of: date, policy: PolicyConfig, cfg: PortfolioViewConfig
) -> PortfolioView:
    frame = positions(scores, features, policy, cfg)
    return PortfolioView(
        as_of=as_of, positions=frame,
        by_grade=exposure_by(frame, "grade"), by_tier=exposure_by(frame, "tier"),
        by_industry=exposure_by(frame, "industry"), by_country=exposure_by(frame, "country"),
        concentration=concentration(frame, cfg.top_n), customer_mix=customer_mix(frame, cfg),
        aging_history=aging_history(payment_snapshots, as_of, cfg.history_months),
        expected_loss=float(frame["expected_loss"].sum()), premium=float(frame["premium"].sum()),
        recommended_limits=float(frame["recommended_limit"].sum()),
    )
