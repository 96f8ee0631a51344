"""The assessment in process: the same path the service runs, without HTTP."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from tests.integration.serving.conftest import clock_at_data_end
from tradecredit.training.model import CreditModel
from tradecredit.features.store import historical_features, open_store
from tradecredit.serving.decision_log import read_decisions
from tradecredit.serving.engine import Assessor, Clock, ServedModel
from tradecredit.serving.errors import ApiError
from tradecredit.serving.schemas import Assessment, AssessRequest
from tradecredit.workspace import Workspace
from tradecredit.sql_stores import sqlite_url


def one(assessor: Assessor, **request) -> Assessment:
    result = assessor.assess([AssessRequest(**request)], "assess")[0]
    assert isinstance(result, Assessment), result
    return result


def test_online_scores_equal_the_training_paths_scores(demo_run, assessor, served_config):
    """Train/serve parity: the served PD equals the model applied to Feast's point-in-time
    (historical) features of the same buyers at the materialized date."""
    buyers = ["B000001", "B000002", "B000003", "B000004"]
    served = [one(assessor, buyer_id=b) for b in buyers]
    ws = Workspace(demo_run.workspace)
    as_of = served[0].freshness.features_as_of
    store = open_store(ws.feature_paths(), served_config.features)
    frame = historical_features(store, "default", pl.DataFrame({"buyer_id": buyers, "as_of_ts": [as_of] * len(buyers)}))
    expected = assessor.models["default"].model.predict_proba(frame)
    np.testing.assert_allclose([s.pd_12m for s in served], expected, rtol=0, atol=1e-12)


def test_a_full_assessment(assessor, served_config, demo_run):
    a = one(assessor, buyer_id="B000001", order={"amount": 5000, "terms_days": 30}, requested_limit=80000)
    assert 0 < a.pd_12m < 1 and 1 <= a.grade <= 10 and a.late_payment is not None and 0 < a.late_payment_probability < 1
    assert a.model_versions == {"tradecredit-default-12m": "1", "tradecredit-late-30d": "1"}
    assert a.explanation.available and a.explanation.additivity_error < 1e-9
    contributions = [abs(r.contribution) for r in a.explanation.reasons]
    # The largest contributions, as many as configured, or every non-zero one if fewer (the
    # demo's 400-buyer default model can be a handful of trees that use few features).
    model = assessor.models["default"].model
    store = open_store(Workspace(demo_run.workspace).feature_paths(), served_config.features)
    frame = historical_features(store, "default", pl.DataFrame({"buyer_id": ["B000001"], "as_of_ts": [a.freshness.features_as_of]}))
    nonzero = int(np.count_nonzero(model.contributions(model.matrix(frame))[0, :-1]))
    assert contributions == sorted(contributions, reverse=True)
    assert len(contributions) == min(served_config.serving.top_reasons, nonzero) > 0
    assert all(r.sentence_en and r.sentence_zh for r in a.explanation.reasons)
    assert a.freshness.stale is False and a.freshness.age_days is not None and a.freshness.age_days < 1
    assert a.insurance.premium_rate >= served_config.policy.insurance.floor_rate
    assert a.expected_loss == pytest.approx(a.pd_12m * served_config.policy.lgd * (a.exposure + a.approved_amount))


def test_without_an_order_there_is_no_late_payment_score(assessor):
    a = one(assessor, buyer_id="B000002")
    assert a.late_payment is None and a.late_payment_probability is None
    assert a.model_versions == {"tradecredit-default-12m": "1"}


def test_decisions_are_logged_with_features_and_versions(demo_run, assessor):
    a = one(assessor, buyer_id="B000003", order={"amount": 1000, "terms_days": 45})
    logged = [r for r in read_decisions(sqlite_url(Workspace(demo_run.workspace).decision_log)) if r["decision_id"] == a.decision_id]
    assert len(logged) == 1
    row = logged[0]
    assert row["default_model"] == "tradecredit-default-12m:1" and row["late_model"] == "tradecredit-late-30d:1"
    assert row["request"] == {"buyer_id": "B000003", "seller_id": None, "order": {"amount": 1000.0, "terms_days": 45}, "requested_limit": None}
    assert set(row["features"]) == {"default", "late"} and row["features"]["late"]["order_amount"] == 1000.0
    assert row["response"]["pd_12m"] == a.pd_12m and row["decision"] == a.decision


class CorruptedContributions(CreditModel):
    """A model whose explanation no longer adds up to its score."""

    def contributions(self, x):
        out = super().contributions(x).copy()
        out[:, 0] += 0.01
        return out


def test_a_failed_additivity_check_marks_the_explanation_unavailable_and_refers(assessor):
    default = assessor.models["default"]
    corrupted = CorruptedContributions(**{f.name: getattr(default.model, f.name) for f in dataclasses.fields(default.model)})
    broken = ServedModel(corrupted, default.registered_model, default.version)
    tampered = Assessor(assessor.cfg, {**assessor.models, "default": broken}, assessor.reader, assessor.clock, None)
    order = {"amount": 10, "terms_days": 30}
    # A buyer the honest model approves, so the referral can only come from the failed check.
    buyer = next(b for b in (f"B{i:06d}" for i in range(1, 200)) if one(assessor, buyer_id=b, order=order).decision == "approve")
    honest, bad = one(assessor, buyer_id=buyer, order=order), one(tampered, buyer_id=buyer, order=order)
    assert bad.pd_12m == honest.pd_12m, "the score is still returned"
    assert bad.explanation.available is False and bad.explanation.reasons == [] and bad.explanation.additivity_error == pytest.approx(0.01)
    assert bad.decision == "refer" and "additivity" in bad.decision_reason and bad.approved_amount == 0


def test_stale_and_future_dated_features_are_flagged_and_referred(demo_run, assessor, served_config):
    now = clock_at_data_end(demo_run.workspace).fixed
    late_clock = Assessor(assessor.cfg, assessor.models, assessor.reader, Clock(now + timedelta(days=served_config.features.max_online_age_days + 1)), None)
    stale = one(late_clock, buyer_id="B000005")
    assert stale.freshness.stale and len(stale.freshness.stale_features) == 100
    assert stale.decision in ("refer", "decline") and ("older than" in stale.decision_reason or stale.decision == "decline")
    early_clock = Assessor(assessor.cfg, assessor.models, assessor.reader, Clock(now - timedelta(days=2)), None)
    future = one(early_clock, buyer_id="B000005")
    assert future.freshness.stale, "a snapshot dated after the clock is a fact the as-of time could not know"


def test_unknown_buyers_and_out_of_bounds_amounts(assessor, served_config):
    [unknown] = assessor.assess([AssessRequest(buyer_id="NOT-A-BUYER")], "assess")
    assert isinstance(unknown, ApiError) and (unknown.status, unknown.code, unknown.field) == (404, "unknown_buyer", "buyer_id")
    huge = served_config.serving.orders.max_amount * 2
    mixed = assessor.assess(
        [AssessRequest(buyer_id="B000001"), AssessRequest(buyer_id="NOT-A-BUYER"), AssessRequest(buyer_id="B000002", order={"amount": huge, "terms_days": 30})],
        "assess_batch",
    )
    assert isinstance(mixed[0], Assessment)
    assert isinstance(mixed[1], ApiError) and mixed[1].field == "requests.1.buyer_id"
    assert isinstance(mixed[2], ApiError) and (mixed[2].status, mixed[2].field) == (400, "requests.2.order.amount")


def test_a_batch_reads_the_online_store_once(assessor):
    """Every buyer of a batch comes from one read (on SQLite one query per feature view), not one per buyer."""
    calls = []

    class CountingReader:
        def __init__(self, reader):
            self.reader = reader

        def __getattr__(self, name):
            return getattr(self.reader, name)

        def read(self, buyer_ids, read_at=None):
            calls.append(list(buyer_ids))
            return self.reader.read(buyer_ids, read_at)

    counted = Assessor(assessor.cfg, assessor.models, CountingReader(assessor.reader), assessor.clock, None)  # type: ignore[arg-type]
    buyers = [f"B{i:06d}" for i in range(1, 41)]
    results = counted.assess([AssessRequest(buyer_id=b) for b in buyers], "assess_batch")
    assert all(isinstance(r, Assessment) for r in results)
    assert calls == [buyers]
