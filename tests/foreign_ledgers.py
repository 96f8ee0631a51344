"""Hand-made ledgers the built-in simulator did not write, for the foreign-ledger tests.

Each generator has its own small mechanism, deliberately unlike ``tradecredit/simulator.py``:
a buyer is healthy, a chronic slow payer or a failing buyer; failing buyers pay later and
later, then stop paying at a failure date that the generator records as its truth. Two shapes:

- :func:`write_invoice_only_export`: what an accounting system exports: a customer list and
  an accounts-receivable file with its own column names and day-first dates, paid dates only
  (no payments table, sellers, disputes, registry, financials or credit events), and a
  mapping file for ``tradecredit load --mapping``.
- :func:`write_disputed_ledger`: a contract ledger with payments (some partial), several
  sellers, credit events for the failures, and the mess that fools a days-past-due rule:
  healthy buyers whose disputed invoices are paid months late, chronic slow payers, small
  invoices nobody ever pays and short payments whose residue stays open.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

START = date(2023, 1, 1)


@dataclass(frozen=True)
class ForeignLedger:
    folder: Path
    mapping: Path | None  # the --mapping file, if the export needs one
    failures: dict[str, date]  # buyer -> the day it stopped paying for good (the generator's truth)
    buyers: int
    data_end: date


@dataclass(frozen=True)
class _Invoice:
    invoice_id: str
    buyer_id: str
    seller_id: str
    issued_on: date
    due_on: date
    amount: float
    disputed_on: date | None
    payments: tuple[tuple[date, float], ...]  # (paid_on, amount); empty: never paid


def _book(rng: np.random.Generator, buyers: int, months: int, failing_share: float, slow_share: float,
          messy: bool) -> tuple[list[_Invoice], dict[str, date], date]:
    data_end = START + timedelta(days=round(months * 30.44))
    days = (data_end - START).days
    invoices: list[_Invoice] = []
    failures: dict[str, date] = {}
    for b in range(buyers):
        buyer = f"C{b:04d}"
        kind = rng.choice(["failing", "slow", "healthy"], p=[failing_share, slow_share, 1 - failing_share - slow_share])
        fail_on = START + timedelta(days=int(rng.integers(120, days - 30))) if kind == "failing" else None
        if fail_on is not None:
            failures[buyer] = fail_on
        onboard = int(rng.integers(0, days // 3)) if rng.random() < 0.3 else 0
        per_month = rng.gamma(2.0, 1.5) + 0.5
        terms = int(rng.choice([14, 30, 45, 60]))
        size = rng.lognormal(7.5, 0.8)
        sellers = [f"S{int(s)}" for s in rng.choice(6, size=int(rng.integers(1, 4)), replace=False)]
        day = onboard
        while True:
            day += int(rng.exponential(30.44 / per_month)) + 1
            issued = START + timedelta(days=day)
            if issued > data_end or (fail_on is not None and issued > fail_on + timedelta(days=20)):
                break
            amount = round(float(size * rng.lognormal(0, 0.5)), 2)
            small_charge = messy and rng.random() < 0.03
            if small_charge:  # a small charge (freight, a fee) nobody ever pays
                amount = round(float(rng.uniform(20, 120)), 2)
            due = issued + timedelta(days=terms)
            disputed_on = None
            if kind == "failing" and issued >= fail_on - timedelta(days=terms):
                late = None  # the failure leaves it unpaid
            elif kind == "failing" and (fail_on - issued).days < 270:
                # Failing buyers stretch payments in their last months.
                late = int(rng.integers(5, 60))
            elif kind == "slow":
                late = int(rng.integers(25, 80))  # chronically slow, never failing
            else:
                late = int(rng.integers(-5, 3)) if rng.random() < 0.7 else int(rng.integers(3, 25))
            if messy and late is not None:
                if rng.random() < 0.06:  # a dispute: held for months, then paid in full
                    disputed_on = issued + timedelta(days=int(rng.integers(3, terms + 10)))
                    late = int(rng.integers(100, 220))
                elif small_charge:
                    late = None
            payments: tuple[tuple[date, float], ...] = ()
            if late is not None:
                paid = max(due + timedelta(days=late), issued)
                if messy and rng.random() < 0.1 and (paid - issued).days > 10:
                    first = round(amount * float(rng.uniform(0.3, 0.7)), 2)
                    payments = ((issued + timedelta(days=(paid - issued).days // 2), first), (paid, round(amount - first, 2)))
                elif messy and rng.random() < 0.05:
                    # Short-paid: bank charges or a price difference left open for good.
                    residual = min(round(amount * float(rng.uniform(0.005, 0.03)), 2), 50.0)
                    payments = ((paid, round(amount - residual, 2)),)
                else:
                    payments = ((paid, amount),)
                payments = tuple(p for p in payments if p[0] <= data_end)
            if disputed_on is not None and disputed_on > data_end:
                disputed_on = None
            invoices.append(_Invoice(f"INV{len(invoices):06d}", buyer, rng.choice(sellers), issued, due, amount, disputed_on, payments))
    return invoices, failures, data_end


def _write(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def write_invoice_only_export(folder: Path, buyers: int = 150, months: int = 30, seed: int = 11) -> ForeignLedger:
    """An accounts-receivable export: ``customers.csv`` and ``ar_export.csv`` (day-first dates,
    one paid date per invoice, columns named by the accounting system), and ``mapping.yaml``."""
    rng = np.random.default_rng(seed)
    invoices, failures, data_end = _book(rng, buyers, months, failing_share=0.08, slow_share=0.15, messy=False)
    folder.mkdir(parents=True, exist_ok=True)
    fmt = "%d/%m/%Y"
    _write(folder / "customers.csv", ["Customer", "Customer name"], [[f"C{b:04d}", f"Customer {b} Ltd"] for b in range(buyers)])
    _write(
        folder / "ar_export.csv",
        ["Document No", "Customer", "Posting Date", "Due Date", "Amount (EUR)", "Closed On", "Status"],
        [
            [i.invoice_id, i.buyer_id, i.issued_on.strftime(fmt), i.due_on.strftime(fmt), f"{i.amount:.2f}",
             i.payments[-1][0].strftime(fmt) if i.payments else "", "closed" if i.payments else "open"]
            for i in invoices
        ],
    )
    mapping = folder.parent / f"{folder.name}-mapping.yaml"
    mapping.write_text(
        f"""date_format: "{fmt}"
