"""Early warnings: per-buyer rules from ``configs/monitoring.yaml`` evaluated on a monitoring
run's features and scores, stored in ``WORKSPACE/monitoring/alerts.db`` and deduplicated
across runs, and optionally posted to a webhook.

One alert per (buyer, signal) while it is open: a later run that fires the same signal
updates it (last seen, evidence) or escalates it from yellow to red; it is cleared by the
first run in which no rule of its signal holds. An alert is never lowered from red to yellow
while open: a red warning stays until it clears or a reviewer deals with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from tradecredit.monitoring.config import AlertColour, AlertRule, AlertsConfig, SizeScalingConfig, WebhookConfig
from tradecredit.policy import CreditFacts
# The rules' metric vocabulary and placeholder parsing live where the config validator can
# import them without importing this module (which imports the config models).
from tradecredit.monitoring.alert_metrics import ALERT_METRICS, DERIVED_METRICS, evidence_names  # noqa: F401

WEBHOOK_ENV = "TRADECREDIT_ALERT_WEBHOOK"
COLOUR_RANK: dict[str, int] = {"yellow": 1, "red": 2}
_OPS = {">=": "__ge__", ">": "__gt__", "<=": "__le__", "<": "__lt__", "==": "__eq__"}


@dataclass(frozen=True)
class FiredAlert:
    buyer_id: str
    signal: str
    colour: AlertColour
    evidence: str
    metrics: dict[str, float | None]  # the values the rule looked at


@dataclass(frozen=True)
class AlertRunOutcome:
    as_of: date
    raised: int  # new alerts
    escalated: int  # yellow to red
    continued: int  # still firing, already open
    cleared: int
    open_yellow: int
    open_red: int
    delivered: int  # posted to the webhook in this run (new, escalated, or pending from before)
    delivery_error: str | None


class AlertOrderError(ValueError):
    """A run dated before the latest run the alert store has seen (alerts go forward in time)."""


def alert_metrics(features: pl.DataFrame, scores: pl.DataFrame, previous_grades: pl.DataFrame | None,
                  credit_facts: dict[str, CreditFacts] | None = None, as_of: date | None = None) -> pl.DataFrame:
    """One row per scored buyer: its features at the run date, its score and grade, and the
    derived metrics (see ``configs/monitoring.yaml``). ``credit_facts`` are the ledger's
    knock-out facts at ``as_of`` (``credit/positions.py``), the same the policy holds orders on."""
    frame = scores.select("buyer_id", "pd_12m", "grade").join(features, on="buyer_id", how="left")
    if previous_grades is None:
        previous_grades = pl.DataFrame(schema={"buyer_id": pl.String, "previous_grade": pl.Int64})
    facts = credit_facts or {}
    knock = pl.DataFrame(
        [(b, f.max_days_past_due, None if f.credit_event is None or as_of is None else (as_of - f.credit_event[1]).days,
          f.past_due_60_plus, f.open_counted) for b, f in facts.items()],
        schema={"buyer_id": pl.String, "max_days_past_due": pl.Int64, "days_since_credit_event": pl.Int64,
                "ledger_past_due_60_plus": pl.Float64, "ledger_open_counted": pl.Float64},
        orient="row",
    )
    # The ledger's amounts leave disputed invoices and small remainders out, as the knock-out
    # does: on a ledger of disputes and chronic slow payers the features' aging (every open
    # invoice) fired this signal at the base rate (RESULTS.md, Early warnings, other books).
    from_ledger = pl.col("ledger_past_due_60_plus").is_not_null()
    past_due = pl.coalesce(pl.col("ledger_past_due_60_plus"), pl.col("open_61_90").fill_null(0) + pl.col("open_90_plus").fill_null(0))
    base = pl.when(from_ledger).then(pl.col("ledger_open_counted")).otherwise(pl.col("open_balance"))
    return frame.join(previous_grades.select("buyer_id", "previous_grade"), on="buyer_id", how="left").join(
        knock, on="buyer_id", how="left").with_columns(
        registry_change_excess_90d=pl.col("registry_changes_90d") - (pl.col("registry_changes_365d") - pl.col("registry_changes_90d")) * 90 / 275,
        past_due_60_plus=past_due,
        past_due_60_plus_share=pl.when(base > 0).then(past_due / base),
        grade_change=pl.col("grade") - pl.col("previous_grade"),
    ).drop("ledger_past_due_60_plus", "ledger_open_counted")


def size_factor(metrics: pl.DataFrame, scaling: SizeScalingConfig | None) -> pl.Expr:
    """Each buyer's threshold multiplier: (size / reference) ** exponent, never below 1; 1
    without a size (an invoice-only ledger has none)."""
    if scaling is None or scaling.metric not in metrics.columns:
        return pl.lit(1.0)
    ratio = pl.col(scaling.metric).cast(pl.Float64) / scaling.reference
    return pl.max_horizontal(ratio.pow(scaling.exponent), pl.lit(1.0)).fill_null(1.0).fill_nan(1.0)


def _holds(conditions: list[tuple[str, str, float]], factor: pl.Expr, columns: list[str]) -> pl.Expr:
    """All conditions hold; a ``>=`` / ``>`` threshold is multiplied by ``factor`` (size scaling).
    A metric the frame lacks is unknown, and a condition on it does not hold."""
    exprs = []
    for metric, op, value in conditions:
        threshold = pl.lit(value) * factor if op in (">=", ">") else pl.lit(value)
        column = pl.col(metric).cast(pl.Float64) if metric in columns else pl.lit(None, pl.Float64)
        exprs.append(getattr(column, _OPS[op])(threshold).fill_null(False))
    return pl.all_horizontal(exprs)


def _placeholders(rule: AlertRule) -> list[str]:
    return list(dict.fromkeys([*(m for m, _, _ in rule.when), *evidence_names(rule.evidence)]))


def _factor_of(rule: AlertRule, metrics: pl.DataFrame, scaling: SizeScalingConfig | None) -> pl.Expr:
    return size_factor(metrics, scaling) if scaling is not None and rule.signal in scaling.signals else pl.lit(1.0)


def kept_signals(metrics: pl.DataFrame, rules: list[AlertRule], scaling: SizeScalingConfig | None = None) -> set[tuple[str, str]]:
    """The (buyer, signal) pairs whose hysteresis conditions hold: an open alert of them stays
    open even when no rule fires (a rule without ``keep_when`` keeps while ``when`` holds)."""
    kept: set[tuple[str, str]] = set()
    for rule in rules:
        held = metrics.filter(_holds(rule.keep_when or rule.when, _factor_of(rule, metrics, scaling), metrics.columns))
        kept |= {(b, rule.signal) for b in held["buyer_id"].to_list()}
    return kept


def evaluate_rules(metrics: pl.DataFrame, rules: list[AlertRule], scaling: SizeScalingConfig | None = None) -> list[FiredAlert]:
    """Every (buyer, signal) some rule fires for, at the highest colour that fired; its
    evidence is that rule's sentence (the first such rule in the config). Thresholds of the
    signals ``scaling`` names grow with the buyer's size."""
    best: dict[tuple[str, str], FiredAlert] = {}
    for rule in rules:
        used = _placeholders(rule)
        fires = metrics.filter(_holds(rule.when, _factor_of(rule, metrics, scaling), metrics.columns))
        for row in fires.select("buyer_id", *used).iter_rows(named=True):
            values = {m: row[m] for m in used}
            key = (row["buyer_id"], rule.signal)
            held = best.get(key)
            if held is None or COLOUR_RANK[rule.colour] > COLOUR_RANK[held.colour]:
                best[key] = FiredAlert(row["buyer_id"], rule.signal, rule.colour, rule.evidence.format(**values), values)
    return sorted(best.values(), key=lambda a: (a.buyer_id, a.signal))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id INTEGER PRIMARY KEY,
    buyer_id TEXT NOT NULL,
    signal TEXT NOT NULL,
    colour TEXT NOT NULL CHECK (colour IN ('yellow', 'red')),
    status TEXT NOT NULL CHECK (status IN ('open', 'cleared')),
    raised_on TEXT NOT NULL,
    last_seen_on TEXT NOT NULL,
    escalated_on TEXT,
    cleared_on TEXT,
    evidence TEXT NOT NULL,
    metrics_json TEXT NOT NULL,
    action TEXT NOT NULL,
    model_version TEXT NOT NULL,
    delivered_colour TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_alert ON alerts (buyer_id, signal) WHERE status = 'open';
