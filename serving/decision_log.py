"""The decision log: every assessment the service answers, appended before the answer leaves.

SQLite in the workspace (``WORKSPACE/serving/decisions.db``) in WAL mode, so the service's
worker processes append side by side and readers (monitoring, the console) never block them.
A decision is committed before its response is sent: whatever a caller was told is on disk,
even if the server is killed the next moment (``synchronous=full`` also survives power loss).
Rows are only ever inserted.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    decision_id TEXT PRIMARY KEY,
    logged_at TEXT NOT NULL,          -- wall-clock UTC time the row was written
    assessed_at TEXT NOT NULL,        -- the service clock the buyer was assessed at
    request_id TEXT NOT NULL,         -- one HTTP request; a batch shares it
    endpoint TEXT NOT NULL,
    buyer_id TEXT NOT NULL,
    request_json TEXT NOT NULL,       -- the item as the caller sent it (validated)
    features_json TEXT NOT NULL,      -- every feature value the models used, by model
    features_as_of TEXT,              -- the oldest snapshot time among the features
    stale INTEGER NOT NULL,
    default_model TEXT NOT NULL,      -- registered model name:version
    late_model TEXT,                  -- null when no order was assessed
    pd_12m REAL NOT NULL,
    grade INTEGER NOT NULL,
    decision TEXT NOT NULL,
    response_json TEXT NOT NULL,      -- the full answer
    seller_id TEXT,                   -- the seller the decision was for (null: none named)
    api_key_id TEXT                   -- the API key that asked (null: the console)
);
CREATE INDEX IF NOT EXISTS decisions_buyer ON decisions (buyer_id, assessed_at);
CREATE INDEX IF NOT EXISTS decisions_logged ON decisions (logged_at);
-- What reviewers did in the console: acknowledged an alert, or overrode a logged decision.
-- Who is the logged-in user (never a form field); when is the wall clock. Insert only.
CREATE TABLE IF NOT EXISTS reviews (
    review_id TEXT PRIMARY KEY,
    logged_at TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('acknowledge', 'override')),
    buyer_id TEXT NOT NULL,
    alert_id INTEGER,                 -- acknowledge: the alert (with its signal and raising day,
    alert_signal TEXT,                -- so the record stands even if the alert store is rebuilt)
    alert_raised_on TEXT,
    decision_id TEXT REFERENCES decisions (decision_id),  -- override: the decision overridden
    model_decision TEXT,              -- override: what the model and policy said
    override_decision TEXT CHECK (override_decision IN ('approve', 'partial', 'refer', 'decline')),
    override_limit REAL,              -- override: the credit line the reviewer grants (null: unchanged)
    reason TEXT NOT NULL              -- the reviewer's words: required for an override
);
CREATE INDEX IF NOT EXISTS reviews_buyer ON reviews (buyer_id, logged_at);
CREATE INDEX IF NOT EXISTS reviews_alert ON reviews (alert_id);
"""
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


class DecisionLog:
    """One connection per process, shared by the worker's threads under a lock (SQLite has one
    writer at a time anyway); ``append`` commits before it returns. While one thread waits
    for its commit to reach the disk, the others go on scoring."""

    def __init__(self, path: Path, synchronous: str = "full", busy_timeout_ms: int = 5000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a batch is one transaction.
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        present = {row[1] for row in self._conn.execute("PRAGMA table_info(decisions)")}
        for column, kind in ADDED_COLUMNS.items():
            if present and column not in present:
                self._conn.execute(f"ALTER TABLE decisions ADD COLUMN {column} {kind}")
        self._conn.executescript(SCHEMA)
        self._lock = threading.Lock()

    def append(self, records: list[DecisionRecord]) -> None:
        if records:
            self._insert("decisions", COLUMNS, [r.row() for r in records])

    def append_review(self, review: ReviewRecord) -> None:
        self._insert("reviews", REVIEW_COLUMNS, [review.row()])

    def _insert(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        # BEGIN IMMEDIATE takes the write lock up front, so a busy log waits (busy_timeout)
        # instead of failing halfway through a batch.
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(f"INSERT INTO {table} ({','.join(columns)}) VALUES ({','.join('?' * len(columns))})", rows)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM decisions").fetchone()[0])

    def close(self) -> None:
        self._conn.close()


def read_decisions(path: Path, buyer_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Every logged decision in the order written (optionally one buyer's), JSON columns parsed."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.row_factory = sqlite3.Row
        query = f"SELECT {','.join(COLUMNS)} FROM decisions"
        args: tuple[str, ...] = ()
        if buyer_id is not None:
            query += " WHERE buyer_id = ?"
            args = (buyer_id,)
        for row in conn.execute(query + " ORDER BY rowid", args):
            out = dict(row)
            for column in ("request_json", "features_json", "response_json"):
                out[column.removesuffix("_json")] = json.loads(out.pop(column))
            out["stale"] = bool(out["stale"])
            yield out
    finally:
        conn.close()


def read_reviews(path: Path, buyer_id: str | None = None, action: str | None = None) -> list[dict[str, Any]]:
    """Reviewer actions in the order written, optionally one buyer's or one kind's."""
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.row_factory = sqlite3.Row
        clauses, args = [], []
        for column, value in (("buyer_id", buyer_id), ("action", action)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return [dict(r) for r in conn.execute(f"SELECT {','.join(REVIEW_COLUMNS)} FROM reviews{where} ORDER BY rowid", args)]
    finally:
        conn.close()
