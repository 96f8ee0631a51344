"""Brute-force point-in-time oracle for the buyer features.

Shares no code with ``tradecredit.features.build``: plain Python over lists of dicts, one
(buyer, as-of date) at a time, straight from the definitions in the feature catalogue and
the data contract. Slow on purpose; only for small ledgers.

Money is in whole cents, as in the build (the platform's stated precision).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

CHANGES = {
    "shareholder_change",
    "executive_change",
    "legal_representative_change",
    "address_change",
    "capital_change",
    "name_change",
    "business_scope_change",
}
TURNOVER = {"executive_change", "legal_representative_change"}
SINCE = {"lawsuit_filed": "lawsuit", "enforcement_order": "enforcement_order", "negative_news": "negative_news"}


def _cents(x: float) -> int:
    return int(round(x * 100))


def _interp(x: float, knots: list[tuple[float, float]]) -> float:
    if x <= knots[0][0]:
        return knots[0][1]
    for (x0, y0), (x1, y1) in zip(knots, knots[1:]):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return knots[-1][1]


class Oracle:
    def __init__(self, tables: dict[str, list[dict[str, Any]]], tolerance: float, paydex_knots: list[tuple[float, float]]):
        self.tol = _cents(tolerance)
        self.knots = paydex_knots
        self.buyers = {b["buyer_id"]: b for b in tables["buyers"]}
        self.invoices: dict[str, list[dict]] = defaultdict(list)
        by_id = {}
        for inv in tables["invoices"]:
            row = dict(inv, cents=_cents(inv["amount"]), payments=[])
            self.invoices[inv["buyer_id"]].append(row)
            by_id[inv["invoice_id"]] = row
        for p in tables.get("payments", []):
            by_id[p["invoice_id"]]["payments"].append((p["paid_on"], _cents(p["amount"])))
        self.events: dict[str, list[dict]] = defaultdict(list)
        for e in tables.get("registry_events", []):
            self.events[e["buyer_id"]].append(e)
        self.statements: dict[str, list[dict]] = defaultdict(list)
        for s in tables.get("financials", []):
            self.statements[s["buyer_id"]].append(s)

    # ------------------------------------------------------------------ payments

    def _paid_by(self, inv: dict, d: date) -> int:
        return sum(c for day, c in inv["payments"] if day <= d)

    def _settled_on(self, inv: dict, d: date) -> date | None:
        """First payment day, not after d, on which the total paid reaches the amount."""
        for day in sorted({day for day, _ in inv["payments"]}):
            if day > d:
                return None
            if self._paid_by(inv, day) >= inv["cents"] - self.tol:
                return day
        return None

    def payment_features(self, buyer: str, d: date) -> dict[str, Any]:
        invs = [i for i in self.invoices[buyer] if i["issued_on"] <= d]
        out: dict[str, Any] = {}
        settled = {i["invoice_id"]: self._settled_on(i, d) for i in invs}
        for w in (90, 180, 365):
            def inside(day: date | None) -> bool:
                return day is not None and (d - day).days < w and day <= d

            issued = [i for i in invs if inside(i["issued_on"])]
            done = [i for i in invs if inside(settled[i["invoice_id"]])]
            out[f"invoices_issued_{w}d"] = len(issued)
            out[f"amount_issued_{w}d"] = sum(i["cents"] for i in issued) / 100
            out[f"invoices_settled_{w}d"] = len(done)
            late_days = {i["invoice_id"]: (settled[i["invoice_id"]] - i["due_on"]).days for i in done}
            amount = sum(i["cents"] for i in done)
            if done:
                out[f"late_share_{w}d"] = sum(1 for i in done if late_days[i["invoice_id"]] > 0) / len(done)
                out[f"dbt_weighted_{w}d"] = sum(i["cents"] * max(0, late_days[i["invoice_id"]]) for i in done) / amount
                out[f"dbt_max_{w}d"] = max(max(0, v) for v in late_days.values())
                out[f"paydex_{w}d"] = _interp(sum(i["cents"] * late_days[i["invoice_id"]] for i in done) / amount, self.knots)
            else:
                for k in ("late_share", "dbt_weighted", "dbt_max", "paydex"):
                    out[f"{k}_{w}d"] = None
            out[f"disputes_{w}d"] = sum(1 for i in invs if i.get("disputed_on") and inside(i["disputed_on"]))
            pays = [(c, i["cents"]) for i in invs for day, c in i["payments"] if inside(day)]
            out[f"partial_payment_share_{w}d"] = (sum(1 for c, full in pays if c < full - self.tol) / len(pays)) if pays else None
            out[f"sellers_{w}d"] = len({i["seller_id"] for i in issued})
            worst = None
            for seller in {i["seller_id"] for i in done}:
                mine = [i for i in done if i["seller_id"] == seller]
                v = sum(i["cents"] * max(0, late_days[i["invoice_id"]]) for i in mine) / sum(i["cents"] for i in mine)
                worst = v if worst is None else max(worst, v)
            out[f"worst_seller_dbt_{w}d"] = worst
        a, b = out["dbt_weighted_90d"], out["dbt_weighted_365d"]
        out["dbt_trend_90d_vs_365d"] = a - b if a is not None and b is not None else None
        before = [i for i in invs if 90 <= (d - i["issued_on"]).days < 180]
        out["volume_change_90d"] = (
            (out["amount_issued_90d"] * 100) / sum(i["cents"] for i in before) - 1 if before else None
        )
        open_invs = [i for i in invs if settled[i["invoice_id"]] is None]
        out["open_invoices"] = len(open_invs)
        buckets = {"current": 0, "1_30": 0, "31_60": 0, "61_90": 0, "90_plus": 0}
        for i in open_invs:
            left = i["cents"] - min(i["cents"], self._paid_by(i, d))
            late = (d - i["due_on"]).days
            key = "current" if late <= 0 else "1_30" if late <= 30 else "31_60" if late <= 60 else "61_90" if late <= 90 else "90_plus"
            buckets[key] += left
        total = sum(buckets.values())
        out["open_balance"] = total / 100
        for k, v in buckets.items():
            out[f"open_{k}"] = v / 100
        out["overdue_share"] = (total - buckets["current"]) / total if total > 0 else None
        out["dso_90d"] = (total / 100) / out["amount_issued_90d"] * 90 if out["invoices_issued_90d"] else None
        pay_days = [day for i in invs for day, _ in i["payments"] if day <= d]
        out["days_since_last_payment"] = (d - max(pay_days)).days if pay_days else None
        out["days_since_first_invoice"] = (d - min(i["issued_on"] for i in invs)).days if invs else None
        return out

    # ------------------------------------------------------------------ registry

    def registry_features(self, buyer: str, d: date, types: list[str]) -> dict[str, Any]:
        known = [e for e in self.events[buyer] if e["event_on"] <= d]
        out: dict[str, Any] = {}
        for w in (90, 365):
            recent = [e for e in known if (d - e["event_on"]).days < w]
            for t in types:
                out[f"{t}_{w}d"] = sum(1 for e in recent if e["event_type"] == t)
            out[f"registry_changes_{w}d"] = sum(1 for e in recent if e["event_type"] in CHANGES)
            out[f"executive_turnover_{w}d"] = sum(1 for e in recent if e["event_type"] in TURNOVER)
        for t, short in SINCE.items():
            days = [e["event_on"] for e in known if e["event_type"] == t]
            out[f"days_since_{short}"] = (d - max(days)).days if days else None
        return out

    # ------------------------------------------------------------------ firmographics and financials

    def firmographic_features(self, buyer: str, d: date) -> dict[str, Any]:
        b = self.buyers[buyer]
        reg, paid = b.get("registered_capital"), b.get("paid_in_capital")
        return {
            "company_age_years": (d - b["founded_on"]).days / 365.25 if b.get("founded_on") else None,
            "registered_capital": reg,
            "paid_in_ratio": paid / reg if reg and paid is not None else None,
            "employees": b.get("employees"),
            "industry": b.get("industry"),
            "country": b.get("country"),
            "legal_form": b.get("legal_form"),
        }

    def financial_features(self, buyer: str, d: date) -> dict[str, Any]:
        known = [s for s in self.statements[buyer] if s["published_on"] <= d]
        if not known:
            return {"has_statement": 0} | dict.fromkeys(
                ["days_since_statement", "revenue", "equity", "debt_ratio", "current_ratio", "cash_ratio", "net_margin", "roa", "revenue_growth"]
            )
        cur = max(known, key=lambda s: (s["period_end"], s["published_on"]))
        older = [s for s in known if s["period_end"] < cur["period_end"]]
        prev = max(older, key=lambda s: (s["period_end"], s["published_on"])) if older else None

        def ratio(a: float | None, b: float | None) -> float | None:
            return a / b if a is not None and b not in (None, 0) else None

        growth = ratio(cur["revenue"], prev["revenue"]) if prev else None
        return {
            "has_statement": 1,
            "days_since_statement": (d - cur["published_on"]).days,
            "revenue": cur["revenue"],
            "equity": cur["equity"],
            "debt_ratio": ratio(cur["total_liabilities"], cur["total_assets"]),
            "current_ratio": ratio(cur["current_assets"], cur["current_liabilities"]),
            "cash_ratio": ratio(cur["cash"], cur["current_liabilities"]),
            "net_margin": ratio(cur["net_income"], cur["revenue"]),
            "roa": ratio(cur["net_income"], cur["total_assets"]),
            "revenue_growth": growth - 1 if growth is not None else None,
        }

    # ------------------------------------------------------------------ market

    def market_features(self, buyer: str, d: date, industry_prior_invoices: float) -> dict[str, Any]:
        """Every buyer's invoices settled in the window, and those of the buyer's industry,
        the industry's figure with k pseudo-invoices at the book's."""
        industry, k = self.buyers[buyer].get("industry"), industry_prior_invoices
        out: dict[str, Any] = {}
        for w in (90, 365):
            done = [
                (i, (s - i["due_on"]).days)
                for invs in self.invoices.values() for i in invs
                if i["issued_on"] <= d and (s := self._settled_on(i, d)) is not None and (d - s).days < w
            ]
            mine = [(i, late) for i, late in done if industry is not None and self.buyers[i["buyer_id"]].get("industry") == industry]

            def late_share(rows: list) -> float | None:
                return sum(1 for _, late in rows if late > 0) / len(rows) if rows else None

            def dbt(rows: list) -> float | None:
                amount = sum(i["cents"] for i, _ in rows)
                return sum(i["cents"] * max(0, late) for i, late in rows) / amount if rows and amount else None

            book_late, book_dbt = late_share(done), dbt(done)
            out[f"market_late_share_{w}d"], out[f"market_dbt_weighted_{w}d"] = book_late, book_dbt
            for name, own, book in (("industry_late_share", late_share(mine), book_late), ("industry_dbt_weighted", dbt(mine), book_dbt)):
                n = len(mine)
                if industry is None or book is None or n + k == 0:
                    out[f"{name}_{w}d"] = None
                else:
                    out[f"{name}_{w}d"] = ((own or 0.0) * n + book * k) / (n + k)
        return out

    def features(self, buyer: str, d: date, registry_types: list[str], industry_prior_invoices: float) -> dict[str, Any]:
        return (
            self.payment_features(buyer, d)
            | self.registry_features(buyer, d, registry_types)
            | self.firmographic_features(buyer, d)
            | self.financial_features(buyer, d)
            | self.market_features(buyer, d, industry_prior_invoices)
        )


def mismatches(expected: dict[str, Any], actual: dict[str, Any], names: list[str]) -> list[str]:
    """Feature names whose values differ (floats to 1e-9 relative, 1e-6 absolute)."""
    bad = []
    for name in names:
        e, a = expected[name], actual[name]
        if e is None or a is None:
            if e is not a and not (e is None and a is None):
                bad.append(f"{name}: expected {e!r}, got {a!r}")
        elif isinstance(e, str) or isinstance(a, str):
            if e != a:
                bad.append(f"{name}: expected {e!r}, got {a!r}")
        elif abs(float(e) - float(a)) > max(1e-6, 1e-9 * abs(float(e))):
            bad.append(f"{name}: expected {e!r}, got {a!r}")
    return bad
