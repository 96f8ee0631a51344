"""Early-warning rules, the alert store and the webhook (a real HTTP server on loopback)."""

from __future__ import annotations

import json
import threading
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest
import yaml

from tradecredit.config import load_config
from tradecredit.config_base import ConfigError
from tradecredit.monitoring.config import WebhookConfig
from tradecredit.features.catalog import FEATURES
from tradecredit.monitoring.alerts import (
    AlertOrderError,
    AlertStore,
    FiredAlert,
    alert_metrics,
    evaluate_rules,
    kept_signals,
    run_alerts,
)
from tradecredit.policy import CreditFacts
from tests.conftest import REPO

# A buyer with nothing wrong: a steady payer, no registry news, no overdue balance.
CLEAN = {
    "registry_changes_90d": 0, "registry_changes_365d": 1, "lawsuit_filed_90d": 0, "enforcement_order_90d": 0,
    "insolvency_filing_90d": 0, "dbt_trend_90d_vs_365d": 1.0, "dbt_weighted_90d": 4.0, "negative_news_90d": 0,
    "executive_turnover_90d": 0, "open_balance": 10_000.0, "open_61_90": 0.0, "open_90_plus": 0.0,
}
# Each signal's planted pattern at each colour: the changes to CLEAN (and the grade move).
PLANTED: dict[tuple[str, str], tuple[dict[str, float], int, int]] = {
    ("registry_change_jump", "yellow"): ({"registry_changes_90d": 4, "registry_changes_365d": 5}, 4, 4),
    ("lawsuits", "yellow"): ({"lawsuit_filed_90d": 2}, 4, 4),
    ("lawsuits", "red"): ({"lawsuit_filed_90d": 3}, 4, 4),
    ("enforcement_order", "red"): ({"enforcement_order_90d": 1}, 4, 4),
    ("insolvency_filing", "red"): ({"insolvency_filing_90d": 1}, 4, 4),
    ("dbt_lengthening", "yellow"): ({"dbt_trend_90d_vs_365d": 18.0, "dbt_weighted_90d": 25.0}, 4, 4),
    ("dbt_lengthening", "red"): ({"dbt_trend_90d_vs_365d": 35.0, "dbt_weighted_90d": 50.0}, 4, 4),
    ("negative_news", "yellow"): ({"negative_news_90d": 1}, 4, 4),
    ("negative_news", "red"): ({"negative_news_90d": 2}, 4, 4),
    ("executive_turnover", "yellow"): ({"executive_turnover_90d": 2}, 4, 4),
    ("pd_downgrade", "yellow"): ({}, 6, 4),
    ("pd_downgrade", "red"): ({}, 8, 5),
    ("past_due_60_plus", "yellow"): ({"open_61_90": 3_000.0}, 4, 4),
    ("past_due_60_plus", "red"): ({"open_61_90": 3_000.0, "open_90_plus": 3_000.0}, 4, 4),
    # The policy's knock-outs, planted as the ledger's credit facts (see ``knock_facts``).
    ("credit_event", "red"): ({"credit_event_days_ago": 30}, 4, 4),
    ("overdue_beyond_extension", "yellow"): ({"max_days_past_due": 120}, 4, 4),
    ("overdue_beyond_extension", "red"): ({"max_days_past_due": 120, "open_90_plus": 6_000.0}, 4, 4),
}
# Signals that must fire with the planted one: most of the balance 90+ days late is also 60+.
ALSO = {("overdue_beyond_extension", "red"): {("past_due_60_plus", "red")}}
AS_OF = date(2026, 6, 30)
FACT_KEYS = ("credit_event_days_ago", "max_days_past_due")


def knock_facts(buyers: dict[str, tuple[dict[str, float], int, int | None]]) -> dict[str, CreditFacts]:
    """The CreditFacts ``credit/positions.py`` would give the planted buyers on ``AS_OF``."""
    out = {}
    for b, (changes, _, _) in buyers.items():
        event = ("payment_default", AS_OF - timedelta(days=int(changes["credit_event_days_ago"]))) if "credit_event_days_ago" in changes else None
        # The ledger's undisputed amounts, planted as the features' aging plants them.
        late = changes.get("open_61_90", CLEAN["open_61_90"]) + changes.get("open_90_plus", CLEAN["open_90_plus"])
        out[b] = CreditFacts(None, event, changes.get("max_days_past_due"), past_due_60_plus=late,
                             open_counted=changes.get("open_balance", CLEAN["open_balance"]))
    return out


