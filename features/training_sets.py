"""Training sets: contract labels joined to point-in-time features from Feast.

- default: one row per (buyer, first of month) with ``default_12m``; buyers already in default
  and rows whose 12-month window reaches past the data are excluded (and counted).
- late: one row per invoice with ``late_{N}d`` (``labels.late_days``), the buyer's features as of the close of the day
  before the invoice (what an order system knows when the order comes in), and the order's own
  features from :func:`order_features`, which the scoring service applies to a live order too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import polars as pl
from feast import FeatureStore

from tradecredit.features.config import LabelsConfig
from tradecredit.features.build import calendar_dates
from tradecredit.features.catalog import ORDER_FEATURES
from tradecredit.features.labels import default_spells, has_credit_events, label_default_12m, label_late, late_definition
from tradecredit.features.store import historical_features
from tradecredit.model_specs import model_spec

@dataclass(frozen=True)
class TrainingSet:
    name: str
    frame: pl.DataFrame
    label: str
    candidates: int  # rows before exclusions
    excluded: dict[str, int]  # reason -> rows left out
    label_definition: dict[str, object]  # how the label was made: its source, thresholds and counts

    def summary(self) -> dict[str, object]:
        positives = int(self.frame[self.label].sum())
        return {
            "training_set": self.name,
            "label": self.label,
            "rows": self.frame.height,
            "positives": positives,
            "positive_rate": round(positives / self.frame.height, 6) if self.frame.height else None,
            "candidate_rows": self.candidates,
            "excluded": self.excluded,
            "label_definition": self.label_definition,
        }


def order_features(orders: pl.DataFrame) -> pl.DataFrame:
    """Add the order-level features to rows carrying ``amount``, ``terms_days``, ``issued_on``
    and the buyer's ``amount_issued_365d`` and ``invoices_issued_365d``."""
    usual = pl.col("amount_issued_365d") / pl.col("invoices_issued_365d")
    return orders.with_columns(
        order_amount=pl.col("amount").cast(pl.Float64),
        order_terms_days=pl.col("terms_days").cast(pl.Int64),
        amount_vs_usual_invoice=pl.when(pl.col("invoices_issued_365d") > 0).then(pl.col("amount") / usual),
        issue_month=pl.col("issued_on").dt.month().cast(pl.Int64),
    )


def order_feature_values(
    amount: float, terms_days: int, issued_on: date, amount_issued_365d: float | None, invoices_issued_365d: int | None
) -> dict[str, float | int | None]:
    """:func:`order_features` for one order, without a frame: the scoring service's path (a
    one-row Polars query costs more than the rest of a request). A property test holds the
    two equal."""
    ratio = None
    if invoices_issued_365d is not None and invoices_issued_365d > 0 and amount_issued_365d is not None:
        usual = amount_issued_365d / invoices_issued_365d
        ratio = amount / usual if usual else math.copysign(math.inf, amount)  # Polars' float division
    return {
        "order_amount": float(amount),
        "order_terms_days": int(terms_days),
        "amount_vs_usual_invoice": ratio,
        "issue_month": issued_on.month,
    }


def default_training_set(
    store: FeatureStore, tables: dict[str, pl.DataFrame], labels: LabelsConfig, data_start: date, data_end: date
) -> TrainingSet:
    months = pl.DataFrame({"as_of_date": calendar_dates(data_start, data_end, "monthly")}, schema={"as_of_date": pl.Date})
    candidates = tables["buyers"].select("buyer_id").join(months, how="cross")
    defaults = default_spells(tables, labels.default, data_end)
    labelled = label_default_12m(candidates, defaults.spells, data_end)
    excluded = {
        "in_default_at_as_of": int(labelled["in_default"].sum()),
        "censored_window_past_data_end": int((~labelled["in_default"] & labelled["censored"]).sum()),
    }
    kept = labelled.filter(pl.col("default_12m").is_not_null())
    features = historical_features(store, "default", kept.select("buyer_id", as_of_ts="as_of_date"))
    frame = pl.concat([features, kept.select(pl.col("default_12m").cast(pl.Int8))], how="horizontal")
    definition = {
        "source": defaults.source,
        "text": labels.default.describe(has_credit_events(tables)),
        **labels.default.model_dump(mode="json", exclude={"source"}),
        **defaults.counts(),
    }
    return TrainingSet("default", frame.select("buyer_id", "as_of_ts", "default_12m", *features.columns[2:]), "default_12m",
                       candidates.height, excluded, definition)


def late_training_set(store: FeatureStore, tables: dict[str, pl.DataFrame], labels: LabelsConfig, data_end: date) -> TrainingSet:
    label = model_spec("late").label(labels.late_days)
    invoices = tables["invoices"]
    labelled = label_late(invoices, labels.late_days, data_end).join(
        invoices.select("invoice_id", "amount", "terms_days"), on="invoice_id", how="left", maintain_order="left"
    )
    excluded = {"censored_outcome_unknown_at_data_end": int(labelled["censored"].sum())}
    kept = labelled.filter(~pl.col("censored")).sort("issued_on", "invoice_id")
    rows = late_rows(store, kept)
    frame = rows.with_columns(kept[label].cast(pl.Int8)).select("invoice_id", "buyer_id", "issued_on", "as_of_ts", label, *rows.columns[4:])
    definition = {"late_days": labels.late_days, "text": late_definition(labels.late_days)}
    return TrainingSet("late", frame, label, invoices.height, excluded, definition)


def build_training_set(
    model: str, store: FeatureStore, tables: dict[str, pl.DataFrame], labels: LabelsConfig, data_start: date, data_end: date
) -> TrainingSet:
    """The training set of a model of the table of models (``tradecredit.model_specs``)."""
    builders: dict[str, Callable[[], TrainingSet]] = {
        "default": lambda: default_training_set(store, tables, labels, data_start, data_end),
        "late": lambda: late_training_set(store, tables, labels, data_end),
    }
    return builders[model_spec(model).name]()


def late_rows(store: FeatureStore, invoices: pl.DataFrame) -> pl.DataFrame:
    """The late-payment model's rows for ``invoices`` (``invoice_id, buyer_id, issued_on,
    amount, terms_days``): the buyer's features as of the day before issue, then the order's.
    Columns: invoice_id, buyer_id, issued_on, as_of_ts, the order features, the buyer features."""
    entities = invoices.select("buyer_id", as_of_ts=pl.col("issued_on") - pl.duration(days=1))
    features = historical_features(store, "late", entities)
    joined = pl.concat([invoices.select("invoice_id", "issued_on", "amount", "terms_days"), features], how="horizontal")
    return order_features(joined).select(
        "invoice_id", "buyer_id", "issued_on", "as_of_ts", *[f.name for f in ORDER_FEATURES], *features.columns[2:]
    )
