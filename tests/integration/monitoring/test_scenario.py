"""Scenario: the same portfolio in two worlds, one with a macro shock in its last months.

The calm world is the session's demo. The shocked one is simulated with the same seed, so it is
the same portfolio until the shock; it is monitored with the calm world's champion (the model
trained before the shock, read from the calm world's registry through
TRADECREDIT_MLFLOW_TRACKING_URI, as a shared registry would be). Score drift, mean PD and red
alerts must rise in the shocked world and not in the calm one. The false-alarm rate of the calm
world at full size is measured by benchmarks/bench_monitoring.py and reported in the README.
"""

from __future__ import annotations

import json
import shutil

import yaml

from tests.integration.conftest import run
from tradecredit.monitoring.cli import demo_dates
from tradecredit.training.registry import tracking_uri
from tradecredit.workspace import Workspace

BUYERS, MONTHS = "400", "40"  # the demo fixture's portfolio


def test_a_macro_shock_raises_score_drift_and_red_alerts_and_the_calm_world_does_not(demo_run, tmp_path):
    calm = demo_run.workspace
    end = json.loads((calm / "features" / "build_summary.json").read_text())["as_of_end"]
    _, month_start, last = demo_dates(__import__("datetime").date.fromisoformat(end))
    configs = tmp_path / "configs"
    shutil.copytree(demo_run.configs, configs)
    simulator = yaml.safe_load((configs / "simulator.yaml").read_text())
    # A downturn over the last five months: the macro factor falls by 1.5 latent units.
    simulator["quality"]["macro_shock"] = {"start_month": int(MONTHS) - 5, "months": 3, "size": -1.5}
    (configs / "simulator.yaml").write_text(yaml.safe_dump(simulator))
    shocked = tmp_path / "ws"
    env = {"TRADECREDIT_MLFLOW_TRACKING_URI": tracking_uri(Workspace(calm))}
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
    for step in steps:
        result = run(*base, *step, env=env, timeout=600)
        assert result.returncode == 0, f"{step}: {result.stdout[-2000:]}{result.stderr[-2000:]}"

    def summary(ws):
        return json.loads((ws / "monitoring" / "runs" / last.isoformat() / "summary.json").read_text())

    calm_run, shock_run = summary(calm), summary(shocked)
    assert calm_run["model_version"] == shock_run["model_version"] == "1"
    assert shock_run["score_drift"]["psi"] > max(2 * calm_run["score_drift"]["psi"], 0.10), (shock_run["score_drift"], calm_run["score_drift"])
    assert shock_run["mean_pd_12m"] > 1.3 * calm_run["mean_pd_12m"]
    shock_red = shock_run["alerts"]["open_red"] / shock_run["active_buyers"]
    calm_red = calm_run["alerts"]["open_red"] / calm_run["active_buyers"]
    assert shock_red > 1.5 * calm_red, (shock_run["alerts"], calm_run["alerts"])
