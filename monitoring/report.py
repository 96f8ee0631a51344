"""The monitoring report: one self-contained HTML file (plots embedded as PNG data URIs, no
script, no outside request) and the JSON summary beside it.

Plots come from Matplotlib, the page from a Jinja2 template; both are drawn from the same
numbers the JSON summary carries.
"""

from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen: render to memory
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402
from jinja2 import Environment, select_autoescape  # noqa: E402

from tradecredit.monitoring.alerts import AlertRunOutcome  # noqa: E402
from tradecredit.monitoring.backtest import Backtest, LateBacktest  # noqa: E402
from tradecredit.monitoring.drift import PsiResult  # noqa: E402
from tradecredit.monitoring.portfolio_view import PortfolioView  # noqa: E402

SCORE = "pd_12m"
COLOURS = {"reference": "#9aa5b1", "current": "#1f6feb", "yellow": "#e3b341", "red": "#d1242f", "ok": "#2da44e"}
MAX_ALERT_ROWS = 100  # the report lists the worst open alerts; the JSON and alerts.db hold them all


@dataclass(frozen=True)
class ReportInputs:
    as_of: str
    model: str
    model_version: str
    late_model_version: str | None
    active_buyers: int
    inactive_buyers: int
    drift: list[PsiResult]
    view: PortfolioView
    alerts: AlertRunOutcome | None
    alert_note: str | None  # why alerts were not evaluated (a run older than the store's latest)
    open_alerts: pl.DataFrame
    backtests: list[Backtest]
    late_backtests: list[LateBacktest]
    late_scored_invoices: int
    top_features: int
    cases: Any = None  # CaseRunOutcome, or None when alerts were not evaluated
    open_cases: pl.DataFrame | None = None
    case_backtest: Any = None  # CaseBacktest
    market: list[Any] = field(default_factory=list)  # MarketReading: the market view against its training range


