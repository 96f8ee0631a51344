"""The market view: how the whole book, and the buyer's industry, paid in the window before each
snapshot: the credit cycle as the ledger itself records it (decision 0015).

Point in time like every view: a snapshot dated d counts the invoices settled in (d - W, d],
whoever the buyer, and nothing settled later. The only per-buyer input is the buyer's industry
(the buyers table carries no dates, so it counts as known throughout).

These features are the one place where a buyer's row depends on other buyers' facts. A
partitioned build therefore keeps each partition's daily totals (:func:`market_daily`, a few
thousand rows) and computes the view in a second pass over the sum of every partition's totals
(:func:`market_view`), so any split gives the single build's values.
"""

from __future__ import annotations

import duckdb
import polars as pl

from tradecredit.features.catalog import MARKET_WINDOWS_DAYS

# Per industry and settlement day (whole cents, as the build sums money).
DAILY_SUMS = ("n_settled", "n_late", "amt_settled", "dbt_amt")
DAILY_SCHEMA = {"industry": pl.String, "day": pl.Date, **dict.fromkeys(DAILY_SUMS, pl.Int64)}


def market_daily(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Invoices settled, settled late, their amount and amount x days beyond terms, per industry
    (null: the buyer has none) and settlement day, from the build's ``inv_settled`` table."""
    frame = con.sql(
        """
        SELECT b.industry, s.settled_on AS day, count(*) AS n_settled,
               count(*) FILTER (WHERE s.days_after_due > 0) AS n_late,
               CAST(sum(s.amount) AS BIGINT) AS amt_settled,
               CAST(sum(s.amount * greatest(s.days_after_due, 0)) AS BIGINT) AS dbt_amt
        FROM inv_settled s JOIN buyers_in b USING (buyer_id)
        WHERE s.settled_on IS NOT NULL
        GROUP BY ALL
        """
    ).pl()
    return frame.select(pl.col(name).cast(dtype) for name, dtype in DAILY_SCHEMA.items())


def _running(daily: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Per ``keys`` and day, the running total of each daily sum."""
    summed = daily.group_by([*keys, "day"]).agg(pl.col(c).sum() for c in DAILY_SUMS).sort([*keys, "day"])
    running = [pl.col(c).cum_sum().over(keys) if keys else pl.col(c).cum_sum() for c in DAILY_SUMS]
    return summed.with_columns(running)


def _windowed(points: pl.DataFrame, running: pl.DataFrame, keys: list[str], prefix: str) -> pl.DataFrame:
    """Each point's totals over (as_of - W, as_of] for every market window: the running total at
    as_of minus the one at as_of - W (0 before the first settlement)."""
    out = points
    for lag in (0, *MARKET_WINDOWS_DAYS):
        at = points.with_columns(_day=pl.col("as_of") - pl.duration(days=lag)).sort("_day")
        joined = at.join_asof(running, left_on="_day", right_on="day", by=keys or None, strategy="backward", check_sortedness=False)
        out = out.join(
            joined.select(*keys, "as_of", *[pl.col(c).fill_null(0).alias(f"{prefix}{c}_{lag}") for c in DAILY_SUMS]),
            on=[*keys, "as_of"], how="left", nulls_equal=True,
        )
    return out.with_columns(
        (pl.col(f"{prefix}{c}_0") - pl.col(f"{prefix}{c}_{w}")).alias(f"{prefix}{c}_{w}")
        for c in DAILY_SUMS for w in MARKET_WINDOWS_DAYS
    )


def market_view(snapshots: pl.DataFrame, daily: pl.DataFrame, industry_prior_invoices: float) -> pl.DataFrame:
    """The market features of each snapshot (``buyer_id, as_of, industry``), from ``daily``: the
    :func:`market_daily` totals of every buyer in the book, any number of partitions' rows."""
    daily = daily.select(pl.col(name).cast(dtype) for name, dtype in DAILY_SCHEMA.items())
    book = _windowed(snapshots.select("as_of").unique(), _running(daily, []), [], "b_")
    industries = snapshots.select("industry", "as_of").unique().filter(pl.col("industry").is_not_null())
    by_industry = _windowed(industries, _running(daily.filter(pl.col("industry").is_not_null()), ["industry"]), ["industry"], "i_")
    k = float(industry_prior_invoices)
    features = []
    for w in MARKET_WINDOWS_DAYS:
        n, late, amt, dbt = (pl.col(f"b_{c}_{w}") for c in DAILY_SUMS)
        features += [
            pl.when(n > 0).then(late / n).alias(f"market_late_share_{w}d"),
            pl.when((n > 0) & (amt > 0)).then(dbt / amt).alias(f"market_dbt_weighted_{w}d"),
        ]
    out = snapshots.select("buyer_id", "as_of", "industry").join(book, on="as_of", how="left").with_columns(features)
    out = out.join(by_industry, on=["industry", "as_of"], how="left")
    shrunk = []
    for w in MARKET_WINDOWS_DAYS:
        n, late, amt, dbt = (pl.col(f"i_{c}_{w}").cast(pl.Float64) for c in DAILY_SUMS)
        own_dbt = pl.when(amt > 0).then(dbt / amt).otherwise(0.0)
        weight = n + k
        for name, own, book_value in ((f"industry_late_share_{w}d", late, f"market_late_share_{w}d"),
                                      (f"industry_dbt_weighted_{w}d", own_dbt * n, f"market_dbt_weighted_{w}d")):
            # Pseudo-invoices at the book's figure; an industry with none of its own takes the book's.
            value = (own + pl.col(book_value).fill_null(0.0) * k) / weight
            known = pl.col("industry").is_not_null() & (weight > 0) & (pl.col(book_value).is_not_null() | (k == 0))
            shrunk.append(pl.when(known).then(value).alias(name))
    return out.with_columns(shrunk).select(
        "buyer_id", "as_of", *[f"{kind}_{w}d" for w in MARKET_WINDOWS_DAYS for kind in
                               ("market_late_share", "market_dbt_weighted", "industry_late_share", "industry_dbt_weighted")]
    )
