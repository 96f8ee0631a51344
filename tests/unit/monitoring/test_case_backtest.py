"""The early-warning backtest on a planted history whose precision, recall and lead time are
worked out by hand."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest

from tradecredit.monitoring.case_backtest import case_backtest
from tradecredit.monitoring.cases import SNAPSHOT_COLUMNS

RUN1, RUN2 = date(2025, 1, 1), date(2025, 2, 1)
DATA_END = date(2026, 6, 30)
BUYERS = [f"B{i}" for i in range(1, 11)]


def history() -> pl.DataFrame:
    """Both runs score the ten buyers at a PD of 10%."""
    return pl.DataFrame(
        [(datetime(d.year, d.month, d.day), b, 0.1) for d in (RUN1, RUN2) for b in BUYERS],
        schema={"as_of_ts": pl.Datetime("us"), "buyer_id": pl.String, "pd_12m": pl.Float64}, orient="row",
    )


def spells() -> pl.DataFrame:
    rows = [
        ("B1", date(2025, 6, 1), None),  # red from RUN1: 151 days before the default
        ("B2", date(2025, 3, 1), None),  # yellow from RUN2 only: 28 days before
        ("B3", date(2025, 5, 1), None),  # never flagged
        ("B5", date(2024, 12, 1), None),  # already in default at both runs: left out (but on the red list)
    ]
    return pl.DataFrame(rows, schema={"buyer_id": pl.String, "default_on": pl.Date, "cured_on": pl.Date}, orient="row")


def snapshots() -> pl.DataFrame:
    rows = [(d.isoformat(), b, i, "red", "red", RUN1.isoformat()) for d in (RUN1, RUN2) for i, b in enumerate(("B1", "B4", "B5"))]
    rows.append((RUN2.isoformat(), "B2", 9, "yellow", "yellow", RUN2.isoformat()))
    return pl.DataFrame(rows, schema=SNAPSHOT_COLUMNS, orient="row")


def alerts() -> pl.DataFrame:
    """B1's lawsuits alert, raised 2024-12-15, cleared by RUN2; B3's raised after both runs."""
    return pl.DataFrame(
        [("B1", "lawsuits", "2024-12-15", RUN2.isoformat()), ("B3", "lawsuits", "2025-03-01", None)],
        schema={"buyer_id": pl.String, "signal": pl.String, "raised_on": pl.String, "cleared_on": pl.String}, orient="row",
    )


def test_precision_recall_and_lead_time_by_hand():
    found = case_backtest(history(), snapshots(), alerts(), spells(), DATA_END, lead_days=90)
    # 9 scored buyers a run (B5 is in default): B1, B2 and B3 default within 12 months of each run.
    assert found.runs == [RUN1, RUN2] and found.defaults == 6 and found.base_rate == pytest.approx(6 / 18)
    rows = {r["flag"]: r for r in found.table.to_dicts()}
    red = rows["case red"]
    # B1 and B4 at both runs; B1 defaults.
    assert (red["flagged"], red["hits"]) == (4, 2)
    assert red["precision"] == pytest.approx(0.5) and red["lift"] == pytest.approx(0.5 / (6 / 18))
    assert red["recall"] == pytest.approx(2 / 6)
    # Defaults 90+ days after the run: B1 (151) and B3 (120) after RUN1, B1 (120) after RUN2 (B3: 89, B2: 59 and 28).
    assert red["recall_at_lead"] == pytest.approx(2 / 3)
    # Counted by buyer: B1 and B3 defaulted 90+ days after a run (B2 never did); red flagged B1 at both.
    assert found.defaulted_buyers_at_lead == 2 and red["buyer_recall_at_lead"] == pytest.approx(1 / 2)
    assert red["median_lead_days"] == 151  # from the case's opening, RUN1
    yellow = rows["case yellow"]
    assert (yellow["flagged"], yellow["hits"], yellow["recall_at_lead"], yellow["median_lead_days"]) == (1, 1, 0.0, 28)
    assert yellow["buyer_recall_at_lead"] == 0.0  # B2's yellow came 28 days before its default
    assert (rows["case (any colour)"]["flagged"], rows["case (any colour)"]["hits"]) == (5, 3)
    lawsuits = rows["signal lawsuits"]  # open at RUN1 only; B3's was raised after both runs
    assert (lawsuits["flagged"], lawsuits["hits"], lawsuits["median_lead_days"]) == (1, 1, (date(2025, 6, 1) - date(2024, 12, 15)).days)
    red_list = found.red_list.to_dicts()
    assert [(r["as_of"], r["red"], r["red_in_default"]) for r in red_list] == [(RUN1, 3, 1), (RUN2, 3, 1)]
    assert red_list[0]["expected_defaults"] == pytest.approx(1.0) and red_list[0]["red_over_expected"] == pytest.approx(3.0)
    assert any("case red" in line for line in found.describe())


def test_runs_whose_year_has_not_matured_are_left_out():
    found = case_backtest(history(), snapshots(), alerts(), spells(), date(2025, 12, 31), lead_days=90)
    assert found.runs == [] and found.table.height == 0
    assert found.describe() == ["Early warnings: no monitoring run has a matured 12-month window yet."]
