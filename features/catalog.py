"""Every buyer feature: name, type, window, meaning and the feature view (source) it belongs to.

This list is the single definition the build's output is checked against, the Feast schema
is generated from, and the feature table in docs/features.md is written from (``tradecredit features
docs``). Windows are part of a feature's name, so they live here, not in a config file:
changing one is a change of the models' feature contract.

Every feature of a snapshot row is computed from facts dated on or before the snapshot date
(the data contract's point-in-time rule); a window of W days as of date d is (d - W, d].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl
from tradecredit.contract import REGISTRY_EVENT_TYPES

WINDOWS_DAYS = (90, 180, 365)
REGISTRY_WINDOWS_DAYS = (90, 365)
MARKET_WINDOWS_DAYS = (90, 365)
# Registry events that change who owns, runs or what a company is (not courts or news).
REGISTRY_CHANGE_TYPES = (
    "shareholder_change",
    "executive_change",
    "legal_representative_change",
    "address_change",
    "capital_change",
    "name_change",
    "business_scope_change",
)
EXECUTIVE_TURNOVER_TYPES = ("executive_change", "legal_representative_change")
# Registry types whose recency is a feature of its own (days since the last one).
DAYS_SINCE_TYPES = {"lawsuit_filed": "lawsuit", "enforcement_order": "enforcement_order", "negative_news": "negative_news"}
AGING_BUCKETS = (("current", "not yet due"), ("1_30", "1-30 days"), ("31_60", "31-60 days"), ("61_90", "61-90 days"), ("90_plus", "more than 90 days"))
AGING_COLUMNS = [f"open_{suffix}" for suffix, _ in AGING_BUCKETS]

FeatureType = Literal["float", "int", "string"]


@dataclass(frozen=True)
class FeatureView:
    name: str
    source: str
    description: str


@dataclass(frozen=True)
class FeatureDef:
    name: str
    view: str
    dtype: FeatureType
    meaning: str
    window_days: int | None = None


VIEWS = (
    FeatureView(
        "payment_behaviour",
        "invoices, payments (ledger)",
        "How the buyer pays: issuance, lateness, open balance and its aging, disputes, sellers.",
    ),
    FeatureView(
        "registry_signals",
        "registry_events",
        "Public registry, court and news events about the buyer.",
    ),
    FeatureView("firmographics", "buyers", "What the company is: age, capital, size, sector, country, legal form."),
    FeatureView(
        "financials",
        "financials",
        "Ratios from the latest statement published by the snapshot date.",
    ),
    FeatureView(
        "market_conditions",
        "invoices, payments of every buyer in the book (ledger); buyers.industry",
        "How the whole book and the buyer's industry pay: the credit cycle as the ledger sees it.",
    ),
)
VIEW_NAMES = tuple(v.name for v in VIEWS)


def _payment_features() -> list[FeatureDef]:
    view = "payment_behaviour"
    out: list[FeatureDef] = []
    for w in WINDOWS_DAYS:
        out += [
            FeatureDef(f"invoices_issued_{w}d", view, "int", "invoices issued", w),
            FeatureDef(f"amount_issued_{w}d", view, "float", "amount invoiced", w),
            FeatureDef(f"invoices_settled_{w}d", view, "int", "invoices settled (payments reached the amount)", w),
            FeatureDef(f"late_share_{w}d", view, "float", "share of the invoices settled in the window that were settled after their due date", w),
            FeatureDef(f"dbt_weighted_{w}d", view, "float", "amount-weighted days beyond terms (days settled after due, 0 if on time) of invoices settled in the window", w),
            FeatureDef(f"dbt_max_{w}d", view, "int", "largest days beyond terms of an invoice settled in the window", w),
            FeatureDef(f"paydex_{w}d", view, "float", "PAYDEX-style index 1-100 from the amount-weighted days paid after due of invoices settled in the window (80 = on terms; knots in configs/features.yaml)", w),
            FeatureDef(f"disputes_{w}d", view, "int", "invoices disputed", w),
            FeatureDef(f"partial_payment_share_{w}d", view, "float", "share of payments received that covered less than their invoice's amount", w),
            FeatureDef(f"sellers_{w}d", view, "int", "distinct sellers that invoiced the buyer", w),
            FeatureDef(f"worst_seller_dbt_{w}d", view, "float", "the highest amount-weighted days beyond terms among the buyer's sellers (the cross-supplier signal)", w),
        ]
    out += [
        FeatureDef("dbt_trend_90d_vs_365d", view, "float", "dbt_weighted_90d minus dbt_weighted_365d: positive when paying later than usual"),
        FeatureDef("volume_change_90d", view, "float", "amount invoiced in the last 90 days over the 90 days before, minus 1", 90),
        FeatureDef("open_invoices", view, "int", "invoices issued and not yet settled"),
        FeatureDef("open_balance", view, "float", "amount issued and not yet paid (payments beyond an invoice's amount ignored)"),
    ]
    for suffix, words in AGING_BUCKETS:
        meaning = "open amount not yet due" if suffix == "current" else f"open amount {words} past due"
        out.append(FeatureDef(f"open_{suffix}", view, "float", meaning))
    out += [
        FeatureDef("overdue_share", view, "float", "share of the open balance that is past due"),
        FeatureDef("dso_90d", view, "float", "days sales outstanding: open balance over the amount invoiced in the last 90 days, times 90", 90),
        FeatureDef("days_since_last_payment", view, "int", "days since the last payment received (null if none yet)"),
        FeatureDef("days_since_first_invoice", view, "int", "length of the trading relationship in days (null before the first invoice)"),
    ]
    return out


def _registry_features() -> list[FeatureDef]:
    view = "registry_signals"
    out: list[FeatureDef] = []
    for w in REGISTRY_WINDOWS_DAYS:
        for event_type in (*REGISTRY_EVENT_TYPES, "other"):
            meaning = f"'{event_type}' registry events" if event_type != "other" else "registry events of a type outside the contract's vocabulary"
            out.append(FeatureDef(f"{event_type}_{w}d", view, "int", meaning, w))
        out.append(FeatureDef(f"registry_changes_{w}d", view, "int", "registry changes of ownership, management, address, capital, name or scope", w))
        out.append(FeatureDef(f"executive_turnover_{w}d", view, "int", "executive and legal-representative changes", w))
    for event_type, short in DAYS_SINCE_TYPES.items():
        out.append(FeatureDef(f"days_since_{short}", view, "int", f"days since the last '{event_type}' event (null if none)"))
    return out


def _firmographic_features() -> list[FeatureDef]:
    view = "firmographics"
    return [
        FeatureDef("company_age_years", view, "float", "years since registration (founded_on)"),
        FeatureDef("registered_capital", view, "float", "registered capital"),
        FeatureDef("paid_in_ratio", view, "float", "paid-in over registered capital"),
        FeatureDef("employees", view, "int", "number of employees"),
        FeatureDef("industry", view, "string", "sector code"),
        FeatureDef("country", view, "string", "ISO 3166-1 country"),
        FeatureDef("legal_form", view, "string", "legal form"),
    ]


def _financial_features() -> list[FeatureDef]:
    view = "financials"
    return [
        FeatureDef("has_statement", view, "int", "1 if any statement was published by the snapshot date, else 0"),
        FeatureDef("days_since_statement", view, "int", "days since the latest statement was published"),
        FeatureDef("revenue", view, "float", "revenue of the latest statement"),
        FeatureDef("equity", view, "float", "equity of the latest statement"),
        FeatureDef("debt_ratio", view, "float", "total liabilities over total assets"),
        FeatureDef("current_ratio", view, "float", "current assets over current liabilities"),
        FeatureDef("cash_ratio", view, "float", "cash over current liabilities"),
        FeatureDef("net_margin", view, "float", "net income over revenue"),
        FeatureDef("roa", view, "float", "net income over total assets"),
        FeatureDef(
            "revenue_growth",
            view,
            "float",
            "revenue over the revenue of the statement for the previous period (latest published by the snapshot date), minus 1",
        ),
    ]


def _market_features() -> list[FeatureDef]:
    view = "market_conditions"
    out: list[FeatureDef] = []
    shrunk = "; shrunk toward the book's figure by features.market.industry_prior_invoices pseudo-invoices, so a small industry borrows from the book"
    for w in MARKET_WINDOWS_DAYS:
        out += [
            FeatureDef(f"market_late_share_{w}d", view, "float", "share of the invoices of every buyer in the book settled in the window that were settled after their due date", w),
            FeatureDef(f"market_dbt_weighted_{w}d", view, "float", "amount-weighted days beyond terms of the invoices of every buyer in the book settled in the window", w),
            FeatureDef(f"industry_late_share_{w}d", view, "float", f"market_late_share within the buyer's industry{shrunk}", w),
            FeatureDef(f"industry_dbt_weighted_{w}d", view, "float", f"market_dbt_weighted within the buyer's industry{shrunk}", w),
        ]
    return out


FEATURES: tuple[FeatureDef, ...] = (
    *_payment_features(),
    *_registry_features(),
    *_firmographic_features(),
    *_financial_features(),
    *_market_features(),
)
# The order being assessed: computed beside the buyer's features by
# training_sets.order_features, for training rows and live orders alike.
ORDER_FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("order_amount", "order", "float", "amount of the invoice (order)"),
    FeatureDef("order_terms_days", "order", "int", "payment terms: days from issue to due"),
    FeatureDef("amount_vs_usual_invoice", "order", "float", "amount over the buyer's mean invoice in the last 365 days", 365),
    FeatureDef("issue_month", "order", "int", "calendar month of issue (1-12): seasonality"),
)

# What in the ledger each feature needs beyond the invoices (data contract: optional tables and
# columns). A feature whose source the ledger lacks is null in every snapshot, and no model uses it.
SETTLEMENTS = "settlements"  # payment rows or the invoices' paid_on: when an invoice was settled
_FIRMOGRAPHIC_SOURCES = {"company_age_years": ("founded_on",), "paid_in_ratio": ("paid_in_capital", "registered_capital")}
_PAYMENT_SOURCES = {
    "disputes": ("disputed_on",),
    "partial_payment_share": ("payments",),
    "sellers": ("seller_id",),
    "worst_seller_dbt": ("seller_id", SETTLEMENTS),
    "invoices_issued": (), "amount_issued": (), "volume_change": (), "days_since_first_invoice": (),
}


def feature_sources(feature: FeatureDef) -> tuple[str, ...]:
    """The ledger sources (tables, optional columns, or :data:`SETTLEMENTS`) a feature needs."""
    if feature.view == "market_conditions":
        return ("industry", SETTLEMENTS) if feature.name.startswith("industry_") else (SETTLEMENTS,)
    if feature.view in ("registry_signals", "financials"):
        return (feature.view if feature.view == "financials" else "registry_events",)
    if feature.view == "firmographics":
        return _FIRMOGRAPHIC_SOURCES.get(feature.name, (feature.name,))
    stem = feature.name.rsplit("_", 1)[0] if feature.window_days else feature.name
    return _PAYMENT_SOURCES.get(stem, (SETTLEMENTS,))


def features_without_source(present: dict[str, bool]) -> tuple[str, ...]:
    """The catalogue features that need a source the ledger lacks (``present``: source -> has data)."""
    return tuple(f.name for f in FEATURES if not all(present.get(s, False) for s in feature_sources(f)))


FEATURE_TYPES: dict[str, FeatureType] = {f.name: f.dtype for f in (*FEATURES, *ORDER_FEATURES)}
POLARS_TYPES: dict[FeatureType, type[pl.DataType]] = {"float": pl.Float64, "int": pl.Int64, "string": pl.String}
FEATURES_BY_VIEW: dict[str, tuple[FeatureDef, ...]] = {v: tuple(f for f in FEATURES if f.view == v) for v in VIEW_NAMES}

# One feature service per model: the model's feature contract. Bump the version when the
# list changes, so a trained model names exactly the features it was trained on.
FEATURE_SERVICES: dict[str, tuple[str, tuple[str, ...]]] = {
    # Default (12-month PD): everything known about the buyer.
    "default": ("default_model_v2", VIEW_NAMES),
    # Late payment of one order: behaviour, events, identity and the market it pays in. Filed
    # accounts are yearly and months old, too slow to move a 30-day payment outcome beyond what
    # behaviour shows. v2 added market_conditions (the credit cycle; decision 0015).
    "late": ("late_payment_model_v2", ("payment_behaviour", "registry_signals", "firmographics", "market_conditions")),
}


def features_of_model(model: str) -> tuple[FeatureDef, ...]:
    """The features a model's feature service serves, in catalogue order."""
    _, views = FEATURE_SERVICES[model]
    return tuple(f for f in FEATURES if f.view in views)


def model_input_features(model: str) -> tuple[FeatureDef, ...]:
    """Every input of a model, in the order the model takes them: the late-payment model
    adds the order's features in front of the buyer's."""
    buyer = features_of_model(model)
    return (*ORDER_FEATURES, *buyer) if model == "late" else buyer


def feature_table_markdown() -> str:
    """The feature table of docs/features.md: one row per feature, generated from this catalogue."""
    sources = {v.name: v.source for v in VIEWS} | {"order": "the order (late-payment model only)"}
    lines = [
        "| feature | view | window | type | meaning | source |",
        "|---|---|---|---|---|---|",
    ]
    for f in (*FEATURES, *ORDER_FEATURES):
        window = f"{f.window_days} d" if f.window_days else "as of"
        lines.append(f"| `{f.name}` | {f.view} | {window} | {f.dtype} | {f.meaning} | {sources[f.view]} |")
    return "\n".join(lines)
