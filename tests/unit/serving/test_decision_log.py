"""The decision log: appended rows come back whole, a batch is one transaction, threads share it;
reviews are checked. (The same tests run on PostgreSQL in tests/integration/serving.)"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading

import pytest
import sqlalchemy as sa

from tradecredit.sql_stores import sqlite_url
from tradecredit.serving.decision_log import ADDED_COLUMNS, COLUMNS, DecisionLog, DecisionRecord, ReviewRecord, read_decisions, read_reviews


@pytest.fixture
def log_url(tmp_path) -> str:
    """The log's store: a SQLite file here; tests/integration/serving/test_stores_on_postgres.py
    runs these same tests on PostgreSQL."""
    return sqlite_url(tmp_path / "decisions.db")


def record(i: int, buyer: str = "B1") -> DecisionRecord:
    return DecisionRecord(
        decision_id=f"d{i}", logged_at="2026-01-01T00:00:00+00:00", assessed_at="2026-01-01T00:00:00+00:00", request_id="r",
        endpoint="assess", buyer_id=buyer, request={"buyer_id": buyer}, features={"default": {"open_balance": 1.5, "revenue": None}},
        features_as_of="2025-12-31T00:00:00+00:00", stale=False, default_model="m:1", late_model=None, pd_12m=0.01, grade=4,
        decision="approve", response_json='{"pd_12m": 0.01}',
    )


def test_rows_come_back_whole_and_in_order(log_url):
    log = DecisionLog(log_url)
    log.append([record(1), record(2, "B2")])
    rows = list(read_decisions(log_url))
    assert [r["decision_id"] for r in rows] == ["d1", "d2"]
    assert rows[0]["features"] == {"default": {"open_balance": 1.5, "revenue": None}} and rows[0]["stale"] is False
    assert [r["decision_id"] for r in read_decisions(log_url, "B2")] == ["d2"]
    assert log.count() == 2


def test_a_failed_batch_leaves_nothing_behind(log_url):
    log = DecisionLog(log_url)
    log.append([record(1)])
    with pytest.raises(sa.exc.IntegrityError):
        log.append([record(2), record(1)])  # d1 again: the whole batch rolls back
    assert [r["decision_id"] for r in read_decisions(log_url)] == ["d1"]


def test_threads_and_a_second_connection_append_side_by_side(log_url):
    logs = [DecisionLog(log_url), DecisionLog(log_url)]  # two workers' connections
    threads = [threading.Thread(target=lambda k=k: [logs[k % 2].append([record(k * 100 + i)]) for i in range(50)]) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r["decision_id"] for r in read_decisions(log_url)}) == 200


def test_reviews_are_recorded_with_who_and_what_and_checked(log_url):
    log = DecisionLog(log_url)
    log.append([record(1, "B1")])
    log.append_review(ReviewRecord("r1", "2026-11-23T10:00:00+00:00", "alice", "override", "B1", "documents checked", decision_id="d1",
                                   model_decision="refer", override_decision="approve", override_limit=50_000.0))
    log.append_review(ReviewRecord("r2", "2026-11-23T10:01:00+00:00", "bob", "acknowledge", "B2", "", alert_id=7, alert_signal="lawsuits",
                                   alert_raised_on="2026-11-01"))
    with pytest.raises(sa.exc.IntegrityError):
        log.append_review(ReviewRecord("r3", "t", "alice", "delete", "B1", "x"))
    with pytest.raises(sa.exc.IntegrityError):
        log.append_review(ReviewRecord("r4", "t", "alice", "override", "B1", "x", decision_id="d1", override_decision="maybe"))
    log.close()
    everything = read_reviews(log_url)
    assert [(r["review_id"], r["reviewer"], r["action"]) for r in everything] == [("r1", "alice", "override"), ("r2", "bob", "acknowledge")]
    assert everything[0]["override_limit"] == 50_000.0 and everything[0]["decision_id"] == "d1"
    assert [r["review_id"] for r in read_reviews(log_url, buyer_id="B2")] == ["r2"]
    assert [r["review_id"] for r in read_reviews(log_url, action="override")] == ["r1"]


def test_reading_a_log_not_written_yet_finds_nothing_and_creates_nothing(tmp_path):
    missing = tmp_path / "missing.db"
    assert read_reviews(sqlite_url(missing)) == [] and read_decisions(sqlite_url(missing)) == []
    assert not missing.exists()


def test_a_log_from_before_sellers_gains_the_columns_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    columns = [c for c in COLUMNS if c not in ADDED_COLUMNS]
    old.execute(f"CREATE TABLE decisions ({', '.join(columns)}, PRIMARY KEY (decision_id))")
    old.execute(f"INSERT INTO decisions VALUES ({','.join('?' * len(columns))})", record(1).row()[: len(columns)])
    old.commit()
    old.close()
    log = DecisionLog(sqlite_url(path))
    log.append([dataclasses.replace(record(2), seller_id="S1", api_key_id="k1")])
    rows = log.decisions()
    assert [(r["decision_id"], r["seller_id"], r["api_key_id"]) for r in rows] == [("d1", None, None), ("d2", "S1", "k1")]
    log.close()


def test_concurrent_appends_share_commits_and_every_caller_returns_committed(log_url):
    log = DecisionLog(log_url)
    seen_missing = []

    def worker(k: int) -> None:
        for i in range(20):
            log.append([record(k * 1000 + i)])
            # Committed when append returns: another connection already reads it.
            if f"d{k * 1000 + i}" not in {r["decision_id"] for r in read_decisions(log_url, "B1")}:
                seen_missing.append(k * 1000 + i)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.count() == 240 and not seen_missing
    assert log.commits < 240, "appends that waited on a commit were grouped into the next one"
