"""Split boundaries: the gap holds, slices do not overlap, held-out buyers stay out of training."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest
from pydantic import ValidationError

from tradecredit.training.config import SplitConfig
from tradecredit.training.splits import SplitError, SplitPlan, assign_slices, holdout_buyers, plan_split

CFG = SplitConfig(label_horizon_days=365, gap_days=365, calibration_months=5, test_months=7,
                  holdout_buyer_share=0.4, holdout_salt="s", origins=3, min_train_months=6)


def _monthly(start: date, months: int, buyers: int) -> pl.DataFrame:
    days = pl.date_range(start, date(start.year + (months - 1) // 12, (months - 1) % 12 + 1, 1), "1mo", eager=True)
    return pl.DataFrame({"buyer_id": [f"B{i}" for i in range(buyers)]}).join(pl.DataFrame({"as_of_ts": days}), how="cross")


def test_slices_sit_where_the_config_says_with_the_gap():
    frame = _monthly(date(2023, 1, 1), 36, 50)  # as-of 2023-01 .. 2025-12, labels complete to 2026-12-31
    plan = plan_split(frame["as_of_ts"], date(2026, 12, 31), CFG, "as_of_ts")
    assert (plan.test_start, plan.test_end) == (date(2025, 6, 1), date(2025, 12, 1))
    assert plan.calibration_end == date(2024, 6, 1) and plan.calibration_start == date(2024, 2, 1)
    assert plan.train_end == plan.calibration_start
    sliced = assign_slices(frame, plan)
    last = {s: sliced.filter(pl.col("slice") == s)["as_of_ts"].max() for s in ("train", "calibration")}
    first_test = sliced.filter(pl.col("slice") == "test")["as_of_ts"].min()
    # No training or calibration label window (as_of + horizon) reaches the first test date.
    assert all(d + timedelta(days=CFG.label_horizon_days) <= first_test for d in last.values())
    assert last["train"] < sliced.filter(pl.col("slice") == "calibration")["as_of_ts"].min()


def test_held_out_buyers_never_train_and_calibration_uses_only_them():
    frame = _monthly(date(2023, 1, 1), 36, 200)
    sliced = assign_slices(frame, plan_split(frame["as_of_ts"], date(2026, 12, 31), CFG, "as_of_ts"))
    train_buyers = set(sliced.filter(pl.col("slice") == "train")["buyer_id"])
    held = set(sliced.filter(pl.col("holdout_buyer"))["buyer_id"])
    assert train_buyers and held and not train_buyers & held
    assert set(sliced.filter(pl.col("slice") == "calibration")["buyer_id"]) <= held
    assert 0.25 < len(held) / 200 < 0.55


def test_holdout_is_stable_and_salted():
    ids = pl.Series([f"B{i}" for i in range(500)])
    assert holdout_buyers(ids, 0.4, "a").to_list() == holdout_buyers(ids, 0.4, "a").to_list()
    assert holdout_buyers(ids, 0.4, "a").to_list() != holdout_buyers(ids, 0.4, "b").to_list()


def test_labels_past_the_horizon_are_not_tested():
    frame = _monthly(date(2023, 1, 1), 48, 10)  # as-of dates run past data_end - horizon
    plan = plan_split(frame["as_of_ts"], date(2026, 12, 31), CFG, "as_of_ts")
    assert plan.test_end == date(2025, 12, 31)
    sliced = assign_slices(frame, plan)
    assert sliced.filter(pl.col("as_of_ts") > date(2025, 12, 31))["slice"].unique().to_list() == ["unused"]


def test_too_short_a_history_is_an_error_that_says_so():
    frame = _monthly(date(2023, 1, 1), 20, 5)
    with pytest.raises(SplitError, match="not enough history"):
        plan_split(frame["as_of_ts"], date(2025, 8, 31), CFG, "as_of_ts")


def test_a_gap_shorter_than_the_label_horizon_is_refused_at_config_load():
    with pytest.raises(ValidationError, match="gap_days"):
        SplitConfig(label_horizon_days=365, gap_days=200, calibration_months=3, test_months=3, holdout_buyer_share=0.3, holdout_salt="s",
                    origins=3, min_train_months=6)


WALK = CFG.model_copy(update={"test_months": 4})


def test_walk_forward_origins_test_back_to_back_up_to_the_last_complete_label():
    frame = _monthly(date(2021, 1, 1), 60, 20)  # as-of 2021-01 .. 2025-12
    plan = plan_split(frame["as_of_ts"], date(2025, 12, 31), WALK, "as_of_ts")
    assert len(plan.origins) == 3 and plan.origins[0].test_end == plan.test_end == plan.production_end == date(2024, 12, 31)
    assert (plan.origins[0].test_start, plan.origins[0].test_end) == (plan.test_start, plan.test_end)
    for later, earlier in zip(plan.origins, plan.origins[1:]):
        assert earlier.test_end + timedelta(days=1) == later.test_start  # no month tested twice, none skipped
    for origin in plan.origins:
        # No training row's 12-month label reaches the origin's first test date.
        assert origin.train_end + timedelta(days=WALK.label_horizon_days) <= origin.test_start
    assert plan.origins[-1].test_start == date(2024, 1, 1)
    assert SplitPlan.from_dict(plan.as_dict()) == plan


def test_a_short_history_keeps_only_the_origins_it_can_train():
    # As-of 2022-03 .. 2025-06, labelled to 2024-06: the third origin would train to 2022-07-01,
    # under six months after the first row.
    plan = plan_split(_monthly(date(2022, 3, 1), 40, 20)["as_of_ts"], date(2025, 6, 30), WALK, "as_of_ts")
    assert [o.train_end for o in plan.origins] == [date(2023, 3, 2), date(2022, 11, 1)]
    one_month_earlier = plan_split(_monthly(date(2022, 1, 1), 42, 20)["as_of_ts"], date(2025, 6, 30), WALK, "as_of_ts")
    assert len(one_month_earlier.origins) == 3