def _png(fig: plt.Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def score_distribution_plot(score: PsiResult, positions: pl.DataFrame) -> str:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    labels = score.bins
    x = range(len(labels))
    left.bar([i - 0.2 for i in x], score.reference_share, width=0.4, label="training reference", color=COLOURS["reference"])
    left.bar([i + 0.2 for i in x], score.current_share, width=0.4, label="this run", color=COLOURS["current"])
    left.set_xticks(list(x), [f"{i + 1}" if lab != "(missing)" else "n/a" for i, lab in enumerate(labels)])
    left.set_xlabel("reference decile of the 12-month PD")
    left.set_ylabel("share of buyers")
    left.set_title(f"Score distribution (PSI {score.psi:.3f}, {score.band})")
    left.legend(frameon=False)
    grades = positions.group_by("grade").len().sort("grade")
    right.bar(grades["grade"].to_list(), grades["len"].to_list(), color=COLOURS["current"])
    right.set_xticks(range(1, 11))
    right.set_xlabel("grade (1 best)")
    right.set_ylabel("buyers")
    right.set_title("Buyers by grade")
    return _png(fig)


def psi_plot(results: list[PsiResult], top: int, moderate: float, major: float) -> str:
    shown = [r for r in results if r.name != SCORE][:top][::-1]
    fig, ax = plt.subplots(figsize=(11, 0.28 * len(shown) + 1.2))
    colours = [COLOURS["red"] if r.band == "major" else COLOURS["yellow"] if r.band == "moderate" else COLOURS["ok"] for r in shown]
    ax.barh([r.name for r in shown], [r.psi for r in shown], color=colours)
    ax.scatter([r.critical_psi for r in shown], [r.name for r in shown], marker="|", s=120, color="black", label="critical PSI (chance at these sizes)", zorder=3)
    for value, label in ((moderate, "moderate"), (major, "major")):
        ax.axvline(value, color="grey", linestyle="--", linewidth=0.8)
        ax.text(value, len(shown) - 0.4, f" {label}", fontsize=8, color="grey")
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlabel("population stability index against the training reference")
    ax.set_title(f"The {len(shown)} features that moved most")
    ax.legend(frameon=False, loc="lower right")
    return _png(fig)


def calibration_plot(backtest: Backtest | None, backtests: list[Backtest], late: list[LateBacktest]) -> str:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    if backtest is None:
        left.text(0.5, 0.5, "No monitoring run has a matured\n12-month label yet", ha="center", va="center")
        left.set_axis_off()
    else:
        g = backtest.grades
        lo = (g["observed_rate"] - g["jeffreys_low"]).clip(lower_bound=0).to_list()
        hi = (g["jeffreys_high"] - g["observed_rate"]).clip(lower_bound=0).to_list()
        left.errorbar(g["grade"].to_list(), g["observed_rate"].to_list(), yerr=[lo, hi], fmt="o", color=COLOURS["current"], label="observed (Jeffreys 95%)")
        left.plot(g["grade"].to_list(), g["predicted_rate"].to_list(), "s--", color=COLOURS["reference"], label="predicted PD")
        for grade in backtest.miscalibrated_grades:
            left.axvspan(grade - 0.4, grade + 0.4, color=COLOURS["red"], alpha=0.15)
        left.set_yscale("symlog", linthresh=0.001)
        left.set_xlabel("grade")
        left.set_ylabel("12-month default rate")
        left.set_title(f"Calibration by grade, run of {backtest.as_of}")
        left.legend(frameon=False)
    measured = [b for b in backtests if b.auc is not None]
    measured_late = [b for b in late if b.auc is not None]
    if measured or measured_late:
        if measured:
            right.plot([str(b.as_of) for b in measured], [b.auc for b in measured], "o-", color=COLOURS["current"], label="default model AUC")
        if measured_late:
            right.plot([str(b.as_of) for b in measured_late], [b.auc for b in measured_late], "s-", color=COLOURS["yellow"], label="late-payment model AUC")
        right.set_ylim(0.5, 1.0)
        right.set_title("Discrimination of matured runs over time")
        right.legend(frameon=False)
        right.tick_params(axis="x", rotation=30)
    else:
        right.text(0.5, 0.5, "No matured run to measure yet", ha="center", va="center")
        right.set_axis_off()
    return _png(fig)


def aging_plot(view: PortfolioView) -> str:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"wspace": 0.45})
    history = view.aging_history
    months = [str(m)[:7] for m in history["month"].to_list()]
    bottom = [0.0] * len(months)
    palette = ["#2da44e", "#a2d9a5", "#e3b341", "#fb8f44", "#d1242f"]
    for column, colour in zip([c for c in history.columns if c.startswith("open_") and c != "open_balance"], palette, strict=False):
        values = history[column].to_list()
        left.bar(months, values, bottom=bottom, label=column.removeprefix("open_").replace("_", "-").replace("-plus", "+"), color=colour)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    left.set_title("Open balance by days past due")
    left.tick_params(axis="x", rotation=45)
    left.legend(frameon=False, fontsize=7, ncols=5, loc="upper center", bbox_to_anchor=(0.5, -0.28))
    dso = left.twinx()
    dso.plot(months, history["dso_days"].to_list(), "k.-", label="DSO (days)")
    dso.set_ylim(0, max([d for d in history["dso_days"].to_list() if d is not None] or [1]) * 1.25)
    dso.set_ylabel("DSO, days (line)")
    c = view.concentration
    top = view.positions.sort("exposure", descending=True).head(c.top_n)
    total = c.total_exposure or 1.0
    right.bar(range(1, top.height + 1), [e / total for e in top["exposure"].to_list()], color=COLOURS["current"])
    right.set_xlabel(f"the {c.top_n} largest buyers")
    right.set_ylabel("share of exposure")
    right.set_title(f"Concentration: top-{c.top_n} {c.top_n_share:.1%}, HHI {c.hhi * 10_000:,.0f}")
    return _png(fig)


def exposure_plot(view: PortfolioView) -> str:
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for ax, (table, key, title) in zip(axes, ((view.by_grade, "grade", "grade"), (view.by_industry, "industry", "industry"), (view.by_country, "country", "country")), strict=True):
        ax.bar([str(k) for k in table[key].to_list()], table["share"].to_list(), color=COLOURS["current"])
        ax.set_title(f"Exposure by {title}")
        ax.set_ylim(0, max(0.05, *table["share"].to_list()) * 1.15)
    axes[0].set_ylabel("share of exposure")
    return _png(fig)


