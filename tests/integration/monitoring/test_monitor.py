"""`tradecredit monitor` and `backtest` on the session's demo workspace (whose step 8 ran the
monitoring a year before the data end, a month before and at the end): a history of runs, drift
against the champion's training rows, alerts deduplicated across runs, the report and its JSON
summary, and the report rendered by headless Chromium."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import date

import numpy as np
import polars as pl
import pytest

from tests.integration.conftest import cli
from tradecredit.monitoring.pipeline import demo_dates
from tradecredit.workspace import Workspace


@pytest.fixture(scope="module")
def dates(demo_run):
    end = date.fromisoformat(json.loads((demo_run.workspace / "features" / "build_summary.json").read_text())["as_of_end"])
    return demo_dates(end)


def test_the_demo_monitored_three_dates_and_wrote_the_report(demo_run, dates):
    ws = demo_run.workspace
    assert "== 8. Monitor the portfolio" in demo_run.result.stdout
    assert f"Monitoring report (open it in a browser): {ws / 'monitoring' / 'runs' / dates[-1].isoformat() / 'report.html'}" in demo_run.result.stdout
    history = Workspace(ws).score_history()
    assert sorted(history["as_of_ts"].dt.date().unique().to_list()) == dates
    assert history["model_version"].unique().to_list() == ["1"] and history["pd_12m"].is_between(0, 1).all()
    summary = json.loads((ws / "monitoring" / "runs" / dates[-1].isoformat() / "summary.json").read_text())
    assert summary["as_of"] == dates[-1].isoformat() and summary["active_buyers"] == history.filter(pl.col("as_of_ts").dt.date() == dates[-1]).height
    # The year-old run has matured: the report carries its backtest.
    assert summary["backtest"]["as_of"] == dates[0].isoformat()
    positions = pl.read_parquet(ws / "monitoring" / "runs" / dates[-1].isoformat() / "positions.parquet")
    assert summary["exposure"]["total"] == pytest.approx(positions["exposure"].sum())
    assert sum(m["buyers"] for m in summary["customer_mix"]) == positions.height
    assert summary["concentration"]["hhi"] == pytest.approx(((positions["exposure"] / positions["exposure"].sum()) ** 2).sum())
    late = pl.read_parquet(ws / "monitoring" / "runs" / dates[-1].isoformat() / "late_scores.parquet")
    assert late.height == summary["late_scored_invoices"] > 0 and late["p_late"].is_between(0, 1).all()
    assert late["issued_on"].max() <= dates[-1]


def test_alerts_are_stored_once_per_buyer_and_signal_across_the_demo_runs(demo_run, dates):
    with sqlite3.connect(demo_run.workspace / "monitoring" / "alerts.db") as con:
        runs = [r[0] for r in con.execute("SELECT as_of FROM alert_runs ORDER BY as_of")]
        duplicates = con.execute("SELECT count(*) FROM (SELECT buyer_id, signal FROM alerts WHERE status = 'open' GROUP BY 1, 2 HAVING count(*) > 1)").fetchone()[0]
        open_alerts = con.execute("SELECT count(*) FROM alerts WHERE status = 'open'").fetchone()[0]
        case_runs = [r[0] for r in con.execute("SELECT as_of FROM case_runs ORDER BY as_of")]
        open_cases = con.execute("SELECT count(*) FROM cases WHERE status = 'open'").fetchone()[0]
        two_cases = con.execute("SELECT count(*) FROM (SELECT buyer_id FROM cases WHERE status = 'open' GROUP BY 1 HAVING count(*) > 1)").fetchone()[0]
        # Every buyer with an open alert has its one open case (nobody resolved anything yet), and
        # an open case without an open alert is counting its quiet runs.
        without_case = con.execute("SELECT count(DISTINCT buyer_id) FROM alerts a WHERE status = 'open' AND NOT EXISTS "
                                   "(SELECT 1 FROM cases c WHERE c.buyer_id = a.buyer_id AND c.status = 'open')").fetchone()[0]
        buyers_alerted = con.execute("SELECT count(DISTINCT buyer_id) FROM alerts WHERE status = 'open'").fetchone()[0]
        quiet = con.execute("SELECT min(quiet_runs) FROM cases c WHERE status = 'open' AND NOT EXISTS "
                            "(SELECT 1 FROM alerts a WHERE a.buyer_id = c.buyer_id AND a.status = 'open')").fetchone()[0]
    assert runs == [d.isoformat() for d in dates] and duplicates == 0 and open_alerts > 0
    assert case_runs == runs and open_cases >= buyers_alerted > 0 and two_cases == 0 and without_case == 0
    assert open_cases == buyers_alerted or quiet >= 1
    # Monitoring the last date again raises nothing new and keeps every alert.
    again = cli("--workspace", str(demo_run.workspace), "--config-dir", str(demo_run.configs), "monitor", "--as-of", dates[-1].isoformat())
    assert again.returncode == 0, again.stderr
    assert "Alerts: 0 raised, 0 escalated" in again.stdout and f"{open_alerts} still open" in again.stdout
    assert "Cases: 0 opened, 0 escalated to red, 0 closed after quiet runs" in again.stdout
    # An earlier date after a later one: scored, but alerts are not re-evaluated out of order.
    past = cli("--workspace", str(demo_run.workspace), "--config-dir", str(demo_run.configs), "monitor", "--as-of", dates[1].isoformat())
    assert past.returncode == 0 and "Alerts not evaluated" in past.stderr and "Traceback" not in past.stderr


def test_monitor_scores_match_batch_scoring_and_the_backtest_command(demo_run, dates, tmp_path):
    ws, earlier = demo_run.workspace, dates[0]
    history = Workspace(ws).score_history()
    past_rows = history.filter(pl.col("as_of_ts").dt.date() == earlier).height
    past = history.filter(pl.col("as_of_ts").dt.date() == earlier).head(20)
    entities = tmp_path / "entities.csv"
    past.select("buyer_id", pl.lit(earlier.isoformat()).alias("as_of_ts")).write_csv(entities)
    scored = cli("--workspace", str(ws), "--config-dir", str(demo_run.configs), "score", "default", "--entities", str(entities), "--out", str(tmp_path / "s.csv"))
    assert scored.returncode == 0, scored.stderr
    np.testing.assert_allclose(pl.read_csv(tmp_path / "s.csv")["pd_12m"].to_numpy(), past["pd_12m"].to_numpy(), atol=1e-12)

    # Only the year-old run's 12-month label has matured by the ledger's end.
    backtest = cli("--workspace", str(ws), "--config-dir", str(demo_run.configs), "backtest")
    assert backtest.returncode == 0, backtest.stderr
    assert backtest.stdout.startswith(f"{earlier} (version 1):")
    assert f"Early warnings on 1 matured run(s) ({earlier})" in backtest.stdout and "case red" in backtest.stdout
    report = json.loads((ws / "monitoring" / "backtest.json").read_text())
    warnings = report["early_warnings"]
    assert warnings["runs"] == [earlier.isoformat()] and {r["flag"] for r in warnings["table"]} >= {"case (any colour)", "case red"}
    assert all(0 <= r["precision"] <= 1 and r["hits"] <= r["flagged"] for r in warnings["table"])
    [matured] = report["runs"]
    assert matured["as_of"] == earlier.isoformat() and matured["rows"] <= past_rows and sum(g["events"] for g in matured["grades"]) == matured["events"]
    # The late-payment model: the year-old run's invoices are all decided, the last run's are not.
    late_runs = [r["as_of"] for r in report["late"]["runs"]]
    assert earlier.isoformat() in late_runs and dates[-1].isoformat() not in late_runs

    drift = json.loads((ws / "monitoring" / "runs" / dates[-1].isoformat() / "drift.json").read_text())
    names = {d["name"] for d in drift}
    assert "pd_12m" in names and "open_balance" in names and len(drift) == 101
    assert [d["psi"] for d in drift] == sorted((d["psi"] for d in drift), reverse=True)
    assert all(abs(sum(d["current_share"]) - 1) < 1e-9 and d["band"] in ("stable", "moderate", "major") for d in drift)


def test_the_report_renders_its_plots_in_headless_chromium(demo_run, dates, tmp_path):
    from tests.integration.browser import open_page

    report = demo_run.workspace / "monitoring" / "runs" / dates[-1].isoformat() / "report.html"
    with open_page(report.as_uri()) as page:
        images = page.evaluate("Array.from(document.images).map(i => ({alt: i.alt, width: i.naturalWidth, height: i.naturalHeight, done: i.complete}))")
        heading = page.inner_text("h1")
        alert_rows = page.locator("#alerts tr").count()
        case_rows = page.locator("#cases tr").count()
        backtest_rows = page.locator("#warning-backtest tr").count()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
    assert heading == f"Portfolio monitoring, {dates[-1]}"
    assert [i["alt"] for i in images] == [
        "score distribution", "PSI by feature", "calibration by grade", "exposure by grade, industry and country", "aging and concentration", "open alerts by signal",
    ]
    assert all(i["done"] and i["width"] > 300 and i["height"] > 100 for i in images), images
    assert alert_rows > 1 and case_rows > 1 and backtest_rows > 1
    assert (tmp_path / "report.png").stat().st_size > 20_000


def test_cases_are_listed_red_first_and_a_reviewer_resolves_one(demo_run, tmp_path):
    from tradecredit.monitoring.cases import read_cases, red_case_buyers

    # On a copy of the case book: other tests of this workspace see the demo's cases.
    ws = tmp_path / "ws"
    (ws / "monitoring").mkdir(parents=True)
    shutil.copy(demo_run.workspace / "monitoring" / "alerts.db", ws / "monitoring" / "alerts.db")
    base = ("--workspace", str(ws), "--config-dir", str(demo_run.configs), "cases")
    listed = cli(*base, "list")
    assert listed.returncode == 0, listed.stderr
    kinds = [line.split()[2] for line in listed.stdout.splitlines()]
    order = {"red": 0, "yellow": 1, "listed": 2}
    assert kinds and "red" in kinds and [order[k] for k in kinds] == sorted(order[k] for k in kinds)
    red = read_cases(ws / "monitoring" / "alerts.db").filter(pl.col("kind") == "red").row(0, named=True)
    assert red["buyer_id"] in red_case_buyers(ws / "monitoring" / "alerts.db", date.max)
    done = cli(*base, "resolve", str(red["case_id"]), "--outcome", "false_alarm", "--by", "ana", "--note", "called the buyer")
    assert done.returncode == 0 and f"Case {red['case_id']} ({red['buyer_id']}) closed" in done.stdout, done.stderr
    closed = read_cases(ws / "monitoring" / "alerts.db", "closed").row(0, named=True)
    assert (closed["case_id"], closed["outcome"], closed["resolved_by"], closed["resolution_note"]) == (red["case_id"], "false_alarm", "ana", "called the buyer")
    assert red["buyer_id"] not in red_case_buyers(ws / "monitoring" / "alerts.db", date.max)
    again = cli(*base, "resolve", str(red["case_id"]), "--outcome", "false_alarm", "--by", "ana")
    wrong = cli(*base, "resolve", str(red["case_id"]), "--outcome", "ignored", "--by", "ana")
    assert again.returncode == wrong.returncode == 2 and "already closed" in again.stderr and "not one of" in wrong.stderr
    assert "Traceback" not in again.stderr + wrong.stderr


def test_monitor_before_any_snapshot_is_a_clear_error(demo_run):
    result = cli("--workspace", str(demo_run.workspace), "--config-dir", str(demo_run.configs), "monitor", "--as-of", "2001-01-01")
    assert result.returncode == 2 and "no active buyer as of 2001-01-01" in result.stderr and "Traceback" not in result.stderr
    bad = cli("--workspace", str(demo_run.workspace), "monitor", "--as-of", "yesterday")
    assert bad.returncode == 2 and "is not a date" in bad.stderr
