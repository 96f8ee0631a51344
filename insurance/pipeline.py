"""The insurance stages the command line, the service and monitoring call: a seller's policy
quote (and a what-if on it) from the latest monitoring run's PDs, the ledger's positions and
the limit register; and the pricing backtest, which quotes at a past date and compares with
the insured losses of the next 12 months.

PDs come from the monitoring run dated at or before the quote date (``tradecredit monitor``),
so a quote prices what the portfolio view and the alerts of that run saw.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

from tradecredit.config import PlatformConfig
from tradecredit.credit.positions import LedgerPositions, arrears_rules, ledger_positions
from tradecredit.credit.register import LimitRegister
from tradecredit.errors import MissingArtefact, StageError
from tradecredit.pricing import InsuredBuyer, PolicyQuote, lgd_of, quote_policy, simulate_year, simulated_losses, stressed
from tradecredit.workspace import Workspace

YEAR = timedelta(days=365)


class QuoteError(StageError):
    """A quote cannot be made as asked; ``status`` and ``code`` are what the service answers."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(frozen=True)
class AddedBuyer:
    """A buyer a what-if adds: its PD comes from the run's scores; turnover and terms from the
    seller's ledger when it trades with the buyer, else as given."""

    buyer_id: str
    annual_turnover: float | None = None
    terms_days: float | None = None


@dataclass(frozen=True)
class WhatIf:
    add: tuple[AddedBuyer, ...] = ()
    remove: tuple[str, ...] = ()
    terms_days: float | None = None  # every insured buyer's terms set to this

    @property
    def empty(self) -> bool:
        return not self.add and not self.remove and self.terms_days is None


@dataclass(frozen=True)
class Excluded:
    buyer_id: str
    reason: str


@dataclass(frozen=True)
class SellerQuote:
    seller_id: str
    as_of: date
    scores_as_of: date
    quote: PolicyQuote
    stressed: PolicyQuote
    excluded: tuple[Excluded, ...]
    baseline: PolicyQuote | None = None  # a what-if's quote before the change
    what_if: WhatIf | None = None

    @property
    def stressed_loss_ratio_unrepriced(self) -> float:
        """The stressed expected loss against today's premium: the loss ratio if not repriced."""
        return self.stressed.expected_loss / self.quote.premium if self.quote.premium > 0 else math.nan

    def to_json(self) -> dict[str, Any]:
        out = {
            "seller_id": self.seller_id, "as_of": self.as_of.isoformat(), "scores_as_of": self.scores_as_of.isoformat(),
            "quote": _quote_json(self.quote),
            "stress": {**_quote_json(self.stressed, contributions=False), "loss_ratio_if_not_repriced": self.stressed_loss_ratio_unrepriced},
            "excluded": [asdict(e) for e in self.excluded],
        }
        if self.baseline is not None and self.what_if is not None:
            out["what_if"] = {
                "add": [asdict(a) for a in self.what_if.add], "remove": list(self.what_if.remove), "terms_days": self.what_if.terms_days,
                "before": _quote_json(self.baseline, contributions=False),
                "premium_change": self.quote.premium - self.baseline.premium,
                "premium_rate_change": self.quote.premium_rate - self.baseline.premium_rate,
            }
        return out


def _quote_json(q: PolicyQuote, contributions: bool = True) -> dict[str, Any]:
    out = {k: v for k, v in asdict(q).items() if k != "contributions"}
    out["loss_ratio_interval"] = list(q.loss_ratio_interval)
    if contributions:
        out["contributions"] = [{**asdict(c), "reasons": list(c.reasons)} for c in sorted(q.contributions, key=lambda c: -c.premium)]
    return out


def scores_at(ws: Workspace, as_of: date | None) -> tuple[date, pl.DataFrame]:
    """The latest monitoring run's scores dated at or before ``as_of`` (any date: the latest)."""
    files = [f for f in ws.run_score_files() if as_of is None or f.parent.name <= as_of.isoformat()]
    if not files:
        when = f" dated on or before {as_of}" if as_of else ""
        raise MissingArtefact(f"no monitoring run{when} to take PDs from: run `tradecredit monitor --as-of DATE` first")
    return date.fromisoformat(files[-1].parent.name), pl.read_parquet(files[-1])