@pytest.fixture(scope="module")
def rules():
    return load_config().monitoring.alerts.rules


def frames(buyers: dict[str, tuple[dict[str, float], int, int | None]]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(features, scores, previous grades) for buyers given as (changes to CLEAN, grade, previous grade)."""
    rows = [{"buyer_id": b} | CLEAN | {k: v for k, v in changes.items() if k not in FACT_KEYS} for b, (changes, _, _) in buyers.items()]
    features = pl.DataFrame(rows)
    scores = pl.DataFrame({"buyer_id": list(buyers), "pd_12m": [0.01] * len(buyers), "grade": [g for _, g, _ in buyers.values()]})
    previous = pl.DataFrame({"buyer_id": list(buyers), "previous_grade": [p for _, _, p in buyers.values()]}, schema={"buyer_id": pl.String, "previous_grade": pl.Int64})
    return features, scores, previous


def test_derived_metrics_by_hand():
    features, scores, previous = frames({"B1": ({"registry_changes_90d": 4, "registry_changes_365d": 15, "open_61_90": 500.0, "open_90_plus": 1_500.0}, 7, 4)})
    m = alert_metrics(features, scores, previous).row(0, named=True)
    assert m["registry_change_excess_90d"] == pytest.approx(4 - 11 * 90 / 275)
    assert m["past_due_60_plus"] == 2_000.0 and m["past_due_60_plus_share"] == pytest.approx(0.2)
    assert m["grade_change"] == 3
    # Without a previous run there is no grade change, and the downgrade rule cannot fire.
    assert alert_metrics(features, scores, None)["grade_change"].to_list() == [None]


def test_past_due_60_plus_is_the_ledgers_undisputed_amount_when_the_ledger_is_read(rules):
    # The features' aging says 6,000 is 60+ days late; the ledger's facts say it is all disputed.
    features, scores, prev = frames({"B1": ({"open_61_90": 3_000.0, "open_90_plus": 3_000.0}, 4, 4)})
    disputed = {"B1": CreditFacts(None, None, None, past_due_60_plus=0.0, open_counted=4_000.0)}
    metrics = alert_metrics(features, scores, prev, disputed, AS_OF)
    assert metrics["past_due_60_plus"].to_list() == [0.0] and evaluate_rules(metrics, rules) == []
    undisputed = alert_metrics(features, scores, prev, {"B1": CreditFacts(None, None, None, past_due_60_plus=4_000.0, open_counted=16_000.0)}, AS_OF)
    assert undisputed["past_due_60_plus"].to_list() == [4_000.0]
    assert undisputed["past_due_60_plus_share"].to_list() == [0.25]  # of the ledger's counted open amount, not the features' 10,000
    assert {a.signal for a in evaluate_rules(undisputed, rules)} == {"past_due_60_plus"}


@pytest.mark.parametrize(("signal", "colour"), list(PLANTED))
def test_each_rule_fires_on_its_planted_pattern_and_not_on_a_clean_buyer(rules, signal, colour):
    changes, grade, previous = PLANTED[(signal, colour)]
    buyers = {"PLANTED": (changes, grade, previous), "CLEAN": ({}, 4, 4)}
    features, scores, prev = frames(buyers)
    fired = evaluate_rules(alert_metrics(features, scores, prev, knock_facts(buyers), AS_OF), rules)
    assert {(a.buyer_id, a.signal, a.colour) for a in fired} == {("PLANTED", s, c) for s, c in {(signal, colour)} | ALSO.get((signal, colour), set())}
    assert fired[0].evidence and "{" not in fired[0].evidence


def test_the_shipped_rules_cover_every_signal_the_issue_names(rules):
    assert {r.signal for r in rules} >= {
        "registry_change_jump", "lawsuits", "enforcement_order", "dbt_lengthening", "negative_news",
        "executive_turnover", "pd_downgrade", "past_due_60_plus",
    }
    assert {(r.signal, r.colour) for r in rules} == set(PLANTED)


def test_count_thresholds_grow_with_the_company(config):
    """Three lawsuits in a quarter is red for a firm of 100 and routine for one of 10,000
    (thresholds x (10,000 / 100) ** 0.5 = 10x); a buyer without a size keeps them as written."""
    alerts = config.monitoring.alerts
    planted = {"lawsuit_filed_90d": 3}
    buyers = {"SMALL": (planted | {"employees": 100}, 4, 4), "LARGE": (planted | {"employees": 10_000}, 4, 4),
              "UNKNOWN": (planted, 4, 4), "LARGE_BAD": ({"lawsuit_filed_90d": 30, "employees": 10_000}, 4, 4)}
    features, scores, prev = frames(buyers)
    features = features.with_columns(pl.col("employees").cast(pl.Float64))
    fired = {(a.buyer_id, a.colour) for a in evaluate_rules(alert_metrics(features, scores, prev), alerts.rules, alerts.size_scaling)}
    assert fired == {("SMALL", "red"), ("UNKNOWN", "red"), ("LARGE_BAD", "red")}
    # A knock-out is never scaled: an insolvency filing is one filing whatever the size.
    big = {"BIG": ({"insolvency_filing_90d": 1, "employees": 50_000}, 4, 4)}
    f2, s2, p2 = frames(big)
    assert [a.signal for a in evaluate_rules(alert_metrics(f2, s2, p2), alerts.rules, alerts.size_scaling)] == ["insolvency_filing"]


def test_hysteresis_keeps_an_open_alert_while_its_looser_conditions_hold(rules, tmp_path):
    """A payer at 12-14 days later than usual does not raise (15), but an alert raised at 18
    stays open there, and clears only below the keep threshold (8)."""
    store = AlertStore(tmp_path / "alerts.db")

    def run(day: date, trend: float) -> tuple[int, int, int, int]:
        buyers = {"B1": ({"dbt_trend_90d_vs_365d": trend, "dbt_weighted_90d": trend + 10}, 4, 4)}
        m = alert_metrics(*frames(buyers))
        return store.apply(day, evaluate_rules(m, rules), ACTIONS, "1", kept_signals(m, rules))

    assert run(date(2026, 1, 1), 12.0) == (0, 0, 0, 0)  # below the raise threshold: nothing
    assert run(date(2026, 2, 1), 18.0) == (1, 0, 0, 0)
    assert run(date(2026, 3, 1), 12.0) == (0, 0, 1, 0)  # kept: between keep (8) and raise (15)
    assert run(date(2026, 4, 1), 16.0) == (0, 0, 1, 0)
    assert run(date(2026, 5, 1), 5.0) == (0, 0, 0, 1)
    assert store.alerts()["status"].to_list() == ["cleared"]
    store.close()


def test_missing_values_never_fire(rules):
    features, scores, prev = frames({"B1": ({}, 4, 4)})
    nulls = features.with_columns(pl.lit(None, dtype=pl.Float64).alias(c) for c in CLEAN)
    assert evaluate_rules(alert_metrics(nulls, scores, None), rules) == []


def test_a_rule_naming_an_unknown_metric_is_a_config_error(tmp_path):
    configs = tmp_path / "configs"
    configs.mkdir()
    for f in (REPO / "configs").glob("*.yaml"):
        (configs / f.name).write_text(f.read_text())
    data = yaml.safe_load((configs / "monitoring.yaml").read_text())
    data["alerts"]["rules"][0]["when"][0][0] = "registry_chnages_90d"
    (configs / "monitoring.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="registry_chnages_90d"):
        load_config(configs)


def test_every_numeric_feature_is_a_metric():
    from tradecredit.monitoring.alerts import ALERT_METRICS

    assert {f.name for f in FEATURES if f.dtype != "string"} <= ALERT_METRICS


def fired(buyer: str, signal: str, colour: str) -> FiredAlert:
    return FiredAlert(buyer, signal, colour, f"{signal} {colour}", {"x": 1.0})  # type: ignore[arg-type]


ACTIONS = {"yellow": "review", "red": "stop"}


def test_alerts_are_deduplicated_escalated_and_cleared_across_runs(tmp_path):
    store = AlertStore(tmp_path / "alerts.db")
    run1 = [fired("B1", "lawsuits", "yellow"), fired("B2", "negative_news", "yellow")]
    assert store.apply(date(2026, 1, 1), run1, ACTIONS, "1") == (2, 0, 0, 0)
    # The same findings a month later: no new alert.
    assert store.apply(date(2026, 2, 1), run1, ACTIONS, "1") == (0, 0, 2, 0)
    # B1 worsens to red, B2's news is gone, B3 is new.
    run3 = [fired("B1", "lawsuits", "red"), fired("B3", "lawsuits", "yellow")]
    assert store.apply(date(2026, 3, 1), run3, ACTIONS, "1") == (1, 1, 0, 1)
    # Run again for the same date: nothing changes.
    assert store.apply(date(2026, 3, 1), run3, ACTIONS, "1") == (0, 0, 2, 0)
    # A yellow finding does not lower an open red alert.
    store.apply(date(2026, 4, 1), [fired("B1", "lawsuits", "yellow"), fired("B3", "lawsuits", "yellow")], ACTIONS, "1")
    alerts = store.alerts()
    assert alerts.height == 3  # B1 lawsuits, B2 news, B3 lawsuits: one row each
    b1 = alerts.filter(pl.col("buyer_id") == "B1").row(0, named=True)
    assert (b1["colour"], b1["status"], b1["raised_on"], b1["escalated_on"], b1["last_seen_on"], b1["action"]) == ("red", "open", "2026-01-01", "2026-03-01", "2026-04-01", "stop")
    b2 = alerts.filter(pl.col("buyer_id") == "B2").row(0, named=True)
    assert (b2["status"], b2["cleared_on"]) == ("cleared", "2026-03-01")
    # The news comes back after clearing: a new alert, the old one stays in the history.
    store.apply(date(2026, 5, 1), [fired("B2", "negative_news", "yellow")], ACTIONS, "2")
    assert store.alerts().filter(pl.col("buyer_id") == "B2")["status"].to_list() == ["cleared", "open"]
    with pytest.raises(AlertOrderError, match="2026-05-01"):
        store.apply(date(2026, 4, 15), run1, ACTIONS, "2")
    store.close()


class Receiver(BaseHTTPRequestHandler):
    """Records every POST body; answers with the status the server is set to."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.bodies, server.status = [], 200  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_webhook_gets_new_and_escalated_alerts_once_and_a_failed_post_is_retried(tmp_path: Path, receiver, monkeypatch):
    cfg = load_config().monitoring.alerts
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    monkeypatch.setenv("TRADECREDIT_ALERT_WEBHOOK", url)
    features, scores, prev = frames({"B1": ({"lawsuit_filed_90d": 2}, 4, 4), "B2": ({"negative_news_90d": 1}, 4, 4), "B3": ({}, 4, 4)})
    metrics = alert_metrics(features, scores, prev)
    store = AlertStore(tmp_path / "alerts.db")

    outcome = run_alerts(store, date(2026, 1, 1), metrics, cfg, "1")
    assert (outcome.raised, outcome.delivered, outcome.delivery_error) == (2, 2, None)
    [body] = receiver.bodies
    assert body["as_of"] == "2026-01-01" and sorted(a["buyer_id"] for a in body["alerts"]) == ["B1", "B2"]
    first = next(a for a in body["alerts"] if a["buyer_id"] == "B1")
    assert (first["signal"], first["colour"], first["action"]) == ("lawsuits", "yellow", cfg.actions["yellow"])
    assert first["metrics"] == {"lawsuit_filed_90d": 2}

    # Same findings: nothing new to post.
    assert run_alerts(store, date(2026, 2, 1), metrics, cfg, "1").delivered == 0 and len(receiver.bodies) == 1

    # B1 escalates while the webhook is down: the post fails, is reported, and is not lost.
    receiver.status = 503
    worse = alert_metrics(*frames({"B1": ({"lawsuit_filed_90d": 3}, 4, 4), "B2": ({"negative_news_90d": 1}, 4, 4)}))
    failed = run_alerts(store, date(2026, 3, 1), worse, cfg, "1")
    assert failed.escalated == 1 and failed.delivered == 0 and "failed" in failed.delivery_error and url in failed.delivery_error
    receiver.status = 200
    retried = run_alerts(store, date(2026, 4, 1), worse, cfg, "1")
    assert retried.delivered == 1 and retried.delivery_error is None
    assert [(a["buyer_id"], a["colour"]) for a in receiver.bodies[-1]["alerts"]] == [("B1", "red")]
    store.close()


def test_no_webhook_configured_posts_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("TRADECREDIT_ALERT_WEBHOOK", raising=False)
    cfg = load_config().monitoring.alerts
    assert cfg.webhook == WebhookConfig(url=None, timeout_seconds=cfg.webhook.timeout_seconds, batch_size=cfg.webhook.batch_size)
    store = AlertStore(tmp_path / "alerts.db")
    outcome = run_alerts(store, date(2026, 1, 1), alert_metrics(*frames({"B1": ({"negative_news_90d": 1}, 4, 4)})), cfg, "1")
    assert (outcome.raised, outcome.delivered, outcome.delivery_error, outcome.open_yellow) == (1, 0, None, 1)
    store.close()
