"""The decision log: every assessment the service answers, appended before the answer leaves,
and every reviewer action in the console.

SQLite in the workspace (``WORKSPACE/serving/decisions.db``) in WAL mode, so the service's
worker processes append side by side and readers (monitoring, the console) never block them;
a PostgreSQL database where ``backends.decision_log_url`` names one (the production profile).
A decision is committed before its response is sent: whatever a caller was told is on disk,
even if the server is killed the next moment (SQLite's ``synchronous=full`` also survives
power loss). Rows are only ever inserted.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tradecredit.sql_stores import sql_engine, sqlite_path, store_exists

metadata = sa.MetaData()
decisions_table = sa.Table(
    "decisions", metadata,
    sa.Column("decision_id", sa.String(64), primary_key=True),
    sa.Column("logged_at", sa.String(40), nullable=False),  # wall-clock UTC time the row was written
    sa.Column("assessed_at", sa.String(40), nullable=False),  # the service clock the buyer was assessed at
    sa.Column("request_id", sa.String(64), nullable=False),  # one HTTP request; a batch shares it
    sa.Column("endpoint", sa.String(32), nullable=False),
    sa.Column("buyer_id", sa.String(64), nullable=False),
    sa.Column("request_json", sa.Text, nullable=False),  # the item as the caller sent it (validated)
    sa.Column("features_json", sa.Text, nullable=False),  # every feature value the models used, by model
    sa.Column("features_as_of", sa.String(40)),  # the oldest snapshot time among the features
    sa.Column("stale", sa.Integer, nullable=False),
    sa.Column("default_model", sa.String(200), nullable=False),  # registered model name:version
    sa.Column("late_model", sa.String(200)),  # null when no order was assessed
    sa.Column("pd_12m", sa.Float, nullable=False),
    sa.Column("grade", sa.Integer, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("response_json", sa.Text, nullable=False),  # the full answer
    sa.Column("seller_id", sa.String(64)),  # the seller the decision was for (null: none named)
    sa.Column("api_key_id", sa.String(64)),  # the API key that asked (null: the console)
    sa.Index("decisions_buyer", "buyer_id", "assessed_at"),
    sa.Index("decisions_logged", "logged_at"),
)
# What reviewers did in the console: acknowledged an alert, or overrode a logged decision.
# Who is the logged-in user (never a form field); when is the wall clock. Insert only.
reviews_table = sa.Table(
    "reviews", metadata,
    sa.Column("review_id", sa.String(64), primary_key=True),
    sa.Column("logged_at", sa.String(40), nullable=False),
    sa.Column("reviewer", sa.String(64), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("buyer_id", sa.String(64), nullable=False),
    # acknowledge: the alert, with its signal and raising day, so the record stands even if the alert store is rebuilt
    sa.Column("alert_id", sa.Integer),
    sa.Column("alert_signal", sa.String(64)),
    sa.Column("alert_raised_on", sa.String(10)),
    sa.Column("decision_id", sa.String(64)),  # override: the decision overridden
    sa.Column("model_decision", sa.String(16)),  # override: what the model and policy said
    sa.Column("override_decision", sa.String(16)),
    sa.Column("override_limit", sa.Float),  # override: the credit line the reviewer grants (null: unchanged)
    sa.Column("reason", sa.Text, nullable=False),  # the reviewer's words: required for an override
    sa.CheckConstraint("action IN ('acknowledge', 'override')", name="reviews_action"),
    sa.CheckConstraint("override_decision IN ('approve', 'partial', 'refer', 'decline')", name="reviews_override_decision"),
    sa.Index("reviews_buyer", "buyer_id", "logged_at"),
    sa.Index("reviews_alert", "alert_id"),
)
COLUMNS = (
    "decision_id", "logged_at", "assessed_at", "request_id", "endpoint", "buyer_id", "request_json", "features_json",
    "features_as_of", "stale", "default_model", "late_model", "pd_12m", "grade", "decision", "response_json", "seller_id", "api_key_id",
)
# Columns added after the first release: an older log gains them when it is opened.
ADDED_COLUMNS = {"seller_id": "TEXT", "api_key_id": "TEXT"}


@dataclass(frozen=True)
class DecisionRecord:
    decision_id: str
    logged_at: str
    assessed_at: str
    request_id: str
    endpoint: str
    buyer_id: str
    request: dict[str, Any]
    features: dict[str, dict[str, Any]]
    features_as_of: str | None
    stale: bool
    default_model: str
    late_model: str | None
    pd_12m: float
    grade: int
    decision: str
    response_json: str  # the answer as sent (pydantic's own serialization, not a second pass)
    seller_id: str | None = None
    api_key_id: str | None = None

    def row(self) -> tuple[Any, ...]:
        return (
            self.decision_id, self.logged_at, self.assessed_at, self.request_id, self.endpoint, self.buyer_id,
            json.dumps(self.request, separators=(",", ":")), json.dumps(self.features, separators=(",", ":")),
            self.features_as_of, int(self.stale), self.default_model, self.late_model, self.pd_12m, self.grade,
            self.decision, self.response_json, self.seller_id, self.api_key_id,
        )


REVIEW_COLUMNS = (
    "review_id", "logged_at", "reviewer", "action", "buyer_id", "alert_id", "alert_signal", "alert_raised_on",
    "decision_id", "model_decision", "override_decision", "override_limit", "reason",
)


@dataclass(frozen=True)
class ReviewRecord:
    """One reviewer action (see the ``reviews`` table)."""

    review_id: str
    logged_at: str
    reviewer: str
    action: str
    buyer_id: str
    reason: str
    alert_id: int | None = None
    alert_signal: str | None = None
    alert_raised_on: str | None = None
    decision_id: str | None = None
    model_decision: str | None = None
    override_decision: str | None = None
    override_limit: float | None = None

    def row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, c) for c in REVIEW_COLUMNS)


class _Waiter:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.done = threading.Event()
        self.lead = False
        self.error: BaseException | None = None


class GroupCommit:
    """Group commit: appends that arrive while a commit is on its way to the disk are written
    together by the next one, in one transaction and one fsync, and each caller returns only
    once its own rows are committed. The first caller commits what is pending and hands the
    lead to a waiter if more arrived meanwhile, so no caller writes for the others for long."""

    def __init__(self, commit: Callable[[list[dict[str, Any]]], None]) -> None:
        self._commit = commit
        self._lock = threading.Lock()
        self._pending: list[_Waiter] = []
        self._committing = False
        self.commits = 0  # transactions written, for the tests and the benchmark

    def submit(self, rows: list[dict[str, Any]]) -> None:
        waiter = _Waiter(rows)
        with self._lock:
            self._pending.append(waiter)
            lead = not self._committing
            self._committing = True
        if not lead:
            waiter.done.wait()
            if not waiter.lead:
                if waiter.error is not None:
                    raise waiter.error
                return
        with self._lock:
            batch, self._pending = self._pending, []
        error: BaseException | None = None
        try:
            self._commit([row for w in batch for row in w.rows])
            self.commits += 1
        except BaseException as exc:  # every caller of the group hears of it
            error = exc
        for other in batch:
            if other is not waiter:
                other.error = error
                other.done.set()
        with self._lock:
            if self._pending:
                self._pending[0].lead = True
                self._pending[0].done.set()
            else:
                self._committing = False
        if error is not None:
            raise error


class DecisionLog:
    """The log's store, shared by a worker's threads; ``append`` commits before it returns.
    While one thread waits for its commit to reach the disk, the others go on scoring, and
    the decisions they log meanwhile share the next commit (:class:`GroupCommit`)."""

    def __init__(self, url: str, synchronous: str = "full", busy_timeout_ms: int = 5000) -> None:
        self.url = url
        self._writer = sql_engine(url, writer=True, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
        self._reader = sql_engine(url, writer=False, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms) if sqlite_path(url) else self._writer
        with self._writer.begin() as con:
            present = {c["name"] for c in sa.inspect(con).get_columns("decisions")} if sa.inspect(con).has_table("decisions") else set()
            for column, kind in ADDED_COLUMNS.items():
                if present and column not in present:
                    con.exec_driver_sql(f"ALTER TABLE decisions ADD COLUMN {column} {kind}")
            metadata.create_all(con)
        self._group = GroupCommit(self._insert)

    def append(self, records: list[DecisionRecord]) -> None:
        """Committed when this returns; a batch is logged whole or not at all (with whatever
        other requests' decisions share its transaction)."""
        if records:
            self._group.submit([dict(zip(COLUMNS, r.row(), strict=True)) for r in records])

    @property
    def commits(self) -> int:
        return self._group.commits

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        with self._writer.begin() as con:
            con.execute(decisions_table.insert(), rows)

    def append_review(self, review: ReviewRecord) -> None:
        with self._writer.begin() as con:
            con.execute(reviews_table.insert(), [dict(zip(REVIEW_COLUMNS, review.row(), strict=True))])

    def count(self) -> int:
        with self._reader.connect() as con:
            return int(con.execute(sa.select(sa.func.count()).select_from(decisions_table)).scalar_one())

    def decisions(self, buyer_id: str | None = None) -> list[dict[str, Any]]:
        """Logged decisions in the order written (optionally one buyer's), JSON columns parsed."""
        query = sa.select(*(decisions_table.c[c] for c in COLUMNS))
        if buyer_id is not None:
            query = query.where(decisions_table.c.buyer_id == buyer_id)
        with self._reader.connect() as con:
            rows = con.execute(query.order_by(decisions_table.c.logged_at, decisions_table.c.decision_id)).mappings().all()
        out = []
        for row in rows:
            item = dict(row)
            for column in ("request_json", "features_json", "response_json"):
                item[column.removesuffix("_json")] = json.loads(item.pop(column))
            item["stale"] = bool(item["stale"])
            out.append(item)
        return out

    def reviews(self, buyer_id: str | None = None, action: str | None = None) -> list[dict[str, Any]]:
        """Reviewer actions in the order written, optionally one buyer's or one kind's."""
        query = sa.select(*(reviews_table.c[c] for c in REVIEW_COLUMNS))
        for column, value in (("buyer_id", buyer_id), ("action", action)):
            if value is not None:
                query = query.where(reviews_table.c[column] == value)
        with self._reader.connect() as con:
            return [dict(r) for r in con.execute(query.order_by(reviews_table.c.logged_at, reviews_table.c.review_id)).mappings()]

    def close(self) -> None:
        self._writer.dispose()
        self._reader.dispose()


def read_decisions(url: str, buyer_id: str | None = None) -> list[dict[str, Any]]:
    """Every logged decision (see :meth:`DecisionLog.decisions`); none before the first."""
    return _read(url, lambda log: log.decisions(buyer_id))


def read_reviews(url: str, buyer_id: str | None = None, action: str | None = None) -> list[dict[str, Any]]:
    """Reviewer actions (see :meth:`DecisionLog.reviews`); none before the first."""
    return _read(url, lambda log: log.reviews(buyer_id, action))


def _read(url: str, read: Callable[[DecisionLog], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    if not store_exists(url):
        return []
    log = DecisionLog(url)
    try:
        return read(log)
    finally:
        log.close()