def firm_attributes(tables: dict[str, pl.DataFrame]) -> dict[str, tuple[str | None, str | None]]:
    """buyer -> (industry, country), each None where the ledger does not say."""
    buyers = tables.get("buyers")
    if buyers is None:
        return {}
    pick = [pl.col(c) if c in buyers.columns else pl.lit(None, pl.String).alias(c) for c in ("industry", "country")]
    return {r["buyer_id"]: (r["industry"], r["country"]) for r in buyers.select("buyer_id", *pick).iter_rows(named=True)}


def insured_buyers(
    cfg: PlatformConfig, seller_id: str, positions: LedgerPositions, scores: pl.DataFrame, lines: dict[str, float],
    firms: dict[str, tuple[str | None, str | None]], what_if: WhatIf | None = None,
) -> tuple[list[InsuredBuyer], list[Excluded]]:
    """The buyers a seller's policy covers on the positions' date: those it sold to in the year
    before, scored, not knocked out (an insolvency filing or a credit event is not insurable),
    each capped by its granted line (``lines``) or the discretionary limit."""
    ins = cfg.policy.insurance
    by_buyer = {r["buyer_id"]: r for r in scores.select("buyer_id", "pd_12m", "grade", "tier").iter_rows(named=True)}
    what_if = what_if or WhatIf()
    wanted = set(positions.purchasing_buyers.get(seller_id, ()))
    added = {a.buyer_id: a for a in what_if.add}
    unknown = sorted(set(what_if.remove) - wanted)
    if unknown:
        raise QuoteError(400, "invalid_field", f"cannot remove {', '.join(unknown)}: not insured buyers of seller {seller_id}")
    out, excluded = [], []
    for buyer in sorted((wanted - set(what_if.remove)) | set(added)):
        position = positions.sellers.get((seller_id, buyer))
        extra = added.get(buyer)
        facts = positions.buyers.get(buyer)
        score = by_buyer.get(buyer)
        if facts is not None and (facts.insolvency_filed_on is not None or facts.credit_event is not None):
            what = "an insolvency filing" if facts.insolvency_filed_on is not None else f"a credit event ({facts.credit_event[0]})"  # type: ignore[index]
            excluded.append(Excluded(buyer, f"not insurable: {what}"))
            continue
        if score is None and extra is not None:
            raise QuoteError(404, "unknown_buyer", f"buyer {buyer} has no PD in the monitoring run: it cannot be added")
        if score is None:
            excluded.append(Excluded(buyer, "no PD: the monitoring run did not score this buyer (inactive, or no features)"))
            continue
        turnover = extra.annual_turnover if extra and extra.annual_turnover is not None else (position.monthly_purchases * ins.turnover_months if position else None)
        if not turnover:
            raise QuoteError(400, "invalid_field", f"buyer {buyer} has no purchases from seller {seller_id}: give its annual turnover (BUYER:TURNOVER[:TERMS])")
        terms = what_if.terms_days or (extra.terms_days if extra and extra.terms_days else None) or (position.usual_terms_days if position else None) \
            or cfg.policy.limits.need.default_terms_days
        line = lines.get(buyer)
        if line is not None and line > 0:
            limit, source = line, "register"
        elif ins.discretionary_limit > 0:
            limit, source = ins.discretionary_limit, "discretionary"
        else:
            excluded.append(Excluded(buyer, "no granted line and no discretionary limit"))
            continue
        industry, country = firms.get(buyer, (None, None))
        out.append(InsuredBuyer(
            buyer_id=buyer, pd_12m=float(score["pd_12m"]), lgd=lgd_of(country, cfg.policy), annual_turnover=float(turnover), terms_days=float(terms),
            days_beyond_terms=float(position.days_beyond_terms or 0.0) if position else 0.0, limit=float(limit), limit_source=source,
            grade=int(score["grade"]), tier=str(score["tier"]), industry=industry, country=country,
        ))
    return out, excluded


def granted_lines(register: LimitRegister | None, seller_id: str | None, on: date) -> dict[tuple[str, str], float]:
    """(seller, buyer) -> the granted line on ``on`` (an override's limit when one is in force)."""
    if register is None:
        return {}
    out = {}
    for state in register.states(on, seller_id=seller_id):
        granted = state.override.granted if state.override is not None and state.override.granted is not None else state.granted
        if state.has_line or state.override is not None:
            out[(state.seller_id, state.buyer_id)] = float(granted or 0.0)
    return out


