"""Data contract v1 (``docs/data-contract.md``) as code: tables, columns, vocabularies.

The loader validates against these specs and the simulator writes them, so the two
cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnKind = Literal["string", "date", "number", "integer"]

REGISTRY_EVENT_TYPES: tuple[str, ...] = (
    "shareholder_change",
    "executive_change",
    "legal_representative_change",
    "address_change",
    "capital_change",
    "name_change",
    "business_scope_change",
    "lawsuit_filed",
    "court_judgment",
    "enforcement_order",
    "tax_penalty",
    "administrative_penalty",
    "negative_news",
    "insolvency_filing",
)
# An unknown registry event type is kept under this name and counted, never dropped.
OTHER_EVENT_TYPE = "other"

CREDIT_EVENT_TYPES: tuple[str, ...] = ("insolvency", "payment_default", "claim", "write_off")

FINANCIAL_FIELDS: tuple[str, ...] = (
    "revenue",
    "total_assets",
    "total_liabilities",
    "current_assets",
    "current_liabilities",
    "cash",
    "receivables",
    "inventory",
    "equity",
    "net_income",
    "operating_cash_flow",
    "interest_expense",
)


@dataclass(frozen=True)
class Column:
    name: str
    kind: ColumnKind
    required: bool


@dataclass(frozen=True)
class TableSpec:
    name: str
    required: bool
    columns: tuple[Column, ...]
    # Columns whose combination must be unique; later duplicates are rejected.
    key: tuple[str, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def kind_of(self, column: str) -> ColumnKind:
        return next(c.kind for c in self.columns if c.name == column)


def _cols(*specs: tuple[str, ColumnKind, bool]) -> tuple[Column, ...]:
    return tuple(Column(name, kind, required) for name, kind, required in specs)


BUYERS = TableSpec(
    "buyers",
    required=True,
    key=("buyer_id",),
    columns=_cols(
        ("buyer_id", "string", True),
        ("country", "string", False),
        ("industry", "string", False),
        ("legal_form", "string", False),
        ("founded_on", "date", False),
        ("registered_capital", "number", False),
        ("paid_in_capital", "number", False),
        ("employees", "integer", False),
    ),
)
INVOICES = TableSpec(
    "invoices",
    required=True,
    key=("invoice_id",),
    columns=_cols(
        ("invoice_id", "string", True),
        ("buyer_id", "string", True),
        ("seller_id", "string", False),
        ("issued_on", "date", True),
        ("due_on", "date", True),
        ("amount", "number", True),
        ("disputed_on", "date", False),
        ("paid_on", "date", False),
    ),
)
PAYMENTS = TableSpec(
    "payments",
    required=False,
    columns=_cols(
        ("invoice_id", "string", True),
        ("paid_on", "date", True),
        ("amount", "number", True),
    ),
)
REGISTRY_EVENTS = TableSpec(
    "registry_events",
    required=False,
    columns=_cols(
        ("buyer_id", "string", True),
        ("event_on", "date", True),
        ("event_type", "string", True),
        ("detail", "string", False),
    ),
)
FINANCIALS = TableSpec(
    "financials",
    required=False,
    # A restatement of the same period is a new fact known from its own publication date.
    key=("buyer_id", "period_end", "published_on"),
    columns=_cols(
        ("buyer_id", "string", True),
        ("period_end", "date", True),
        ("published_on", "date", False),
        *((f, "number", False) for f in FINANCIAL_FIELDS),
    ),
)
CREDIT_EVENTS = TableSpec(
    "credit_events",
    required=False,
    key=("buyer_id", "event_on", "event_type"),
    columns=_cols(
        ("buyer_id", "string", True),
        ("event_on", "date", True),
        ("event_type", "string", True),
    ),
)

TABLES: dict[str, TableSpec] = {
    t.name: t for t in (BUYERS, INVOICES, PAYMENTS, REGISTRY_EVENTS, FINANCIALS, CREDIT_EVENTS)
}
FILE_SUFFIXES: tuple[str, ...] = (".csv", ".parquet")
