"""A synthetic training set with every model input column and a known risk driver, so model
behaviour can be tested in seconds without building features.

Each buyer has a persistent latent risk z. Payment-behaviour features move with z (late shares,
days beyond terms up; PAYDEX down), the rest are noise, and the label is Bernoulli in z.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from tradecredit.features.catalog import model_input_features


def _months(start: date, count: int) -> list[date]:
    return [date(start.year + (start.month - 1 + i) // 12, (start.month - 1 + i) % 12 + 1, 1) for i in range(count)]


def synthetic_training_set(model: str, buyers: int = 600, months: int = 30, seed: int = 0, start: date = date(2021, 1, 1)) -> tuple[pl.DataFrame, date]:
    """(training set, data end) shaped like ``features training-set MODEL``'s output."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1, buyers)
    ids = np.array([f"S{i:05d}" for i in range(buyers)])
    dates = _months(start, months)
    if model == "default":
        buyer_index = np.repeat(np.arange(buyers), months)
        row_dates = np.tile(np.array(dates, dtype="datetime64[D]"), buyers)
        base_rate, slope = -3.6, 1.1
    else:
        per_buyer = months * 3
        buyer_index = np.repeat(np.arange(buyers), per_buyer)
        offsets = rng.integers(0, months * 30, buyers * per_buyer)
        row_dates = np.array(start, dtype="datetime64[D]") + offsets
        base_rate, slope = -2.2, 1.0
    n = len(buyer_index)
    risk = z[buyer_index] + rng.normal(0, 0.3, n)
    columns: dict[str, object] = {}
    # The market view (one value per date in real books) is noise here, drawn from its own
    # generator so the other columns and the labels are those the tests were written against.
    market_rng = np.random.default_rng([seed, 15])
    for f in model_input_features(model):
        if f.view == "market_conditions":
            columns[f.name] = market_rng.uniform(0, 1, n)
            continue
        noise = rng.normal(0, 1, n)
        if f.dtype == "string":
            columns[f.name] = rng.choice(["AA", "BB", "CC"], n)
        elif f.name.startswith(("late_share", "overdue_share")):
            columns[f.name] = 1 / (1 + np.exp(-(risk - 1.5 + 0.5 * noise)))
        elif f.name.startswith(("dbt_weighted", "dbt_max", "worst_seller_dbt")):
            columns[f.name] = np.maximum(0, 8 + 6 * risk + 3 * noise)
        elif f.name.startswith("paydex"):
            columns[f.name] = np.clip(75 - 8 * risk + 3 * noise, 1, 100)
        elif f.dtype == "int":
            columns[f.name] = rng.poisson(2, n)
        else:
            columns[f.name] = noise
    # A threshold effect a logistic regression cannot draw, so the booster has something to beat it with.
    step = 1.2 * (np.asarray(columns["net_margin" if model == "default" else "company_age_years"]) > 1.0)
    label = (rng.random(n) < 1 / (1 + np.exp(-(base_rate + slope * risk + step)))).astype(np.int8)
    frame = pl.DataFrame(columns)
    for f in model_input_features(model):
        if f.dtype == "int":
            frame = frame.with_columns(pl.col(f.name).cast(pl.Int64))
    # A few missing values, as real features have.
    frame = frame.with_columns(pl.when(pl.Series(rng.random(n) < 0.05)).then(None).otherwise(pl.col("paydex_365d")).alias("paydex_365d"))
    keys = pl.DataFrame({"buyer_id": ids[buyer_index], "day": row_dates.astype("datetime64[D]")})
    if model == "default":
        head = keys.select("buyer_id", as_of_ts=pl.col("day").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
        head = head.with_columns(default_12m=pl.Series(label))
        data_end = dates[-1] + timedelta(days=365)
    else:
        head = keys.select(invoice_id=pl.Series([f"I{i:07d}" for i in range(n)]), buyer_id="buyer_id", issued_on="day")
        head = head.with_columns(late_30d=pl.Series(label))
        frame = frame.with_columns(order_terms_days=pl.Series(rng.choice([30, 60], n)).cast(pl.Int64))
        data_end = start + timedelta(days=months * 30 + 120)
    return pl.concat([head, frame], how="horizontal"), data_end
