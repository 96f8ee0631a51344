"""`tradecredit monitor` on the session's demo workspace: scores as of a date, a history of
runs, and drift against the champion's training rows."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import polars as pl

from tests.integration.conftest import run
from tradecredit.monitoring.cli import score_history
from tradecredit.workspace import Workspace


def test_monitor_runs_form_a_history_and_match_batch_scoring(demo_run, tmp_path):
    ws = demo_run.workspace
    end = date.fromisoformat(json.loads((ws / "features" / "build_summary.json").read_text())["as_of_end"])
    earlier = date(end.year - 1, end.month, 1)
    for day in (earlier, end):
        result = run("--workspace", str(ws), "--config-dir", str(demo_run.configs), "monitor", "--as-of", day.isoformat())
        assert result.returncode == 0, result.stderr
        assert f"active buyers as of {day}" in result.stdout and "Score PSI" in result.stdout
    history = score_history(Workspace(ws))
    assert sorted(history["as_of_ts"].dt.date().unique().to_list()) == [earlier, end]
    assert history["model_version"].unique().to_list() == ["1"] and history["pd_12m"].is_between(0, 1).all()

    # The same buyers at the earlier date through `score default`: identical PDs (one path for both).
    past_rows = history.filter(pl.col("as_of_ts").dt.date() == earlier).height
    past = history.filter(pl.col("as_of_ts").dt.date() == earlier).head(20)
    entities = tmp_path / "entities.csv"
    past.select("buyer_id", pl.lit(earlier.isoformat()).alias("as_of_ts")).write_csv(entities)
    scored = run("--workspace", str(ws), "--config-dir", str(demo_run.configs), "score", "default", "--entities", str(entities), "--out", str(tmp_path / "s.csv"))
    assert scored.returncode == 0, scored.stderr
    np.testing.assert_allclose(pl.read_csv(tmp_path / "s.csv")["pd_12m"].to_numpy(), past["pd_12m"].to_numpy(), atol=1e-12)

    # Backtest: only the earlier run's 12-month label has matured by the ledger's end.
    backtest = run("--workspace", str(ws), "--config-dir", str(demo_run.configs), "backtest")
    assert backtest.returncode == 0, backtest.stderr
    assert backtest.stdout.startswith(f"{earlier} (version 1):") and str(end) not in backtest.stdout
    report = json.loads((ws / "monitoring" / "backtest.json").read_text())
    [matured] = report["runs"]
    assert matured["as_of"] == earlier.isoformat() and matured["rows"] <= past_rows and sum(g["events"] for g in matured["grades"]) == matured["events"]

    drift = json.loads((ws / "monitoring" / "runs" / end.isoformat() / "drift.json").read_text())
    names = {d["name"] for d in drift}
    assert "pd_12m" in names and "open_balance" in names and len(drift) == 101
    assert [d["psi"] for d in drift] == sorted((d["psi"] for d in drift), reverse=True)
    assert all(abs(sum(d["current_share"]) - 1) < 1e-9 and d["band"] in ("stable", "moderate", "major") for d in drift)


def test_monitor_before_any_snapshot_is_a_clear_error(demo_run):
    result = run("--workspace", str(demo_run.workspace), "--config-dir", str(demo_run.configs), "monitor", "--as-of", "2001-01-01")
    assert result.returncode == 2 and "no active buyer as of 2001-01-01" in result.stderr and "Traceback" not in result.stderr
    bad = run("--workspace", str(demo_run.workspace), "monitor", "--as-of", "yesterday")
    assert bad.returncode == 2 and "is not a date" in bad.stderr
