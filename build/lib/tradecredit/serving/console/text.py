"""The console's words in English and Simplified Chinese (the reasons' own sentences come from
``serving.reasons``)."""

from __future__ import annotations

LANGUAGES = ("en", "zh")

TEXT: dict[str, dict[str, str]] = {
    "portfolio": {"en": "Portfolio", "zh": "组合"},
    "alerts": {"en": "Alerts", "zh": "预警"},
    "log_out": {"en": "Log out", "zh": "退出"},
    "language": {"en": "中文", "zh": "English"},
    "buyer": {"en": "Buyer", "zh": "买方"},
    "grade": {"en": "Grade", "zh": "等级"},
    "tier": {"en": "Tier", "zh": "风险层级"},
    "pd": {"en": "12-month PD", "zh": "12个月违约概率"},
    "limit": {"en": "Recommended limit", "zh": "建议额度"},
    "exposure": {"en": "Exposure", "zh": "敞口"},
    "available": {"en": "Available", "zh": "可用额度"},
    "premium_rate": {"en": "Premium rate", "zh": "保费费率"},
    "premium": {"en": "Premium", "zh": "保费"},
    "decision": {"en": "Decision", "zh": "决策"},
    "expected_loss": {"en": "Expected loss", "zh": "预期损失"},
    "cover_ratio": {"en": "Cover ratio", "zh": "赔付比例"},
    "insured_turnover": {"en": "Insured turnover", "zh": "投保营业额"},
    "reasons": {"en": "Why: the largest contributions to the score", "zh": "原因：对评分影响最大的因素"},
    "waterfall": {"en": "How the score is built (TreeSHAP, log-odds)", "zh": "评分构成（TreeSHAP，对数几率）"},
    "pd_history": {"en": "PD over time", "zh": "违约概率走势"},
    "payment_history": {"en": "Payment behaviour: days beyond terms and aging at each month start", "zh": "付款行为：每月初的逾期天数与账龄"},
    "aging_now": {"en": "Open invoices by age now", "zh": "当前未结清发票账龄"},
    "registry": {"en": "Registry, court and news events", "zh": "工商、司法与新闻事件"},
    "financials": {"en": "Filed statements and ratios", "zh": "财务报表与比率"},
    "decisions": {"en": "Decisions in the log", "zh": "决策记录"},
    "open_alerts": {"en": "Open alerts", "zh": "未关闭预警"},
    "what_if": {"en": "What if: an order", "zh": "假设：一笔订单"},
    "order_amount": {"en": "Order amount", "zh": "订单金额"},
    "terms_days": {"en": "Terms (days)", "zh": "账期（天）"},
    "try": {"en": "Assess", "zh": "评估"},
    "override": {"en": "Override the decision", "zh": "人工改判"},
    "reason": {"en": "Reason (required)", "zh": "理由（必填）"},
    "record_override": {"en": "Record the override", "zh": "记录改判"},
    "acknowledge": {"en": "Acknowledge", "zh": "确认"},
    "no_data": {"en": "Nothing known by the service clock.", "zh": "截至服务时钟无记录。"},
    "late_probability": {"en": "Probability of paying 30+ days late", "zh": "逾期30天以上的概率"},
    "clock": {"en": "Service clock", "zh": "服务时钟"},
    "model": {"en": "Model", "zh": "模型"},
    "firmographics": {"en": "Company", "zh": "企业信息"},
}


def words(lang: str) -> dict[str, str]:
    """Key -> text in ``lang`` (English for an unknown language)."""
    chosen = lang if lang in LANGUAGES else "en"
    return {key: texts[chosen] for key, texts in TEXT.items()}