CREATE TABLE IF NOT EXISTS alert_runs (
    as_of TEXT PRIMARY KEY,
    evaluated_at TEXT NOT NULL,
    raised INTEGER NOT NULL,
    escalated INTEGER NOT NULL,
    cleared INTEGER NOT NULL
);
"""


@contextmanager
def immediate_transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One writer transaction on an autocommit connection (the alert store's and the case book's):
    everything inside commits together or not at all."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


class AlertStore:
    """The alerts of a workspace (SQLite). Each run's changes commit together or not at all."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._con = sqlite3.connect(path, isolation_level=None)
        self._con.row_factory = sqlite3.Row
        self._con.executescript(_SCHEMA)

    def close(self) -> None:
        self._con.close()

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self._con)

    def latest_run(self) -> date | None:
        row = self._con.execute("SELECT max(as_of) FROM alert_runs").fetchone()
        return None if row[0] is None else date.fromisoformat(row[0])

    def apply(self, as_of: date, fired: list[FiredAlert], actions: dict[str, str], model_version: str,
              kept: set[tuple[str, str]] | None = None) -> tuple[int, int, int, int]:
        """Record one run's fired alerts; returns (raised, escalated, continued, cleared). An open
        alert no rule fired for clears unless its (buyer, signal) is in ``kept`` (hysteresis).
        Running the same date again changes nothing it already recorded."""
        latest = self.latest_run()
        if latest is not None and as_of < latest:
            raise AlertOrderError(f"alerts were last evaluated for {latest}; a run for {as_of} cannot be applied after it")
        day = as_of.isoformat()
        raised = escalated = continued = 0
        with self._transaction() as con:
            open_now = {(r["buyer_id"], r["signal"]): r for r in con.execute("SELECT * FROM alerts WHERE status = 'open'")}
            for alert in fired:
                metrics = json.dumps(alert.metrics)
                held = open_now.pop((alert.buyer_id, alert.signal), None)
                if held is None:
                    con.execute(
                        "INSERT INTO alerts (buyer_id, signal, colour, status, raised_on, last_seen_on, evidence, metrics_json, action, model_version)"
                        " VALUES (?, ?, ?, 'open', ?, ?, ?, ?, ?, ?)",
                        (alert.buyer_id, alert.signal, alert.colour, day, day, alert.evidence, metrics, actions[alert.colour], model_version),
                    )
                    raised += 1
                elif COLOUR_RANK[alert.colour] > COLOUR_RANK[held["colour"]]:
                    con.execute(
                        "UPDATE alerts SET colour = ?, escalated_on = ?, last_seen_on = ?, evidence = ?, metrics_json = ?, action = ?, model_version = ? WHERE alert_id = ?",
                        (alert.colour, day, day, alert.evidence, metrics, actions[alert.colour], model_version, held["alert_id"]),
                    )
                    escalated += 1
                else:
                    # Same or lower colour: still firing. The evidence is the latest; the colour stays.
                    if alert.colour == held["colour"]:
                        con.execute("UPDATE alerts SET last_seen_on = ?, evidence = ?, metrics_json = ? WHERE alert_id = ?", (day, alert.evidence, metrics, held["alert_id"]))
                    else:
                        con.execute("UPDATE alerts SET last_seen_on = ? WHERE alert_id = ?", (day, held["alert_id"]))
                    continued += 1
            # Open alerts no rule fired for in this run clear (a rerun of the alert's own raising day
            # included), unless their looser keep conditions still hold.
            stale = [r["alert_id"] for key, r in open_now.items() if key not in (kept or set())]
            continued += len(open_now) - len(stale)
            con.executemany("UPDATE alerts SET status = 'cleared', cleared_on = ? WHERE alert_id = ?", [(day, i) for i in stale])
            con.execute(
                "INSERT INTO alert_runs VALUES (?, ?, ?, ?, ?) ON CONFLICT (as_of) DO UPDATE SET evaluated_at = excluded.evaluated_at,"
                " raised = raised + excluded.raised, escalated = escalated + excluded.escalated, cleared = cleared + excluded.cleared",
                (day, datetime.now(UTC).isoformat(timespec="seconds"), raised, escalated, len(stale)),
            )
        return raised, escalated, continued, len(stale)

    def alerts(self, status: str | None = None) -> pl.DataFrame:
        query = "SELECT * FROM alerts" + (" WHERE status = ?" if status else "") + " ORDER BY alert_id"
        rows = [dict(r) for r in self._con.execute(query, (status,) if status else ())]
        columns = [d[1] for d in self._con.execute("PRAGMA table_info(alerts)")]
        return pl.DataFrame(rows, schema={c: (pl.Int64 if c == "alert_id" else pl.String) for c in columns}, orient="row")

    def undelivered(self) -> list[dict[str, Any]]:
        """Open alerts the webhook has not been told about at their current colour."""
        rows = self._con.execute(
            "SELECT * FROM alerts WHERE status = 'open' AND (delivered_colour IS NULL OR delivered_colour != colour) ORDER BY alert_id"
        )
        return [dict(r) for r in rows]

    def mark_delivered(self, alerts: list[dict[str, Any]]) -> None:
        with self._transaction() as con:
            con.executemany("UPDATE alerts SET delivered_colour = ? WHERE alert_id = ?", [(a["colour"], a["alert_id"]) for a in alerts])


