"""Reason codes: a model's largest SHAP contributions for one buyer, each with its value, its
direction and a plain-language sentence in English and Simplified Chinese.

Contributions are LightGBM's exact TreeSHAP (``pred_contrib``) in the model's raw log-odds,
before calibration. Calibration is monotone, so a contribution that raises the log-odds
raises the calibrated PD too. For a feature under a monotone constraint, LightGBM's ``basic``
method keeps every tree's left subtree at or below its right one, so the feature's SHAP value
can only rise with the feature (only fall, for a -1 constraint): a reason never says that
paying later lowered the risk (tested in ``tests/model``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from tradecredit.contract import OTHER_EVENT_TYPE, REGISTRY_EVENT_TYPES

Kind = Literal["count", "amount", "share", "days", "ratio", "index", "years", "month", "text", "flag"]

# Feature family (name without its window) -> English label, Chinese label, how to show the value.
FAMILIES: dict[str, tuple[str, str, Kind]] = {
    "invoices_issued": ("invoices issued", "开具发票数", "count"),
    "amount_issued": ("amount invoiced", "开票金额", "amount"),
    "invoices_settled": ("invoices settled", "已结清发票数", "count"),
    "late_share": ("share of invoices settled late", "逾期结清发票占比", "share"),
    "dbt_weighted": ("amount-weighted days beyond terms", "加权逾期天数", "days"),
    "dbt_max": ("longest days beyond terms", "最长逾期天数", "days"),
    "paydex": ("payment index (PAYDEX-style, 80 = on terms)", "付款指数（80为按期付款）", "index"),
    "disputes": ("disputed invoices", "争议发票数", "count"),
    "partial_payment_share": ("share of partial payments", "部分付款占比", "share"),
    "sellers": ("sellers invoicing the buyer", "供货商数量", "count"),
    "worst_seller_dbt": ("days beyond terms with the worst-paid seller", "对最差供货商的逾期天数", "days"),
    "dbt_trend_90d_vs_365d": ("change in days beyond terms (last 90 days against the year)", "逾期天数变化（近90天对比近一年）", "days"),
    "volume_change": ("change in amount invoiced against the 90 days before", "开票金额环比变化", "share"),
    "open_invoices": ("open invoices", "未结清发票数", "count"),
    "open_balance": ("open balance", "未结清余额", "amount"),
    "open_current": ("open amount not yet due", "未到期金额", "amount"),
    "open_1_30": ("amount 1-30 days past due", "逾期1-30天金额", "amount"),
    "open_31_60": ("amount 31-60 days past due", "逾期31-60天金额", "amount"),
    "open_61_90": ("amount 61-90 days past due", "逾期61-90天金额", "amount"),
    "open_90_plus": ("amount more than 90 days past due", "逾期90天以上金额", "amount"),
    "overdue_share": ("share of the open balance past due", "逾期金额占未结清余额比例", "share"),
    "dso": ("days sales outstanding", "应收账款周转天数", "days"),
    "days_since_last_payment": ("days since the last payment", "距上次付款天数", "days"),
    "days_since_first_invoice": ("length of the trading relationship", "合作时长", "days"),
    "registry_changes": ("registry changes (ownership, management, address, capital, name, scope)", "工商变更次数", "count"),
    "executive_turnover": ("executive and legal-representative changes", "高管及法定代表人变更次数", "count"),
    "days_since_lawsuit": ("days since the last lawsuit", "距最近一次诉讼天数", "days"),
    "days_since_enforcement_order": ("days since the last enforcement order", "距最近一次强制执行天数", "days"),
    "days_since_negative_news": ("days since the last negative news", "距最近一次负面新闻天数", "days"),
    "company_age_years": ("company age", "企业成立年限", "years"),
    "registered_capital": ("registered capital", "注册资本", "amount"),
    "paid_in_ratio": ("paid-in share of registered capital", "实缴资本比例", "share"),
    "employees": ("employees", "员工人数", "count"),
    "industry": ("industry", "行业", "text"),
    "country": ("country", "国家", "text"),
    "legal_form": ("legal form", "企业类型", "text"),
    "has_statement": ("a published financial statement", "已公开财务报表", "flag"),
    "days_since_statement": ("days since the latest financial statement", "距最近一期财报天数", "days"),
    "revenue": ("revenue", "营业收入", "amount"),
    "equity": ("equity", "所有者权益", "amount"),
    "debt_ratio": ("debt ratio (liabilities over assets)", "资产负债率", "share"),
    "current_ratio": ("current ratio", "流动比率", "ratio"),
    "cash_ratio": ("cash ratio", "现金比率", "ratio"),
    "net_margin": ("net margin", "净利润率", "share"),
    "roa": ("return on assets", "总资产收益率", "share"),
    "revenue_growth": ("revenue growth", "营业收入增长率", "share"),
    # The market view: how the whole book and the buyer's industry pay (the credit cycle).
    "market_late_share": ("share of invoices settled late across the whole book", "全部买方逾期结清发票占比", "share"),
    "market_dbt_weighted": ("days beyond terms across the whole book", "全部买方加权逾期天数", "days"),
    "industry_late_share": ("share of invoices settled late in the buyer's industry", "所属行业逾期结清发票占比", "share"),
    "industry_dbt_weighted": ("days beyond terms in the buyer's industry", "所属行业加权逾期天数", "days"),
    # The late-payment model's order features.
    "order_amount": ("order amount", "订单金额", "amount"),
    "order_terms_days": ("payment terms of the order", "订单账期", "days"),
    "amount_vs_usual_invoice": ("order amount against the usual invoice", "订单金额相对常规发票的倍数", "ratio"),
    "issue_month": ("month of the order", "下单月份", "month"),
}
REGISTRY_LABELS: dict[str, tuple[str, str]] = {
    "shareholder_change": ("shareholder changes", "股东变更次数"),
    "executive_change": ("executive changes", "高管变更次数"),
    "legal_representative_change": ("legal-representative changes", "法定代表人变更次数"),
    "address_change": ("address changes", "地址变更次数"),
    "capital_change": ("capital changes", "注册资本变更次数"),
    "name_change": ("name changes", "名称变更次数"),
    "business_scope_change": ("business-scope changes", "经营范围变更次数"),
    "lawsuit_filed": ("lawsuits filed", "被诉案件数"),
    "court_judgment": ("court judgments", "法院判决数"),
    "enforcement_order": ("enforcement orders", "强制执行次数"),
    "tax_penalty": ("tax penalties", "税务处罚次数"),
    "administrative_penalty": ("administrative penalties", "行政处罚次数"),
    "negative_news": ("negative news items", "负面新闻条数"),
    "insolvency_filing": ("insolvency filings", "破产申请次数"),
    OTHER_EVENT_TYPE: ("other registry events", "其他工商事件数"),
}
assert set(REGISTRY_LABELS) == {*REGISTRY_EVENT_TYPES, OTHER_EVENT_TYPE}
FAMILIES.update({t: (en, zh, "count") for t, (en, zh) in REGISTRY_LABELS.items()})

_WINDOW = re.compile(r"^(?P<family>.+)_(?P<days>\d+)d$")

Direction = Literal["raises_risk", "lowers_risk"]


@dataclass(frozen=True)
class Reason:
    feature: str
    value: float | int | str | None
    contribution: float  # SHAP value in log-odds of the model's raw score
    direction: Direction
    monotone: int  # the model's constraint on the feature: +1, -1, or 0 (none)
    sentence_en: str
    sentence_zh: str


def describe(feature: str) -> tuple[str, str, Kind, int | None]:
    """English label, Chinese label, value kind and window (days) of a feature name."""
    if feature in FAMILIES:
        en, zh, kind = FAMILIES[feature]
        return en, zh, kind, None
    match = _WINDOW.match(feature)
    if match and match["family"] in FAMILIES:
        en, zh, kind = FAMILIES[match["family"]]
        return en, zh, kind, int(match["days"])
    raise KeyError(f"no reason wording for feature '{feature}'")


def format_value(value: Any, kind: Kind) -> tuple[str, str]:
    """The value as English and Chinese text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown", "未知"
    if kind == "text":
        return str(value), str(value)
    number = float(value)
    if kind == "flag":
        return ("yes", "是") if number else ("no", "否")
    if kind == "share":
        text = f"{number:.1%}"
    elif kind == "amount":
        text = f"{number:,.0f}"
    elif kind in ("count", "month"):
        text = f"{number:,.0f}"
    elif kind == "days":
        text = f"{number:,.0f}"
        return f"{text} days", f"{text}天"
    elif kind == "years":
        return f"{number:.1f} years", f"{number:.1f}年"
    else:
        text = f"{number:,.2f}"
    return text, text