def quote_seller(
    cfg: PlatformConfig, ws: Workspace, seller_id: str, as_of: date | None = None, what_if: WhatIf | None = None,
    register: LimitRegister | None = None, tables: dict[str, pl.DataFrame] | None = None,
) -> SellerQuote:
    """A seller's policy quote on ``as_of`` (default: the latest monitoring run's date), with
    the stressed quote, and a what-if against the quote before it."""
    scored_on, scores = scores_at(ws, as_of)
    day = as_of or scored_on
    tables = tables if tables is not None else ws.read_ledger().tables
    if seller_id not in set(tables["invoices"]["seller_id"].unique().to_list()):
        raise QuoteError(404, "unknown_seller", f"no seller '{seller_id}' in the loaded ledger")
    positions = ledger_positions(tables, day, **arrears_rules(cfg.labels.default))
    lines = {b: v for (s, b), v in granted_lines(register, seller_id, day).items() if s == seller_id}
    firms = firm_attributes(tables)
    buyers, excluded = insured_buyers(cfg, seller_id, positions, scores, lines, firms, what_if)
    if not buyers:
        raise QuoteError(409, "nothing_to_insure", f"seller {seller_id} has no insurable buyer on {day} ({len(excluded)} excluded)")
    ins = cfg.policy.insurance
    quote = quote_policy(seller_id, buyers, ins)
    baseline = None
    if what_if is not None and not what_if.empty:
        before, _ = insured_buyers(cfg, seller_id, positions, scores, lines, firms)
        baseline = quote_policy(seller_id, before, ins) if before else None
    shocked = replace(quote_policy(seller_id, stressed(buyers, ins), ins), pd_multiplier=ins.stress.pd_multiplier)
    return SellerQuote(seller_id, day, scored_on, quote, shocked, tuple(excluded), baseline, what_if)


def save_quote(ws: Workspace, quote: SellerQuote) -> None:
    path = ws.policy_quote(quote.seller_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(quote.to_json(), indent=2), encoding="utf-8")


def policy_rates(ws: Workspace) -> dict[str, float]:
    """seller -> the premium rate of its saved quote (what the service prices orders at)."""
    out = {}
    for path in ws.policy_quotes():
        saved = json.loads(path.read_text(encoding="utf-8"))
        out[saved["seller_id"]] = float(saved["quote"]["premium_rate"])
    return out


# ----------------------------------------------------------------------------- the backtest


@dataclass(frozen=True)
class SegmentOutcome:
    segment: str  # a seller id, a tier, or "total"
    buyers: int
    defaults: int
    premium: float
    expected_loss: float
    realised_loss: float
    expected_loss_ratio: float
    realised_loss_ratio: float
    interval: tuple[float, float]  # 5%-95% of the loss ratio the quote expected (simulated years)
    within_interval: bool


@dataclass(frozen=True)
class PricingBacktest:
    quoted_on: date
    window_end: date
    sellers: list[SegmentOutcome]
    tiers: list[SegmentOutcome]
    total: SegmentOutcome
    excluded: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"quoted_on": self.quoted_on.isoformat(), "window_end": self.window_end.isoformat(), "excluded": self.excluded, "notes": self.notes,
                "total": asdict(self.total), "tiers": [asdict(t) for t in self.tiers], "sellers": [asdict(s) for s in self.sellers]}


def open_balances_at(tables: dict[str, pl.DataFrame], when: pl.DataFrame) -> pl.DataFrame:
    """Each (seller_id, buyer_id)'s open balance on its buyer's date in ``when`` (buyer_id, on):
    invoices issued by then less payments received by then."""
    invoices = tables["invoices"].join(when, on="buyer_id", how="inner").filter(pl.col("issued_on") <= pl.col("on"))
    payments = tables.get("payments")
    if payments is not None and payments.height:
        paid = payments.join(invoices.select("invoice_id", "on"), on="invoice_id", how="inner").filter(
            pl.col("paid_on") <= pl.col("on")
        ).group_by("invoice_id").agg(paid=pl.col("amount").sum())
        invoices = invoices.join(paid, on="invoice_id", how="left")
    else:
        invoices = invoices.with_columns(paid=pl.lit(0.0))
    return invoices.with_columns(open=(pl.col("amount") - pl.col("paid").fill_null(0.0)).clip(lower_bound=0.0)).group_by(
        "seller_id", "buyer_id"
    ).agg(open_balance=pl.col("open").sum())