tables:
  buyers:
    file: customers.csv
    columns: {{Customer: buyer_id}}
  invoices:
    file: ar_export.csv
    columns: {{"Document No": invoice_id, Customer: buyer_id, "Posting Date": issued_on, "Due Date": due_on,
               "Amount (EUR)": amount, "Closed On": paid_on}}
""",
        encoding="utf-8",
    )
    return ForeignLedger(folder, mapping, failures, buyers, data_end)


def write_disputed_ledger(folder: Path, buyers: int = 200, months: int = 40, seed: int = 23,
                          with_credit_events: bool = True) -> ForeignLedger:
    """A contract ledger with disputes, slow payers, small unpaid invoices, partial payments
    and (by default) a credit event for each failure, 45-120 days after it stopped paying."""
    rng = np.random.default_rng(seed)
    invoices, failures, data_end = _book(rng, buyers, months, failing_share=0.07, slow_share=0.2, messy=True)
    folder.mkdir(parents=True, exist_ok=True)
    countries = ["DE", "FR", "NL", "PL"]
    _write(folder / "buyers.csv", ["buyer_id", "country", "industry"],
           [[f"C{b:04d}", countries[b % 4], "CGFH"[b % 4]] for b in range(buyers)])
    _write(
        folder / "invoices.csv",
        ["invoice_id", "buyer_id", "seller_id", "issued_on", "due_on", "amount", "disputed_on"],
        [[i.invoice_id, i.buyer_id, i.seller_id, i.issued_on, i.due_on, f"{i.amount:.2f}", i.disputed_on or ""] for i in invoices],
    )
    _write(folder / "payments.csv", ["invoice_id", "paid_on", "amount"],
           [[i.invoice_id, d, f"{a:.2f}"] for i in invoices for d, a in i.payments])
    if with_credit_events:
        events = []
        for buyer, failed in sorted(failures.items()):
            on = failed + timedelta(days=int(rng.integers(45, 120)))
            if on <= data_end:
                events.append([buyer, on, "insolvency" if rng.random() < 0.4 else "payment_default"])
        _write(folder / "credit_events.csv", ["buyer_id", "event_on", "event_type"], events)
    return ForeignLedger(folder, None, failures, buyers, data_end)


def agreement(found: set[str], truth: set[str]) -> tuple[float, float]:
    """Precision (share of ``found`` in ``truth``) and recall (share of ``truth`` found)."""
    hits = len(found & truth)
    return hits / max(len(found), 1), hits / max(len(truth), 1)