def sentence(feature: str, value: Any, direction: Direction) -> tuple[str, str]:
    en, zh, kind, window = describe(feature)
    value_en, value_zh = format_value(value, kind)
    effect_en = "raises" if direction == "raises_risk" else "lowers"
    effect_zh = "推高" if direction == "raises_risk" else "降低"
    window_en = f" over the last {window} days" if window else ""
    window_zh = f"近{window}天" if window else ""
    label_en = en[0].upper() + en[1:]
    is_zh = f"{zh}未知" if value_zh == "未知" else f"{zh}为{value_zh}"
    return (
        f"{label_en}{window_en}: {value_en}, which {effect_en} the risk.",
        f"{window_zh}{is_zh}，{effect_zh}了风险。",
    )


def top_reasons(
    features: tuple[str, ...],
    values: dict[str, Any],
    contributions: np.ndarray,
    monotone: dict[str, int],
    count: int,
) -> list[Reason]:
    """The ``count`` largest contributions by size (zero contributions are not reasons).

    ``contributions`` is one row of ``pred_contrib`` without its last (base value) column.
    """
    order = np.argsort(-np.abs(contributions), kind="stable")
    reasons = []
    for j in order[:count]:
        c = float(contributions[j])
        if c == 0.0:
            break
        name = features[j]
        direction: Direction = "raises_risk" if c > 0 else "lowers_risk"
        value = values.get(name)
        if isinstance(value, float) and math.isnan(value):
            value = None
        en, zh = sentence(name, value, direction)
        reasons.append(Reason(name, value, c, direction, int(monotone.get(name, 0)), en, zh))
    return reasons