def _outcome(segment: str, buyers: int, defaults: int, realised: float, premium: float, expected: float, paid_draws: np.ndarray) -> SegmentOutcome:
    if premium <= 0:
        return SegmentOutcome(segment, buyers, defaults, premium, expected, realised, math.nan, math.nan, (math.nan, math.nan), False)
    low, high = float(np.quantile(paid_draws, 0.05)) / premium, float(np.quantile(paid_draws, 0.95)) / premium
    ratio = realised / premium
    return SegmentOutcome(segment, buyers, defaults, premium, expected, realised, expected / premium, ratio, (low, high), bool(low <= ratio <= high))


def pricing_backtest(cfg: PlatformConfig, ws: Workspace, quoted_on: date, tables: dict[str, pl.DataFrame], spells: pl.DataFrame,
                     register: LimitRegister | None = None) -> PricingBacktest:
    """Every seller's policy quoted on ``quoted_on`` (that monitoring run's PDs) against the
    insured losses of the next 12 months: each default's LGD x the seller's open balance at
    default, capped by the buyer's insured limit, less the per-buyer deductible, times the
    insured share; a seller's year less its aggregate first loss, capped at the maximum
    liability. The interval is the quote's own: 5%-95% of its simulated years."""
    ins = cfg.policy.insurance
    scored_on, scores = scores_at(ws, quoted_on)
    if scored_on != quoted_on:
        raise StageError(f"no monitoring run on {quoted_on} to backtest (the latest before it is {scored_on})")
    window_end = quoted_on + YEAR
    positions = ledger_positions(tables, quoted_on, **arrears_rules(cfg.labels.default))
    lines = granted_lines(register, None, quoted_on)
    firms = firm_attributes(tables)
    defaulted = spells.filter((pl.col("default_on") > quoted_on) & (pl.col("default_on") <= window_end)).group_by("buyer_id").agg(on=pl.col("default_on").min())
    balances = {(r["seller_id"], r["buyer_id"]): float(r["open_balance"]) for r in open_balances_at(tables, defaulted).iter_rows(named=True)}
    default_day = dict(defaulted.iter_rows())
    sellers = sorted(positions.purchasing_buyers)
    lines_by_seller: dict[str, dict[str, float]] = {}
    for (s, b), v in lines.items():
        lines_by_seller.setdefault(s, {})[b] = v
    seller_rows, all_pairs, excluded = [], [], 0
    for seller in sellers:
        buyers, out = insured_buyers(cfg, seller, positions, scores, lines_by_seller.get(seller, {}), firms)
        excluded += len(out)
        if not buyers:
            continue
        quote = quote_policy(seller, buyers, ins)
        pairs = []
        for b in buyers:
            loss = 0.0
            if b.buyer_id in default_day:
                exposed = min(balances.get((seller, b.buyer_id), 0.0), b.limit)
                loss = max(0.0, b.lgd * exposed - ins.per_buyer_deductible) * ins.insured_share
            pairs.append((b, quote.contribution(b.buyer_id).premium, loss))  # type: ignore[union-attr]
        realised = min(max(0.0, sum(p[2] for p in pairs) - ins.aggregate_first_loss), quote.max_liability)
        draws = np.minimum(np.maximum(simulated_losses(buyers, ins) - ins.aggregate_first_loss, 0.0), quote.max_liability)
        defaults = sum(1 for b in buyers if b.buyer_id in default_day)
        seller_rows.append(_outcome(seller, len(buyers), defaults, realised, quote.premium, quote.expected_loss, draws))
        all_pairs += [(seller, *p) for p in pairs]
    if not all_pairs:
        raise StageError(f"no insurable buyer on {quoted_on}: nothing to backtest")
    tiers = []
    for tier in ("low", "medium", "high"):
        chosen = [(b, prem, loss) for _, b, prem, loss in all_pairs if b.tier == tier]
        if chosen:
            tiers.append(_segment(tier, chosen, default_day, ins))
    total = _segment("total", [(b, prem, loss) for _, b, prem, loss in all_pairs], default_day, ins)
    notes = [f"tiers and the total are before each seller's aggregate first loss ({ins.aggregate_first_loss:,.0f}); sellers after it"] if ins.aggregate_first_loss else []
    return PricingBacktest(quoted_on, window_end, seller_rows, tiers, total, excluded, notes)


