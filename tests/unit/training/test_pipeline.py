"""The training stages' own checks, without training: the simulator truth a run may read."""

from __future__ import annotations

import json
from datetime import date

import polars as pl
import pytest

from tradecredit.errors import StageError
from tradecredit.model_specs import model_spec
from tradecredit.training.pipeline import read_truth
from tradecredit.workspace import Workspace

DATA_END = date(2024, 12, 31)


@pytest.fixture
def ws(tmp_path) -> Workspace:
    """A workspace with a simulator truth folder of two invoices and one buyer-month."""
    ws = Workspace(tmp_path / "ws")
    truth = ws.simulated_truth
    truth.mkdir(parents=True)
    (truth / "summary.json").write_text(json.dumps({"data_end": DATA_END.isoformat()}))
    pl.DataFrame({"invoice_id": ["I1", "I2"], "p_late_30d": [0.1, 0.7]}).write_parquet(truth / "invoice_late.parquet")
    pl.DataFrame({"buyer_id": ["B1"], "as_of_date": [date(2024, 1, 1)], "pd_12m": [0.03], "latent_quality": [0.2]}).write_parquet(
        truth / "buyer_month_pd.parquet")
    return ws


def test_the_truth_is_keyed_like_the_training_rows(ws):
    late = read_truth(ws, model_spec("late"), DATA_END, 30)
    assert late is not None and late.columns == ["invoice_id", "truth"] and late["truth"].to_list() == [0.1, 0.7]
    default = read_truth(ws, model_spec("default"), DATA_END, 30)
    assert default is not None and default.columns == ["buyer_id", "as_of_ts", "truth"]
    assert default.schema["as_of_ts"] == pl.Datetime("us", "UTC") and default["truth"].to_list() == [0.03]


def test_a_late_label_other_than_30_days_has_no_truth(ws):
    # The simulator's p_late_30d is not the probability of late_10d: no oracle rather than a wrong one.
    assert read_truth(ws, model_spec("late"), DATA_END, 10) is None
    assert read_truth(ws, model_spec("default"), DATA_END, 10) is not None
    with pytest.raises(StageError, match=r"truth is for late_30d, not late_10d"):
        read_truth(ws, model_spec("late"), DATA_END, 10, ws.simulated_truth)


def test_a_truth_of_another_ledger_is_ignored_unless_named(ws):
    assert read_truth(ws, model_spec("late"), date(2025, 6, 30), 30) is None
    with pytest.raises(StageError, match=r"its data ends on another date"):
        read_truth(ws, model_spec("late"), date(2025, 6, 30), 30, ws.simulated_truth)
    with pytest.raises(StageError, match=r"no summary.json there"):
        read_truth(ws, model_spec("late"), DATA_END, 30, ws.root / "elsewhere")


def test_an_unknown_model_name_is_refused_with_the_choices():
    with pytest.raises(StageError, match=r"unknown model 'lat': choose default, late"):
        model_spec("lat")


def test_a_late_training_set_built_for_another_threshold_says_to_rebuild_it(config):
    from tradecredit.training.train import TrainingError, prepare

    built = pl.DataFrame({"buyer_id": ["B1"], "late_30d": [1], "amount": [1.0]})
    with pytest.raises(TrainingError, match=r"has late_30d, not late_0d .*run 'tradecredit features training-set late'"):
        prepare(built, "late", date(2025, 1, 1), config.training.model("late"), late_days=0)


def test_a_view_left_out_by_configuration_is_not_read(config):
    from pydantic import ValidationError

    from tests.model.synthetic import synthetic_training_set
    from tradecredit.features.catalog import FEATURES_BY_VIEW
    from tradecredit.training.train import prepare

    frame, data_end = synthetic_training_set("default", buyers=200, months=30)
    market = {f.name for f in FEATURES_BY_VIEW["market_conditions"]}
    assert config.training.model("default").left_out_views == ("market_conditions",), "the shipped default (decision 0015)"
    reading = config.training.model("default").model_copy(update={"left_out_views": ()})
    full = prepare(frame, "default", data_end, reading, late_days=30)
    assert market <= set(full.features)
    left = prepare(frame, "default", data_end, config.training.model("default"), late_days=30)
    assert not market & set(left.features) and set(left.features) == set(full.features) - market
    with pytest.raises(ValidationError, match="not views of the late feature service: financials"):
        type(config.training).model_validate(config.training.model_dump() | {"late": config.training.late.model_dump() | {"left_out_views": ["financials"]}})
