"""Reason wording: every feature a model can use has a sentence in both languages, and the
largest contributions come first with the sign of their contribution."""

from __future__ import annotations

import numpy as np
import pytest

from tradecredit.features.catalog import FEATURES, ORDER_FEATURES
from tradecredit.serving.reasons import describe, format_value, sentence, top_reasons


@pytest.mark.parametrize("feature", [f.name for f in (*FEATURES, *ORDER_FEATURES)])
def test_every_feature_has_wording_in_both_languages(feature):
    en, zh, kind, window = describe(feature)
    assert en and zh and kind
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh), "the Chinese label is Chinese"
    if feature.endswith(("_90d", "_180d", "_365d")) and feature != "dbt_trend_90d_vs_365d":
        assert window == int(feature.rsplit("_", 1)[1][:-1])


def test_an_unknown_feature_is_an_error_not_a_silent_blank():
    with pytest.raises(KeyError, match="no_such_feature"):
        describe("no_such_feature")


def test_sentences_by_hand():
    en, zh = sentence("dbt_weighted_90d", 12.4, "raises_risk")
    assert en == "Amount-weighted days beyond terms over the last 90 days: 12 days, which raises the risk."
    assert zh == "近90天加权逾期天数为12天，推高了风险。"
    en, zh = sentence("paid_in_ratio", None, "lowers_risk")
    assert en == "Paid-in share of registered capital: unknown, which lowers the risk." and zh == "实缴资本比例未知，降低了风险。"
    assert format_value(0.25, "share") == ("25.0%", "25.0%") and format_value(1, "flag") == ("yes", "是")


def test_top_reasons_are_the_largest_contributions_with_their_sign():
    features = ("late_share_90d", "paydex_90d", "revenue", "employees")
    values = {"late_share_90d": 0.5, "paydex_90d": 40.0, "revenue": float("nan"), "employees": 3}
    contributions = np.array([0.3, -0.8, 0.0, 0.05])
    reasons = top_reasons(features, values, contributions, {"late_share_90d": 1, "paydex_90d": -1}, count=3)
    assert [r.feature for r in reasons] == ["paydex_90d", "late_share_90d", "employees"]  # zero is no reason
    assert [r.direction for r in reasons] == ["lowers_risk", "raises_risk", "raises_risk"]
    assert [r.monotone for r in reasons] == [-1, 1, 0]
    assert reasons[0].contribution == -0.8 and "lowers the risk" in reasons[0].sentence_en and "降低" in reasons[0].sentence_zh
    nan_only = top_reasons(("revenue",), values, np.array([0.2]), {}, count=1)
    assert nan_only[0].value is None and "unknown" in nan_only[0].sentence_en
