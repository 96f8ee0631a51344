"""The buyer page's charts as Plotly figures (JSON), drawn in the browser by plotly.js from the
Plotly package itself (served by the console: no outside request)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import plotly.graph_objects as go
import polars as pl

from tradecredit.features.catalog import AGING_BUCKETS
from tradecredit.serving.reasons import describe, format_value

RED, AMBER, GREEN, BLUE, GREY = "#c0392b", "#e0a100", "#2e8b57", "#2c6fbb", "#7f8c8d"
AGING_COLOURS = (GREEN, "#9ccc65", AMBER, "#e67e22", RED)  # one per aging bucket, not yet due to 90+ days
# Registry events that speak against a buyer, drawn in red on the timeline.
ADVERSE_EVENTS = frozenset(
    {"lawsuit_filed", "court_judgment", "enforcement_order", "tax_penalty", "administrative_penalty", "negative_news", "insolvency_filing"}
)


@cache
def _white_template() -> dict[str, Any]:
    import plotly.io as pio

    return json.loads(json.dumps(pio.templates["plotly_white"].to_plotly_json()))


def _figure(*traces: Any) -> go.Figure:
    # Without a template at build time: Plotly deep-copies a named template into every figure
    # (most of a buyer page's chart time: 0.23 of 0.30 s in a profile); the same template is attached to the JSON instead.
    return go.Figure(list(traces), layout={"template": None})


def _layout(fig: go.Figure, title: str, height: int = 320) -> dict[str, Any]:
    fig.update_layout(
        title={"text": title, "x": 0, "font": {"size": 14}}, height=height, margin={"l": 60, "r": 20, "t": 40, "b": 60},
        showlegend=True, legend={"orientation": "h", "y": -0.25},
    )
    out = json.loads(fig.to_json())
    out["layout"]["template"] = _white_template()
    return out


def feature_label(feature: str, value: Any, lang: str) -> str:
    """A short label for a feature and its value, in English or Chinese."""
    en, zh, kind, window = describe(feature)
    value_en, value_zh = format_value(value, kind)
    if lang == "zh":
        return f"{f'近{window}天' if window else ''}{zh}: {value_zh}"
    return f"{en[0].upper() + en[1:]}{f' ({window}d)' if window else ''}: {value_en}"


def waterfall(
    features: tuple[str, ...], values: dict[str, Any], contributions: list[float], base_value: float, shown: int, lang: str, title: str
) -> dict[str, Any]:
    """The raw score (log-odds) built up from the base value by each feature's TreeSHAP
    contribution: the ``shown`` largest one by one, the rest as one bar, then the total."""
    order = sorted(range(len(features)), key=lambda j: -abs(contributions[j]))
    top = [j for j in order[:shown] if contributions[j] != 0.0]
    rest = sum(contributions[j] for j in order if j not in set(top))
    labels = ["Base value (portfolio average)" if lang == "en" else "基准值（组合平均）"]
    labels += [f"{feature_label(features[j], values.get(features[j]), lang)}  {contributions[j]:+.3f}" for j in top]
    labels += [f"{len(features) - len(top)} other features  {rest:+.3f}" if lang == "en" else f"其他{len(features) - len(top)}个特征  {rest:+.3f}"]
    total = base_value + sum(contributions)
    labels += [f"Score (log-odds)  {total:.3f}" if lang == "en" else f"评分（对数几率）  {total:.3f}"]
    steps = [base_value, *[contributions[j] for j in top], rest]
    fig = _figure(
        go.Waterfall(
            orientation="h", y=labels, x=[*steps, 0.0], measure=["absolute", *["relative"] * (len(top) + 1), "total"],
            increasing={"marker": {"color": RED}}, decreasing={"marker": {"color": GREEN}}, totals={"marker": {"color": BLUE}},
            hovertemplate="%{y}<extra></extra>", name="SHAP",
        )
    )
    fig.update_yaxes(autorange="reversed")
    # The axis spans the path from the base value to the score, so the contributions are
    # visible; the base and score bars (drawn from 0) run off its edge.
    path = [sum(steps[: k + 1]) for k in range(len(steps))]
    pad = max(0.1, (max(path) - min(path)) * 0.08)
    fig.update_xaxes(
        range=[min(path) - pad, max(path) + pad],
        title_text="log-odds of default (red raises the risk, green lowers it)" if lang == "en" else "违约对数几率（红色推高风险，绿色降低风险）",
    )
    layout = _layout(fig, title, height=120 + 34 * len(labels))
    layout["layout"]["showlegend"] = False
    layout["layout"]["margin"]["l"] = 380
    return layout


def pd_history(history: pl.DataFrame, decisions: list[dict[str, Any]], title: str, lang: str) -> dict[str, Any]:
    fig = _figure()
    fig.add_trace(
        go.Scatter(
            x=[t.isoformat() for t in history["as_of_ts"]], y=[p * 100 for p in history["pd_12m"]], mode="lines+markers",
            name="monitoring runs" if lang == "en" else "监控批次", line={"color": BLUE},
            customdata=list(zip(history["grade"], history["model_version"], strict=True)),
            hovertemplate="%{x|%Y-%m-%d}: PD %{y:.2f}%<br>grade %{customdata[0]}, model v%{customdata[1]}<extra></extra>",
        )
    )
    if decisions:
        fig.add_trace(
            go.Scatter(
                x=[d["assessed_at"] for d in decisions], y=[d["pd_12m"] * 100 for d in decisions], mode="markers",
                name="logged decisions" if lang == "en" else "决策记录", marker={"color": AMBER, "size": 10, "symbol": "diamond"},
                customdata=[[d["grade"], d["decision"], d["default_model"]] for d in decisions],
                hovertemplate="%{x}: PD %{y:.2f}%<br>grade %{customdata[0]}, %{customdata[1]} (%{customdata[2]})<extra></extra>",
            )
        )
    fig.update_yaxes(title_text="12-month PD (%)" if lang == "en" else "12个月违约概率（%）", rangemode="tozero")
    return _layout(fig, title)


def payment_behaviour(history: pl.DataFrame, title: str, lang: str) -> dict[str, Any]:
    """Days beyond terms over time (lines) over the month-start aging of open amounts (bars)."""
    months = [m.isoformat() for m in history["month"]]
    fig = _figure()
    for (suffix, label), colour in zip(AGING_BUCKETS, AGING_COLOURS, strict=True):
        fig.add_trace(go.Bar(x=months, y=history[f"open_{suffix}"].fill_null(0).to_list(), name=label, marker={"color": colour}, yaxis="y2", opacity=0.45))
    fig.add_trace(go.Scatter(x=months, y=history["dbt_weighted_90d"].to_list(), name="DBT, amount-weighted (90 d)" if lang == "en" else "加权逾期天数（90天）", mode="lines+markers", line={"color": "#222"}))
    fig.add_trace(go.Scatter(x=months, y=history["dbt_max_90d"].to_list(), name="longest DBT (90 d)" if lang == "en" else "最长逾期天数（90天）", mode="lines", line={"color": RED, "dash": "dot"}))
    fig.update_layout(
        barmode="stack",
        yaxis={"title": {"text": "days beyond terms" if lang == "en" else "逾期天数"}, "rangemode": "tozero"},
        yaxis2={"title": {"text": "open amount" if lang == "en" else "未结清金额"}, "overlaying": "y", "side": "right", "rangemode": "tozero"},
    )
    return _layout(fig, title, height=360)


def aging_now(row: dict[str, Any], title: str) -> dict[str, Any]:
    labels = [label for _, label in AGING_BUCKETS]
    amounts = [float(row.get(f"open_{suffix}") or 0.0) for suffix, _ in AGING_BUCKETS]
    fig = _figure(go.Bar(x=labels, y=amounts, marker={"color": list(AGING_COLOURS)}, text=[f"{a:,.0f}" for a in amounts], textposition="outside", name="open"))
    layout = _layout(fig, title, height=280)
    layout["layout"]["showlegend"] = False
    return layout


def registry_events(events: pl.DataFrame, title: str, lang: str) -> dict[str, Any]:
    fig = _figure()
    for adverse in (False, True):
        part = events.filter(pl.col("event_type").is_in(list(ADVERSE_EVENTS)) == adverse)
        if part.height == 0:
            continue
        labels = [describe(t)[1 if lang == "zh" else 0] for t in part["event_type"]]
        fig.add_trace(
            go.Scatter(
                x=[d.isoformat() for d in part["event_on"]], y=labels, mode="markers", name=("adverse" if adverse else "change") if lang == "en" else ("负面" if adverse else "变更"),
                marker={"color": RED if adverse else GREY, "size": 11, "symbol": "x" if adverse else "circle"},
                text=[d or "" for d in part["detail"]], hovertemplate="%{x}: %{y}<br>%{text}<extra></extra>",
            )
        )
    return _layout(fig, title, height=120 + 26 * max(1, events["event_type"].n_unique()))