def _segment(name: str, pairs: list[tuple[InsuredBuyer, float, float]], default_day: dict[str, date], ins: Any) -> SegmentOutcome:
    """A tier or the total, before the sellers' aggregate deductibles; its interval from one
    simulation over the segment's buyers, where a buyer insured by two sellers defaults once
    and costs both sellers' losses."""
    pds: dict[str, float] = {}
    losses: dict[str, float] = {}
    for b, _, _ in pairs:
        pds[b.buyer_id] = b.pd_12m
        losses[b.buyer_id] = losses.get(b.buyer_id, 0.0) + b.insured_loss(ins)
    ids = sorted(pds)
    draws = simulate_year(np.array([pds[i] for i in ids]), np.array([losses[i] for i in ids]), ins.simulations)
    premium = sum(p for _, p, _ in pairs)
    expected = sum(b.pd_12m * b.insured_loss(ins) for b, _, _ in pairs)
    return _outcome(name, len(ids), sum(1 for i in ids if i in default_day), sum(loss for _, _, loss in pairs), premium, expected, draws)


def matured_run(ws: Workspace, data_end: date) -> date | None:
    """The latest monitoring run whose next 12 months lie within the data."""
    runs = [date.fromisoformat(f.parent.name) for f in ws.run_score_files()]
    matured = [d for d in runs if d + YEAR <= data_end]
    return matured[-1] if matured else None


def backtest_pricing(cfg: PlatformConfig, ws: Workspace, quoted_on: date | None = None, register: LimitRegister | None = None,
                     tables: dict[str, pl.DataFrame] | None = None) -> PricingBacktest:
    """The pricing backtest of ``quoted_on`` (default: the latest run whose year has matured),
    written to ``WORKSPACE/insurance/backtest.json``."""
    from tradecredit.features.labels import default_spells

    tables = tables if tables is not None else ws.read_ledger().tables
    data_end = ws.built_as_of()
    day = quoted_on or matured_run(ws, data_end)
    if day is None:
        raise StageError(f"no monitoring run a year or more before the data's end ({data_end}): run `tradecredit monitor --as-of DATE` "
                         f"with a date on or before {data_end - YEAR}")
    if day + YEAR > data_end:
        raise StageError(f"the year after {day} is not in the data yet (it ends {data_end}): backtest a date on or before {data_end - YEAR}")
    spells = default_spells(tables, cfg.labels.default, data_end).spells
    result = pricing_backtest(cfg, ws, day, tables, spells, register)
    ws.insurance.mkdir(parents=True, exist_ok=True)
    (ws.insurance / "backtest.json").write_text(json.dumps(result.to_json(), indent=2), encoding="utf-8")
    return result


def describe_quote(q: SellerQuote, top: int = 10) -> list[str]:
    p, s = q.quote, q.stressed
    lines = [
        f"Policy quote for seller {q.seller_id} on {q.as_of} (PDs of the monitoring run of {q.scores_as_of}):",
        f"  {p.buyers} insured buyers, insured turnover {p.insured_turnover:,.0f}, exposure at default {p.exposure_at_default:,.0f}, "
        f"insured share {p.insured_share:.0%}",
        f"  expected insured loss {p.expected_loss:,.0f}; premium rate {p.premium_rate:.3%}{' (the floor)' if p.floor_applied else ''}, "
        f"premium {p.premium:,.0f} ({p.premium / p.expected_loss:.2f}x the expected loss)" if p.expected_loss > 0 else
        f"  expected insured loss 0; premium rate {p.premium_rate:.3%}, premium {p.premium:,.0f}",
        f"  loss ratio {p.loss_ratio:.0%} expected, 90% of years between {p.loss_ratio_interval[0]:.0%} and {p.loss_ratio_interval[1]:.0%}; "
        f"a 1-in-100 year's insured losses {p.loss_quantiles['p99']:,.0f}",
        f"  maximum liability {p.max_liability:,.0f}; aggregate first loss {p.aggregate_first_loss:,.0f}; per-buyer deductible "
        f"{p.per_buyer_deductible:,.0f}; discretionary limit {p.discretionary_limit:,.0f}",
        f"  stress (PDs x {s.pd_multiplier} unless a sector or country names its own): premium needed {s.premium:,.0f} (rate {s.premium_rate:.3%}); "
        f"loss ratio {q.stressed_loss_ratio_unrepriced:.0%} if not repriced",
    ]
    if q.baseline is not None:
        b = q.baseline
        lines.append(f"  what-if: premium {b.premium:,.0f} -> {p.premium:,.0f} ({p.premium - b.premium:+,.0f}), rate {b.premium_rate:.3%} -> {p.premium_rate:.3%}")
    lines.append(f"  largest contributions (of {len(p.contributions)}):")
    for c in sorted(p.contributions, key=lambda c: -c.premium)[:top]:
        lines.append(f"    {c.buyer_id}: premium {c.premium:,.0f}, PD {c.pd_12m:.2%} (grade {c.grade}), EAD {c.exposure_at_default:,.0f} "
                     f"({c.limit_source} limit {c.limit:,.0f}), LGD {c.lgd:.0%}, expected loss {c.expected_loss:,.0f} ({c.share_of_expected_loss:.1%})")
    if q.excluded:
        lines.append(f"  not insured: {len(q.excluded)} buyer(s), e.g. " + "; ".join(f"{e.buyer_id}: {e.reason}" for e in q.excluded[:3]))
    return lines