def alerts_plot(open_alerts: pl.DataFrame) -> str:
    fig, ax = plt.subplots(figsize=(11, 3.0))
    if open_alerts.height == 0:
        ax.text(0.5, 0.5, "No open alerts", ha="center", va="center")
        ax.set_axis_off()
        return _png(fig)
    counts = open_alerts.group_by("signal", "colour").len()
    signals = sorted(counts["signal"].unique().to_list())
    for offset, colour in ((-0.2, "yellow"), (0.2, "red")):
        n = dict(counts.filter(pl.col("colour") == colour).select("signal", "len").iter_rows())
        ax.bar([i + offset for i in range(len(signals))], [n.get(s, 0) for s in signals], width=0.4, color=COLOURS[colour], label=colour)
    ax.set_xticks(range(len(signals)), [s.replace("_", " ") for s in signals], rotation=20)
    ax.set_ylabel("open alerts")
    ax.set_title("Open early-warning alerts by signal")
    ax.legend(frameon=False)
    return _png(fig)


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def summary_of(inputs: ReportInputs, moderate: float) -> dict[str, Any]:
    """The JSON summary: the report's numbers, without its pictures."""
    view, c = inputs.view, inputs.view.concentration
    score = next(r for r in inputs.drift if r.name == SCORE)
    features = [r for r in inputs.drift if r.name != SCORE]
    latest = inputs.backtests[-1] if inputs.backtests else None
    latest_late = inputs.late_backtests[-1] if inputs.late_backtests else None
    return {
        "as_of": inputs.as_of, "model": inputs.model, "model_version": inputs.model_version, "late_model_version": inputs.late_model_version,
        "active_buyers": inputs.active_buyers, "inactive_buyers": inputs.inactive_buyers,
        "mean_pd_12m": float(view.positions[SCORE].mean()),  # type: ignore[arg-type]
        "buyers_by_tier": dict(view.positions.group_by("tier").len().sort("tier").iter_rows()),
        "score_drift": {"psi": score.psi, "band": score.band, "p_value": score.p_value, "critical_psi": score.critical_psi, "significant": score.significant},
        "features_moderate_or_major": sum(r.psi >= moderate for r in features),
        "features_significant": sum(r.significant for r in features),
        "top_drifting_features": [{"name": r.name, "psi": r.psi, "band": r.band, "significant": r.significant} for r in features[:10]],
        "market_conditions": [asdict(m) for m in inputs.market],
        "exposure": {
            "total": c.total_exposure, "recommended_limits": view.recommended_limits,
            "expected_loss": view.expected_loss, "premium": view.premium,
            "by_tier": view.by_tier.to_dicts(), "by_grade": view.by_grade.to_dicts(),
            "by_industry": view.by_industry.to_dicts(), "by_country": view.by_country.to_dicts(),
        },
        "concentration": {
            "largest_buyer": c.largest_buyer, "largest_share": c.largest_share, "top_n": c.top_n, "top_n_share": c.top_n_share,
            "hhi": c.hhi, "hhi_points": c.hhi * 10_000, "effective_buyers": c.effective_buyers,
        },
        "customer_mix": view.customer_mix.to_dicts(),
        "aging_history": [{k: _finite(v) if not hasattr(v, "isoformat") else v.isoformat() for k, v in row.items()} for row in view.aging_history.to_dicts()],
        "alerts": None if inputs.alerts is None else {
            "raised": inputs.alerts.raised, "escalated": inputs.alerts.escalated, "continued": inputs.alerts.continued,
            "cleared": inputs.alerts.cleared, "open_yellow": inputs.alerts.open_yellow, "open_red": inputs.alerts.open_red,
            "delivered": inputs.alerts.delivered, "delivery_error": inputs.alerts.delivery_error,
        },
        "alerts_note": inputs.alert_note,
        "cases": None if inputs.cases is None else {
            "opened": inputs.cases.opened, "escalated": inputs.cases.escalated, "closed_quiet": inputs.cases.closed_quiet,
            "open_red": inputs.cases.open_red, "open_yellow": inputs.cases.open_yellow, "open_listed": inputs.cases.open_listed,
        },
        "case_backtest": None if inputs.case_backtest is None else inputs.case_backtest.to_json(),
        "backtest": None if latest is None else {"as_of": latest.as_of.isoformat(), "auc": latest.auc, "retrain": latest.retrain, "reasons": latest.reasons},
        "late_backtest": None if latest_late is None else {"as_of": latest_late.as_of.isoformat(), "auc": latest_late.auc, "retrain": latest_late.retrain, "reasons": latest_late.reasons},
        "late_scored_invoices": inputs.late_scored_invoices,
        "retrain_recommended": any(b.retrain for b in (latest, latest_late) if b is not None),
    }


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Portfolio monitoring {{ s.as_of }}</title>
<style>
 body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1180px;color:#1f2328}
 h1{margin-bottom:0} .sub{color:#59636e;margin-top:4px}
 .cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
 .card{border:1px solid #d1d9e0;border-radius:8px;padding:10px 14px;min-width:150px}
 .card b{display:block;font-size:1.35em} .card span{color:#59636e;font-size:.85em}
 table{border-collapse:collapse;font-size:.85em;margin:8px 0} td,th{border-bottom:1px solid #d1d9e0;padding:4px 8px;text-align:left}
 .red{color:#d1242f;font-weight:600} .yellow{color:#9a6700;font-weight:600} .warn{background:#fff8c5;padding:8px;border-radius:6px}
 img{max-width:100%;display:block;margin:8px 0}
</style></head><body>
<h1>Portfolio monitoring, {{ s.as_of }}</h1>
<p class="sub">{{ s.model }} version {{ s.model_version }}{% if s.late_model_version %}; late-payment model version {{ s.late_model_version }}{% endif %}.
{{ "{:,}".format(s.active_buyers) }} active buyers scored ({{ "{:,}".format(s.inactive_buyers) }} inactive).</p>
<div class="cards">
 <div class="card"><b>{{ "{:.2%}".format(s.mean_pd_12m) }}</b><span>mean 12-month PD</span></div>
 <div class="card"><b>{{ "{:,.0f}".format(s.exposure.total) }}</b><span>exposure (open balances)</span></div>
 <div class="card"><b>{{ "{:,.0f}".format(s.exposure.expected_loss) }}</b><span>expected loss</span></div>
 <div class="card"><b>{{ "{:,.0f}".format(s.exposure.premium) }}</b><span>insurance premium (a year)</span></div>
 <div class="card"><b>{{ "{:.3f}".format(s.score_drift.psi) }}</b><span>score PSI ({{ s.score_drift.band }}{% if s.score_drift.significant %}, significant{% endif %})</span></div>
 <div class="card"><b class="red">{{ s.cases.open_red if s.cases else "n/a" }}</b><span>open red cases (orders held)</span></div>
 <div class="card"><b class="yellow">{{ s.cases.open_yellow if s.cases else "n/a" }}</b><span>open yellow cases</span></div>
 <div class="card"><b>{{ s.cases.open_listed if s.cases else "n/a" }}</b><span>listed below the materiality floor</span></div>
</div>
{% if s.retrain_recommended %}<p class="warn"><b>Retraining recommended.</b> {% if s.backtest and s.backtest.retrain %}Default model: {{ s.backtest.reasons|join("; ") }}. {% endif %}{% if s.late_backtest and s.late_backtest.retrain %}Late-payment model: {{ s.late_backtest.reasons|join("; ") }}.{% endif %}</p>{% endif %}
{% if s.alerts_note %}<p class="warn">{{ s.alerts_note }}</p>{% endif %}
{% if s.alerts and s.alerts.delivery_error %}<p class="warn">{{ s.alerts.delivery_error }}</p>{% endif %}

<h2>Score distribution</h2>
<img alt="score distribution" src="{{ plots.score }}">
<h2>Drift by feature</h2>
<p>{{ s.features_moderate_or_major }} features at or above the moderate band; {{ s.features_significant }} significantly shifted at these sample sizes (chi-squared test of the PSI).</p>
<img alt="PSI by feature" src="{{ plots.psi }}">
{% if s.market_conditions %}<h2>Market conditions</h2>
<p>How the whole book and each industry pay today (the market view, one value per date, so not a PSI) against the model's training years. Beyond that range the model's PDs were learnt in other conditions (and a gradient-boosted model that reads the view is flat beyond the values it saw).</p>
<table><tr><th>feature</th><th>today (median over buyers)</th><th>training range</th><th>percentile in training</th></tr>
{% for m in s.market_conditions %}<tr><td>{{ m.name }}</td><td>{{ "%.4g"|format(m.value) if m.value is not none else "n/a" }}</td><td>{% if m.reference_low is not none %}{{ "%.4g"|format(m.reference_low) }}-{{ "%.4g"|format(m.reference_high) }}{% else %}n/a{% endif %}</td><td>{{ "%.0f%%"|format(100 * m.percentile) if m.percentile is not none else "n/a" }}{% if m.outside %} <b>beyond</b>{% endif %}</td></tr>{% endfor %}
</table>{% endif %}
<h2>Outcome backtests</h2>
{% if s.backtest %}<p>Latest matured run {{ s.backtest.as_of }}: AUC {{ "%.3f"|format(s.backtest.auc) if s.backtest.auc is not none else "n/a" }}; {{ "retrain: " ~ s.backtest.reasons|join("; ") if s.backtest.retrain else "no retraining needed" }}.</p>{% else %}<p>No monitoring run has a matured 12-month label yet.</p>{% endif %}
{% if s.late_backtest %}<p>Late-payment model, latest decided run {{ s.late_backtest.as_of }}: AUC {{ "%.3f"|format(s.late_backtest.auc) if s.late_backtest.auc is not none else "n/a" }}; {{ "retrain: " ~ s.late_backtest.reasons|join("; ") if s.late_backtest.retrain else "no retraining needed" }}.</p>{% endif %}
<h2>Insurance pricing backtest</h2>
{% if s.pricing_backtest %}{% set pb = s.pricing_backtest %}<p>Every seller's policy quoted on {{ pb.quoted_on }} against the insured losses to {{ pb.window_end }} (defaults x LGD x the seller's open balance at default, capped by the insured limit, x the insured share). The interval is the quote's own: 90% of its simulated years.</p>
<table><tr><th>segment</th><th>buyers</th><th>defaults</th><th>premium</th><th>expected loss</th><th>realised loss</th><th>loss ratio expected</th><th>realised</th><th>interval</th></tr>
{% for o in [pb.total] + pb.tiers %}<tr><td>{{ o.segment }}</td><td>{{ o.buyers }}</td><td>{{ o.defaults }}</td><td>{{ "{:,.0f}".format(o.premium) }}</td><td>{{ "{:,.0f}".format(o.expected_loss) }}</td><td>{{ "{:,.0f}".format(o.realised_loss) }}</td><td>{{ "{:.0%}".format(o.expected_loss_ratio) }}</td><td>{{ "{:.0%}".format(o.realised_loss_ratio) }}</td><td>{{ "{:.0%}".format(o.interval[0]) }}-{{ "{:.0%}".format(o.interval[1]) }}{% if not o.within_interval %} <b>outside</b>{% endif %}</td></tr>{% endfor %}
</table>{% else %}<p>{{ s.pricing_backtest_note or "No monitoring run a year before this one yet: the pricing backtest needs a matured year." }}</p>{% endif %}
<img alt="calibration by grade" src="{{ plots.calibration }}">
<h2>Exposure, aging and concentration</h2>
<img alt="exposure by grade, industry and country" src="{{ plots.exposure }}">
<img alt="aging and concentration" src="{{ plots.aging }}">
<table><tr><th>largest buyer</th><th>its share</th><th>top-{{ s.concentration.top_n }} share</th><th>HHI (points)</th><th>effective number of buyers</th></tr>
<tr><td>{{ s.concentration.largest_buyer }}</td><td>{{ "{:.2%}".format(s.concentration.largest_share) }}</td><td>{{ "{:.1%}".format(s.concentration.top_n_share) }}</td><td>{{ "{:,.0f}".format(s.concentration.hhi_points) }}</td><td>{{ "{:,.0f}".format(s.concentration.effective_buyers) }}</td></tr></table>
<h3>Customer mix (share of exposure)</h3>
<table><tr><th>segment</th><th>buyers</th><th>share</th><th>target</th><th>gap</th></tr>
{% for m in s.customer_mix %}<tr><td>{{ m.segment }}</td><td>{{ "{:,}".format(m.buyers) }}</td><td>{{ "{:.1%}".format(m.share) }}</td><td>{{ "{:.0%}".format(m.target) }}</td><td{% if m.off_target %} class="red"{% endif %}>{{ "{:+.1%}".format(m.gap) }}</td></tr>{% endfor %}
</table>
<h3>By tier</h3>
<table><tr><th>tier</th><th>buyers</th><th>exposure</th><th>share</th><th>mean PD</th><th>expected loss</th><th>premium</th></tr>
{% for t in s.exposure.by_tier %}<tr><td>{{ t.tier }}</td><td>{{ "{:,}".format(t.buyers) }}</td><td>{{ "{:,.0f}".format(t.exposure) }}</td><td>{{ "{:.1%}".format(t.share) }}</td><td>{{ "{:.2%}".format(t.mean_pd) }}</td><td>{{ "{:,.0f}".format(t.expected_loss) }}</td><td>{{ "{:,.0f}".format(t.premium) }}</td></tr>{% endfor %}
</table>
<h2>Early-warning cases</h2>
{% if s.cases %}<p>This run: {{ s.cases.opened }} case(s) opened, {{ s.cases.escalated }} escalated to red, {{ s.cases.closed_quiet }} closed after quiet runs. A case closes when a reviewer resolves it in the console.</p>{% endif %}
<table id="cases"><tr><th>case</th><th>colour</th><th>buyer</th><th>why</th><th>action</th><th>signals</th><th>grade</th><th>exposure</th><th>opened</th></tr>
{% for c in cases %}<tr><td>{{ c.case_id }}</td><td class="{{ c.colour }}">{{ c.kind }}</td><td>{{ c.buyer_id }}</td><td>{{ c.reason }}</td><td>{{ c.action }}</td><td>{{ c.signals }}</td><td>{{ c.grade if c.grade is not none else "" }}</td><td>{{ "{:,.0f}".format(c.exposure) }}</td><td>{{ c.opened_on }}</td></tr>{% endfor %}
</table>
{% if more_cases %}<p>{{ more_cases }} more open cases: see the console and alerts.db.</p>{% endif %}
<h3>How early warnings did (matured runs)</h3>
{% set cb = s.case_backtest %}{% if cb and cb.runs %}<p>Runs {{ cb.runs|join(", ") }}: {{ cb.defaults }} defaults within 12 months, base rate {{ "{:.2%}".format(cb.base_rate) }}. Precision is the share of flagged buyers that defaulted within 12 months; recall the share of defaults flagged; recall at {{ cb.lead_days }} days the share of the defaults at least {{ cb.lead_days }} days after the run that were flagged (counted in buyer-runs); buyers at {{ cb.lead_days }} days the share of the {{ cb.defaulted_buyers_at_lead }} buyers that defaulted which were flagged at a run at least {{ cb.lead_days }} days before (each buyer once); lead the median days from the flag's first day to the default.</p>
<table id="warning-backtest"><tr><th>flag</th><th>flagged</th><th>defaulted</th><th>precision</th><th>lift</th><th>recall</th><th>recall at {{ cb.lead_days }} days</th><th>buyers at {{ cb.lead_days }} days</th><th>median lead (days)</th></tr>
{% for r in cb.table %}<tr><td>{{ r.flag }}</td><td>{{ r.flagged }}</td><td>{{ r.hits }}</td><td>{{ "{:.1%}".format(r.precision) }}</td><td>{{ "%.1f"|format(r.lift) if r.lift is not none else "n/a" }}</td><td>{{ "{:.0%}".format(r.recall) if r.recall is not none else "n/a" }}</td><td>{{ "{:.0%}".format(r.recall_at_lead) if r.recall_at_lead is not none else "n/a" }}</td><td>{{ "{:.0%}".format(r.buyer_recall_at_lead) if r.buyer_recall_at_lead is not none else "n/a" }}</td><td>{{ "%.0f"|format(r.median_lead_days) if r.median_lead_days is not none else "n/a" }}</td></tr>{% endfor %}
</table>
<table><tr><th>run</th><th>red cases</th><th>of which already in default</th><th>expected defaults (sum of PDs)</th><th>red / expected</th></tr>
{% for r in cb.red_list %}<tr><td>{{ r.as_of }}</td><td>{{ r.red }}</td><td>{{ r.red_in_default }}</td><td>{{ "%.1f"|format(r.expected_defaults) }}</td><td>{{ "%.1f"|format(r.red_over_expected) if r.red_over_expected is not none else "n/a" }}</td></tr>{% endfor %}
</table>{% else %}<p>No monitoring run has a matured 12-month window yet: the early-warning backtest needs one.</p>{% endif %}
<h3>Open alerts (the cases' signals)</h3>
{% if s.alerts %}<p>This run: {{ s.alerts.raised }} raised, {{ s.alerts.escalated }} escalated to red, {{ s.alerts.continued }} still firing, {{ s.alerts.cleared }} cleared.</p>{% endif %}
<img alt="open alerts by signal" src="{{ plots.alerts }}">
<table id="alerts"><tr><th>colour</th><th>buyer</th><th>signal</th><th>evidence</th><th>recommended action</th><th>raised</th><th>last seen</th></tr>
{% for a in alerts %}<tr><td class="{{ a.colour }}">{{ a.colour }}</td><td>{{ a.buyer_id }}</td><td>{{ a.signal }}</td><td>{{ a.evidence }}</td><td>{{ a.action }}</td><td>{{ a.raised_on }}</td><td>{{ a.last_seen_on }}</td></tr>{% endfor %}
</table>
{% if more_alerts %}<p>{{ more_alerts }} more open alerts: see alerts.db and summary.json.</p>{% endif %}
</body></html>
"""


def render_report(inputs: ReportInputs, summary: dict[str, Any], moderate: float, major: float) -> str:
    score = next(r for r in inputs.drift if r.name == SCORE)
    latest = next((b for b in reversed(inputs.backtests) if b.auc is not None), inputs.backtests[-1] if inputs.backtests else None)
    plots = {
        "score": score_distribution_plot(score, inputs.view.positions),
        "psi": psi_plot(inputs.drift, inputs.top_features, moderate, major),
        "calibration": calibration_plot(latest, inputs.backtests, inputs.late_backtests),
        "exposure": exposure_plot(inputs.view),
        "aging": aging_plot(inputs.view),
        "alerts": alerts_plot(inputs.open_alerts),
    }
    ordered = inputs.open_alerts.with_columns(rank=pl.when(pl.col("colour") == "red").then(0).otherwise(1)).sort("rank", "raised_on", "buyer_id") if inputs.open_alerts.height else inputs.open_alerts
    cases = inputs.open_cases if inputs.open_cases is not None else pl.DataFrame()
    if cases.height:
        cases = cases.with_columns(
            rank=pl.col("kind").replace_strict({"red": 0, "yellow": 1, "listed": 2}, return_dtype=pl.Int8),
            signals=pl.col("signals_json").map_elements(lambda j: ", ".join(s["signal"] for s in json.loads(j)), return_dtype=pl.String),
        ).sort("rank", "opened_on", "buyer_id")
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    return env.from_string(_TEMPLATE).render(
        s=summary, plots=plots, alerts=ordered.head(MAX_ALERT_ROWS).to_dicts(), more_alerts=max(0, ordered.height - MAX_ALERT_ROWS),
        cases=cases.head(MAX_ALERT_ROWS).to_dicts(), more_cases=max(0, cases.height - MAX_ALERT_ROWS),
    )
