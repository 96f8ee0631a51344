"""Targets from the data contract: ``default_12m`` per (buyer, as-of date), ``late_30d`` per invoice.

Both read the normalised ledger written by ``tradecredit load``. Rows whose outcome cannot be
known by the end of the data are returned with a null label and ``censored = True``, never
dropped, so a caller always sees every row it asked for.
"""

from __future__ import annotations

from datetime import date

import polars as pl

DEFAULT_HORIZON_DAYS = 365


def default_dates(tables: dict[str, pl.DataFrame], days_past_due: int, data_end: date) -> pl.DataFrame:
    """Each buyer's first default: its first credit event, or the derived ledger default.

    The derived default is the first day on which one of its invoices has been unpaid for
    ``days_past_due`` days past due (an invoice is unpaid until payments reach its amount).
    Returns ``buyer_id, default_on`` for buyers that have defaulted by ``data_end``.
    """
    invoices = tables["invoices"]
    derived = (
        invoices.with_columns(overdue_on=pl.col("due_on") + pl.duration(days=days_past_due))
        # Still unpaid on the day it reaches the threshold (settled on that day counts as paid).
        .filter(pl.col("settled_on").is_null() | (pl.col("settled_on") > pl.col("overdue_on")))
        .select("buyer_id", default_on="overdue_on")
    )
    parts = [derived]
    if "credit_events" in tables:
        parts.append(tables["credit_events"].select("buyer_id", default_on="event_on"))
    return (
        pl.concat(parts)
        .filter(pl.col("default_on") <= data_end)
        .group_by("buyer_id")
        .agg(pl.col("default_on").min())
        .sort("buyer_id")
    )


def label_default_12m(entities: pl.DataFrame, defaults: pl.DataFrame, data_end: date) -> pl.DataFrame:
    """``default_12m`` for each (buyer_id, as_of_date): a default in (as_of, as_of + 365 days].

    Adds ``in_default`` (defaulted on or before the as-of date: not scored), ``censored`` (the
    window reaches past the data) and ``default_12m`` (null where either holds).
    """
    horizon_end = pl.col("as_of_date") + pl.duration(days=DEFAULT_HORIZON_DAYS)
    joined = entities.join(defaults, on="buyer_id", how="left", maintain_order="left")
    in_default = pl.col("default_on").is_not_null() & (pl.col("default_on") <= pl.col("as_of_date"))
    censored = horizon_end > pl.lit(data_end)
    in_window = pl.col("default_on").is_not_null() & (pl.col("default_on") <= horizon_end)
    return joined.with_columns(in_default=in_default, censored=censored).with_columns(
        default_12m=pl.when(pl.col("in_default") | pl.col("censored")).then(None).otherwise(in_window)
    ).drop("default_on")


def label_late(invoices: pl.DataFrame, late_days: int, data_end: date) -> pl.DataFrame:
    """``late_30d`` per invoice as of its issue date (``late_days`` beyond due, 30 by default).

    Late: settled more than ``late_days`` after ``due_on``, or still unsettled then. Known
    on time: settled within that many days, by the end of the data. Otherwise ``censored``.
    """
    deadline = pl.col("due_on") + pl.duration(days=late_days)
    settled_in_time = pl.col("settled_on").is_not_null() & (pl.col("settled_on") <= deadline)
    decided = settled_in_time | (deadline <= pl.lit(data_end))
    return invoices.select("invoice_id", "buyer_id", "issued_on", "due_on", "settled_on").with_columns(
        censored=~decided,
        late=pl.when(decided).then(~settled_in_time).otherwise(None),
    ).rename({"late": f"late_{late_days}d"})