def webhook_url(cfg: WebhookConfig) -> str | None:
    return os.environ.get(WEBHOOK_ENV) or cfg.url


def alert_payload(alert: dict[str, Any]) -> dict[str, Any]:
    keys = ("alert_id", "buyer_id", "signal", "colour", "raised_on", "last_seen_on", "escalated_on", "evidence", "action", "model_version")
    return {k: alert[k] for k in keys} | {"metrics": json.loads(alert["metrics_json"])}


def post_alerts(url: str, as_of: date, alerts: list[dict[str, Any]], timeout: float) -> None:
    """POST one batch as JSON; raises ``OSError`` (urllib's errors) unless the answer is 2xx."""
    body = json.dumps({"source": "tradecredit", "as_of": as_of.isoformat(), "alerts": [alert_payload(a) for a in alerts]}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (the URL is the operator's own config)
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(url, response.status, "webhook refused the alerts", response.headers, None)


def deliver(store: AlertStore, as_of: date, cfg: WebhookConfig) -> tuple[int, str | None]:
    """Post every undelivered open alert in batches; an alert is marked delivered only after
    its batch got a 2xx, so a failed post is retried by the next run (nothing is lost)."""
    url = webhook_url(cfg)
    if not url:
        return 0, None
    pending = store.undelivered()
    sent = 0
    for start in range(0, len(pending), cfg.batch_size):
        batch = pending[start : start + cfg.batch_size]
        try:
            post_alerts(url, as_of, batch, cfg.timeout_seconds)
        except (OSError, ValueError) as exc:
            return sent, f"webhook {url} failed after {sent} of {len(pending)} alerts ({exc}); the rest are posted by the next run"
        store.mark_delivered(batch)
        sent += len(batch)
    return sent, None


def run_alerts(store: AlertStore, as_of: date, metrics: pl.DataFrame, cfg: AlertsConfig, model_version: str) -> AlertRunOutcome:
    """Evaluate the rules, record the run, post what is new; the outcome in counts."""
    fired = evaluate_rules(metrics, cfg.rules, cfg.size_scaling)
    kept = kept_signals(metrics, cfg.rules, cfg.size_scaling)
    raised, escalated, continued, cleared = store.apply(as_of, fired, dict(cfg.actions), model_version, kept)
    delivered, error = deliver(store, as_of, cfg.webhook)
    open_alerts = store.alerts("open")
    colours = open_alerts["colour"].value_counts()
    count = dict(colours.iter_rows()) if open_alerts.height else {}
    return AlertRunOutcome(as_of, raised, escalated, continued, cleared, count.get("yellow", 0), count.get("red", 0), delivered, error)
