"""Scenario: the same portfolio in two worlds, one with a macro shock in its last months.

The calm world is the session's demo. The shocked one is simulated with the same seed, so it is
the same portfolio until the shock; it is monitored with the calm world's champion (the model
trained before the shock, read from the calm world's registry through
TRADECREDIT_MLFLOW_TRACKING_URI, as a shared registry would be). The drift of the payment
behaviour and the red alerts per buyer must be clearly higher in the shocked world than in the
calm one, against the same reference and the same model.

What this size cannot show, so the test does not claim it: the score's own drift. The demo
fixture's quick model (400 buyers, about 20 test events, three tuning trials) barely separates
risk (test AUC about 0.54), so its PD does not follow the downturn: the shocked world's score
PSI came out no higher than the calm world's (0.090 against 0.092, mean PD 1.29% against 1.40%).
Nor is the calm world free of drift: its payment behaviour is already in the "major" band against
a reference years older. The score's drift under the shock, and the calm world's false-alarm
rate, are measured at 5,000 buyers with the demo's model by benchmarks/bench_monitoring.py
--scenario and reported in the README.
"""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from tradecredit.cli import app
from tradecredit.monitoring.pipeline import demo_dates
from tradecredit.training.registry import tracking_uri
from tradecredit.workspace import Workspace

BUYERS, MONTHS = "400", "40"  # the demo fixture's portfolio
BEHAVIOUR = ("dbt_weighted_90d", "late_share_90d", "overdue_share", "open_61_90", "dbt_trend_90d_vs_365d", "paydex_90d")


@pytest.mark.timeout(900)  # seven CLI steps on top of the session's demo
def test_a_macro_shock_raises_red_alerts_and_behaviour_drift_above_the_calm_worlds(demo_run, tmp_path, monkeypatch):
    calm = demo_run.workspace
    end = json.loads((calm / "features" / "build_summary.json").read_text())["as_of_end"]
    _, month_start, last = demo_dates(__import__("datetime").date.fromisoformat(end))
    configs = tmp_path / "configs"
    shutil.copytree(demo_run.configs, configs)
    simulator = yaml.safe_load((configs / "simulator.yaml").read_text())
    # A downturn eight months before the end: the macro factor falls by 2 latent units over three
    # months (default hazards about 10 times higher), leaving the behaviour windows time to show it.
    simulator["quality"]["macro_shock"] = {"start_month": int(MONTHS) - 8, "months": 3, "size": -2.0}
    (configs / "simulator.yaml").write_text(yaml.safe_dump(simulator))
    shocked = tmp_path / "ws"
    monkeypatch.setenv("TRADECREDIT_MLFLOW_TRACKING_URI", tracking_uri(Workspace(calm)))
    base = ["--workspace", str(shocked), "--config-dir", str(configs)]
    steps = [
        ["simulate", "--out", str(shocked / "simulated"), "--buyers", BUYERS, "--months", MONTHS],
        ["load", str(shocked / "simulated" / "ledger")],
        ["features", "build"],
        ["features", "apply"],
        ["features", "training-set", "default"],
        ["monitor", "--as-of", month_start.isoformat()],
        ["monitor", "--as-of", last.isoformat()],
    ]
    # In this process, as a user's commands would run (a subprocess per step would spend most of
    # the test importing Feast and MLflow).
    for step in steps:
        result = CliRunner().invoke(app, [*base, *step])
        assert result.exit_code == 0 and result.exception is None, f"{step}: {result.output[-3000:]}"

    def summary(ws):
        return json.loads((ws / "monitoring" / "runs" / last.isoformat() / "summary.json").read_text())

    calm_run, shock_run = summary(calm), summary(shocked)
    assert calm_run["model_version"] == shock_run["model_version"] == "1"
    seen = {"calm": {k: calm_run[k] for k in ("mean_pd_12m", "score_drift", "alerts")}, "shock": {k: shock_run[k] for k in ("mean_pd_12m", "score_drift", "alerts")}}
    # Red alerts per active buyer: the early warnings see the downturn.
    shock_red = shock_run["alerts"]["open_red"] / shock_run["active_buyers"]
    calm_red = calm_run["alerts"]["open_red"] / calm_run["active_buyers"]
    assert shock_red > 1.5 * calm_red, seen
    # Drift of the payment-behaviour features the downturn moves, against the same reference.
    def behaviour_psi(ws):
        drift = {d["name"]: d["psi"] for d in json.loads((ws / "monitoring" / "runs" / last.isoformat() / "drift.json").read_text())}
        return {f: drift[f] for f in BEHAVIOUR}

    shock_psi, calm_psi = behaviour_psi(shocked), behaviour_psi(calm)
    assert sum(shock_psi.values()) > 1.3 * sum(calm_psi.values()), (shock_psi, calm_psi)
    # Each of them, not one feature carrying the mean.
    assert all(shock_psi[f] > calm_psi[f] for f in BEHAVIOUR), (shock_psi, calm_psi)
