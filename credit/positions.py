"""Ledger positions at a date: each (seller, buyer)'s open balance, usual purchases and terms,
and each buyer's knock-out facts (an insolvency filing, a credit event, the oldest invoice
past due, the amount more than 60 days past due). Point in time: nothing dated after the date counts (an invoice issued later, a
payment received later, a registry or credit event dated later).

A disputed invoice does not count towards "past due beyond the maximum extension", nor towards
the amount 60+ days past due that early warnings read: a dispute
is settled between the parties and is a signal of its own (features and alerts weigh it). With
the default label's rule (``DisputeRule.of``) only a dispute raised before the invoice reached
the label's days past due shields it, and only for ``max_dispute_days``: a dispute raised later
is a failing buyer's stalling tactic, and one that never ends does not hide an arrear for good. Nor
does a small unpaid remainder (the default label's ``small_balance``): real exports leave cents
and small items open for years, and one must not hold a buyer for good.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from datetime import date, timedelta
from typing import Any

import polars as pl

from tradecredit.features.config import DefaultDefinition
from tradecredit.features.labels import dispute_shield_until
from tradecredit.policy import CreditFacts
from tradecredit.workspace import Workspace

CENT = 0.005  # an invoice paid to within half a cent is settled


@dataclass(frozen=True)
class DisputeRule:
    """A dispute leaves its invoice out of the arrears when it was raised before the invoice was
    ``before_days`` past due, for ``lasts_days`` after it was raised."""

    before_days: int
    lasts_days: int

    @classmethod
    def of(cls, definition: DefaultDefinition) -> DisputeRule:
        """The default label's rule (features/labels.py); a label that counts disputes: never."""
        return cls(definition.days_past_due, definition.max_dispute_days) if definition.exclude_disputed else cls(0, 0)


def arrears_rules(definition: DefaultDefinition) -> dict[str, Any]:
    """``ledger_positions``' keyword arguments that read arrears as the default label does."""
    return {"small_balance": definition.materiality.small_balance, "disputes": DisputeRule.of(definition)}


@dataclass(frozen=True)
class SellerPosition:
    open_balance: float
    monthly_purchases: float  # amount issued in the 365 days to the date / 12
    usual_terms_days: float | None  # amount-weighted terms of those invoices
    max_days_past_due: int | None
    # amount-weighted days beyond terms of the invoices settled in the 365 days to the date
    # (paid early counts as 0); None when none was settled
    days_beyond_terms: float | None = None


@dataclass(frozen=True)
class LedgerPositions:
    as_of: date
    sellers: dict[tuple[str, str], SellerPosition]  # (seller_id, buyer_id)
    buyers: dict[str, CreditFacts]

    @cached_property
    def purchasing_buyers(self) -> dict[str, frozenset[str]]:
        """Per seller, the buyers that bought from it in the year to the date: one pass over
        the positions, so a book of many sellers is not scanned once per seller."""
        out: dict[str, set[str]] = {}
        for (seller, buyer), position in self.sellers.items():
            if position.monthly_purchases > 0:
                out.setdefault(seller, set()).add(buyer)
        return {seller: frozenset(buyers) for seller, buyers in out.items()}


def _dated(frame: pl.DataFrame | None, column: str, as_of: date) -> pl.DataFrame | None:
    if frame is None or frame.height == 0 or column not in frame.columns:
        return None
    return frame.filter(pl.col(column) <= as_of)