def describe_backtest(b: PricingBacktest) -> list[str]:
    def row(o: SegmentOutcome) -> str:
        return (f"  {o.segment}: {o.buyers} buyers, {o.defaults} defaults; premium {o.premium:,.0f}, expected loss {o.expected_loss:,.0f}, "
                f"realised {o.realised_loss:,.0f}; loss ratio {o.realised_loss_ratio:.0%} against {o.expected_loss_ratio:.0%} expected "
                f"(90% interval {o.interval[0]:.0%}-{o.interval[1]:.0%}: {'within' if o.within_interval else 'OUTSIDE'})")

    lines = [f"Pricing backtest: policies quoted on {b.quoted_on}, insured losses to {b.window_end} ({b.excluded} buyer(s) not insurable)", row(b.total)]
    lines += ["  by tier:"] + ["  " + row(t) for t in b.tiers]
    worst = sorted(b.sellers, key=lambda o: -o.realised_loss)[:5]
    lines += [f"  sellers with the largest losses (of {len(b.sellers)}):"] + ["  " + row(s) for s in worst]
    return lines + [f"  note: {n}" for n in b.notes]


def parse_what_if(add: list[str], remove: list[str], terms_days: float | None) -> WhatIf:
    """``BUYER[:TURNOVER[:TERMS]]`` items; a clear error for a malformed one."""
    added = []
    for item in add:
        parts = item.split(":")
        try:
            numbers = [float(p) for p in parts[1:3]]
        except ValueError:
            raise StageError(f"--add {item}: write BUYER[:TURNOVER[:TERMS]] with numbers, e.g. B000123:250000:60") from None
        if len(parts) > 3 or not parts[0] or any(n <= 0 for n in numbers):
            raise StageError(f"--add {item}: write BUYER[:TURNOVER[:TERMS]], turnover and terms above 0")
        added.append(AddedBuyer(parts[0], numbers[0] if numbers else None, numbers[1] if len(numbers) > 1 else None))
    if terms_days is not None and terms_days <= 0:
        raise StageError("--terms-days must be above 0")
    return WhatIf(tuple(added), tuple(remove), terms_days)


def quote_and_save(cfg: PlatformConfig, ws: Workspace, seller_id: str, as_of: date | None, what_if: WhatIf) -> SellerQuote:
    """The command's quote: with the workspace's register; saved unless it is a what-if."""
    from tradecredit.credit.pipeline import open_register

    register = open_register(cfg, ws)
    try:
        result = quote_seller(cfg, ws, seller_id, as_of, what_if, register)
    finally:
        register.close()
    if what_if.empty:
        save_quote(ws, result)
    return result


def backtest_with_register(cfg: PlatformConfig, ws: Workspace, quoted_on: date | None) -> PricingBacktest:
    from tradecredit.credit.pipeline import open_register

    register = open_register(cfg, ws)
    try:
        return backtest_pricing(cfg, ws, quoted_on, register)
    finally:
        register.close()


def demo_insurance(cfg: PlatformConfig, ws: Workspace) -> list[str]:
    """The demo's step: the largest seller's quote (saved, so the console's orders are priced at
    its rate) and the backtest of the latest matured run, when there is one."""
    invoices = ws.read_ledger_table("invoices", ["seller_id", "amount"])
    seller = str(invoices.group_by("seller_id").agg(pl.col("amount").sum()).sort(["amount", "seller_id"], descending=[True, False])["seller_id"][0])
    quoted = quote_and_save(cfg, ws, seller, None, WhatIf())
    lines = describe_quote(quoted, top=5)
    lines.append(f"  saved to {ws.policy_quote(seller)}; the service prices {seller}'s orders at {quoted.quote.premium_rate:.3%}")
    try:
        lines += describe_backtest(backtest_with_register(cfg, ws, None))
    except StageError as exc:
        lines.append(f"No pricing backtest: {exc}")
    return lines
