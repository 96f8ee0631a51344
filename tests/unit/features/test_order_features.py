"""The late-payment model's order features: the service's one-order function equals the
training set's Polars expression on every input (the train/serve parity the model relies on)."""

from __future__ import annotations

import math
from datetime import date

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tradecredit.features.training_sets import order_feature_values, order_features

orders = st.tuples(
    st.floats(min_value=0.01, max_value=1e9),
    st.integers(min_value=0, max_value=365),
    st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 12, 31)),
    st.one_of(st.none(), st.just(0.0), st.floats(min_value=0.01, max_value=1e10)),
    st.one_of(st.none(), st.integers(min_value=0, max_value=5000)),
)


@settings(max_examples=120, deadline=None)
@given(st.lists(orders, min_size=1, max_size=20))
def test_one_order_equals_the_training_expression(batch):
    frame = pl.DataFrame(
        batch, schema={"amount": pl.Float64, "terms_days": pl.Int64, "issued_on": pl.Date, "amount_issued_365d": pl.Float64,
                       "invoices_issued_365d": pl.Int64}, orient="row",
    )
    expected = order_features(frame).select("order_amount", "order_terms_days", "amount_vs_usual_invoice", "issue_month").to_dicts()
    for row, want in zip(batch, expected, strict=True):
        got = order_feature_values(*row)
        assert got.keys() == want.keys()
        for key, value in want.items():
            if isinstance(value, float) and math.isnan(value):
                assert got[key] is not None and math.isnan(got[key])  # type: ignore[arg-type]
            else:
                assert got[key] == value, (key, row)
