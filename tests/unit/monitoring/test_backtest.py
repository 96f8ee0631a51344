"""Backtests on a portfolio with a known answer."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from tradecredit.monitoring.backtest import backtest_runs

RUN = date(2024, 1, 1)
DATA_END = date(2025, 6, 30)


def portfolio(low_group_defaults: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """500 buyers at PD 2% (grade 6) and 500 at 10% (grade 9); 50 of the second group default
    within the year, and ``low_group_defaults`` of the first."""
    ids = [f"B{i:04d}" for i in range(1000)]
    history = pl.DataFrame({
        "buyer_id": ids,
        "as_of_ts": [datetime(RUN.year, RUN.month, RUN.day, tzinfo=UTC)] * 1000,
        "pd_12m": [0.02] * 500 + [0.10] * 500,
        "grade": [6] * 500 + [9] * 500,
        "model_version": ["3"] * 1000,
    })
    defaulted = ids[:low_group_defaults] + ids[500:550]
    defaults = pl.DataFrame({"buyer_id": defaulted, "default_on": [RUN + timedelta(days=100)] * len(defaulted),
                             "cured_on": [None] * len(defaulted)}, schema={"buyer_id": pl.String, "default_on": pl.Date, "cured_on": pl.Date})
    return history, defaults


def test_a_calibrated_run_by_hand(config):
    history, defaults = portfolio(low_group_defaults=10)
    [run] = backtest_runs(history, defaults, DATA_END, reference_auc=0.68, cfg=config.monitoring.backtest)
    # Ties count half: (50 x 490 + (10 x 490 + 50 x 450) / 2) / (60 x 940)
    assert run.auc == pytest.approx(38_200 / 56_400) and run.gini == pytest.approx(2 * 38_200 / 56_400 - 1)
    assert (run.rows, run.events, run.model_version) == (1000, 60, "3")
    assert run.observed_rate == pytest.approx(0.06) and run.mean_pd == pytest.approx(0.06)
    assert run.grades["events"].to_list() == [10, 50] and run.miscalibrated_grades == []
    assert run.retrain is False and run.reasons == []


def test_an_underestimated_grade_and_a_weak_ranking_recommend_retraining(config):
    history, defaults = portfolio(low_group_defaults=60)  # 12% observed where 2% was predicted
    [run] = backtest_runs(history, defaults, DATA_END, reference_auc=0.80, cfg=config.monitoring.backtest)
    assert run.miscalibrated_grades == [6] and run.retrain
    assert any("grade(s) 6" in r for r in run.reasons) and any("below the champion's test AUC" in r for r in run.reasons)


def test_runs_whose_label_has_not_matured_are_not_backtested(config):
    history, defaults = portfolio(low_group_defaults=10)
    assert backtest_runs(history, defaults, RUN + timedelta(days=300), 0.68, config.monitoring.backtest) == []
    already = defaults.with_columns(default_on=pl.lit(RUN - timedelta(days=5)))  # in default at the run: not scored
    [run] = backtest_runs(history, already, DATA_END, 0.68, config.monitoring.backtest)
    assert run.rows == 1000 - 60 and run.events == 0 and run.auc is None


def late_case(censored_in_second_run: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Run 1 scored 1,000 invoices: 500 at 5% (25 late) and 500 at 30% (150 late). Run 2 scored
    two invoices, one of them still undecided at the data end when ``censored_in_second_run``."""
    issued, due = date(2025, 1, 10), date(2025, 2, 9)
    ids = [f"I{i:04d}" for i in range(1000)]
    # Spread evenly, so every risk decile (100 tied rows) holds its group's exact rate.
    late = {ids[i] for i in range(0, 500, 20)} | {ids[i] for i in range(500, 1000) if (i - 500) % 10 < 3}
    invoices = pl.DataFrame({
        "invoice_id": [*ids, "J1", "J2"], "buyer_id": ["B"] * 1002,
        "issued_on": [issued] * 1000 + [date(2025, 6, 1)] * 2, "due_on": [due] * 1000 + [date(2025, 7, 1)] * 2,
        "settled_on": [due + timedelta(days=60 if i in late else 0) for i in ids]
        + [date(2025, 7, 1), None if censored_in_second_run else date(2025, 7, 2)],
    })
    history = pl.DataFrame({
        "invoice_id": [*ids, "J1", "J2"], "run_as_of": [date(2025, 2, 1)] * 1000 + [date(2025, 7, 1)] * 2,
        "p_late": [0.05] * 500 + [0.30] * 500 + [0.1, 0.2], "model_version": ["2"] * 1002,
    })
    return history, invoices


def test_late_payment_backtest_by_hand_and_only_on_fully_decided_runs(config):
    from tradecredit.monitoring.backtest import late_backtest_runs

    history, invoices = late_case(censored_in_second_run=True)
    [run] = late_backtest_runs(history, invoices, 30, date(2025, 7, 20), reference_auc=0.78, cfg=config.monitoring.backtest)
    # Ties count half: (150 x 475 + 150 x 350 / 2 + 25 x 475 / 2) / (175 x 825)
    assert run.as_of == date(2025, 2, 1) and (run.rows, run.events) == (1000, 175)
    assert run.auc == pytest.approx(103_437.5 / 144_375)
    assert run.observed_rate == pytest.approx(0.175) and run.mean_predicted == pytest.approx(0.175)
    assert run.deciles["events"].to_list() == [5] * 5 + [30] * 5 and run.miscalibrated_deciles == []
    # AUC 0.716 is more than 0.05 below the reference 0.78: retrain.
    assert run.retrain and "AUC 0.716" in run.reasons[0]
    # Once the second run's last invoice is decided, that run is measured too.
    history, invoices = late_case(censored_in_second_run=False)
    runs = late_backtest_runs(history, invoices, 30, date(2025, 8, 20), reference_auc=0.70, cfg=config.monitoring.backtest)
    assert [r.as_of for r in runs] == [date(2025, 2, 1), date(2025, 7, 1)] and runs[1].rows == 2 and runs[1].auc is None
    assert not runs[0].retrain