def ledger_positions(tables: dict[str, pl.DataFrame], as_of: date, small_balance: float = 0.0,
                     disputes: DisputeRule | None = None) -> LedgerPositions:
    """Positions on ``as_of`` from the loaded ledger's tables (``invoices``; ``payments``,
    ``registry_events`` and ``credit_events`` when present). An invoice with at most
    ``small_balance`` unpaid is never past due; a disputed one is not while ``disputes`` says so
    (None: any dispute raised by the date, for good)."""
    invoices = tables["invoices"].filter(pl.col("issued_on") <= as_of)
    payments = _dated(tables.get("payments"), "paid_on", as_of)
    paid = (
        payments.group_by("invoice_id").agg(paid=pl.col("amount").sum(), last_paid_on=pl.col("paid_on").max())
        if payments is not None and payments.height
        else pl.DataFrame(schema={"invoice_id": pl.String, "paid": pl.Float64, "last_paid_on": pl.Date})
    )
    disputed = pl.lit(False)
    if "disputed_on" in invoices.columns:
        disputed = pl.col("disputed_on").is_not_null() & (pl.col("disputed_on") <= as_of)
        if disputes is not None:
            disputed &= (pl.lit(as_of) < dispute_shield_until(disputes.before_days, disputes.lasts_days)).fill_null(False)
    inv = invoices.join(paid, on="invoice_id", how="left").with_columns(
        open=(pl.col("amount") - pl.col("paid").fill_null(0.0)).clip(lower_bound=0.0),
        recent=pl.col("issued_on") > as_of - timedelta(days=365),
        terms=(pl.col("due_on") - pl.col("issued_on")).dt.total_days(),
        disputed=disputed,
    ).with_columns(
        settled_late=pl.when((pl.col("open") <= CENT) & (pl.col("last_paid_on") > as_of - timedelta(days=365)))
        .then((pl.col("last_paid_on") - pl.col("due_on")).dt.total_days().clip(lower_bound=0))
        .otherwise(None),
        # counts towards the arrears: neither a small remainder nor shielded by a dispute
        counted=(pl.col("open") > max(CENT, small_balance)) & ~pl.col("disputed"),
    ).with_columns(
        past_due=pl.when(pl.col("counted") & (pl.col("due_on") < as_of))
        .then((pl.lit(as_of) - pl.col("due_on")).dt.total_days())
        .otherwise(None),
    )
    per_seller = inv.group_by("seller_id", "buyer_id").agg(
        open_balance=pl.col("open").filter(pl.col("open") > CENT).sum(),
        issued=pl.col("amount").filter(pl.col("recent")).sum(),
        weighted_terms=(pl.col("terms") * pl.col("amount")).filter(pl.col("recent")).sum(),
        max_days_past_due=pl.col("past_due").max(),
        settled=pl.col("amount").filter(pl.col("settled_late").is_not_null()).sum(),
        weighted_late=(pl.col("settled_late") * pl.col("amount")).filter(pl.col("settled_late").is_not_null()).sum(),
    )
    sellers = {
        (r["seller_id"], r["buyer_id"]): SellerPosition(
            float(r["open_balance"] or 0.0), float(r["issued"] or 0.0) / 12,
            float(r["weighted_terms"]) / float(r["issued"]) if r["issued"] else None,
            None if r["max_days_past_due"] is None else int(r["max_days_past_due"]),
            float(r["weighted_late"]) / float(r["settled"]) if r["settled"] else None,
        )
        for r in per_seller.iter_rows(named=True)
    }
    by_buyer = inv.group_by("buyer_id").agg(d=pl.col("past_due").max(), late=pl.col("open").filter(pl.col("past_due") > 60).sum(),
                                            counted=pl.col("open").filter(pl.col("counted")).sum())
    overdue = {r["buyer_id"]: r["d"] for r in by_buyer.iter_rows(named=True)}
    arrears = {r["buyer_id"]: (float(r["late"] or 0.0), float(r["counted"] or 0.0)) for r in by_buyer.iter_rows(named=True)}
    filings: dict[str, date] = {}
    registry = _dated(tables.get("registry_events"), "event_on", as_of)
    if registry is not None:
        for r in registry.filter(pl.col("event_type") == "insolvency_filing").group_by("buyer_id").agg(on=pl.col("event_on").min()).iter_rows(named=True):
            filings[r["buyer_id"]] = r["on"]
    events: dict[str, tuple[str, date]] = {}
    credit = _dated(tables.get("credit_events"), "event_on", as_of)
    if credit is not None:
        for r in credit.sort("event_on").group_by("buyer_id", maintain_order=True).first().iter_rows(named=True):
            events[r["buyer_id"]] = (r["event_type"], r["event_on"])
    buyers = {
        b: CreditFacts(filings.get(b), events.get(b), None if overdue.get(b) is None else int(overdue[b]),
                       past_due_60_plus=arrears.get(b, (0.0, 0.0))[0], open_counted=arrears.get(b, (0.0, 0.0))[1])
        for b in set(overdue) | set(filings) | set(events)
    }
    return LedgerPositions(as_of, sellers, buyers)


def load_positions(ws: Workspace, as_of: date, small_balance: float = 0.0, disputes: DisputeRule | None = None) -> LedgerPositions:
    """Positions from the workspace's loaded ledger."""
    return ledger_positions(ws.read_ledger().tables, as_of, small_balance, disputes)
