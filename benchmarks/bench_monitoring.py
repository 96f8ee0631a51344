"""Monitoring figures.

1. Speed: one `tradecredit monitor` run at the data end (scores, drift, late-payment scoring,
   alerts, portfolio view, backtests and the report), wall time and peak memory. Goal: 10,000
   buyers in under 2 minutes on 2 cores.
2. Scenario (--scenario): the workspace's portfolio again, same seed, with a macro shock in its
   last months; both worlds monitored month by month with the same champion (trained before the
   shock). Prints, per world and month, the score PSI, the mean PD and the alerts raised per
   1,000 active buyers, and the share of alerted buyers that defaulted by the data end. The calm
   world's rate is the false-alarm rate RESULTS.md reports.

Without --workspace it runs `tradecredit demo --buyers 10000` first. The workspace's
monitoring folder is replaced.

    .venv/bin/python benchmarks/bench_monitoring.py [--workspace DIR] [--scenario] [--months 6]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from datetime import date
from pathlib import Path

import yaml
from measure import TRADECREDIT, measure

from tradecredit.config import default_config_dir, load_config
from tradecredit.features.labels import default_spells
from tradecredit.ledger import read_normalised_ledger
from tradecredit.training.registry import TRACKING_URI_ENV, tracking_uri
from tradecredit.workspace import Workspace


def tc(ws: Path, *args: str, env: dict[str, str] | None = None, configs: Path | None = None) -> None:
    command = [TRADECREDIT, "--workspace", str(ws), *(["--config-dir", str(configs)] if configs else []), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=os.environ | (env or {}))
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def month_starts(end: date, months: int) -> list[date]:
    out, y, m = [], end.year, end.month
    for _ in range(months):
        out.append(date(y, m, 1))
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return sorted(out)


def shocked_twin(calm: Path, folder: Path, shock_months_before_end: int, size: float) -> tuple[Path, Path]:
    """The calm world's portfolio re-simulated with the same seed and a macro shock, loaded,
    its features built and its default training set drawn (the drift reference)."""
    truth = json.loads((calm / "simulated" / "truth" / "summary.json").read_text())
    configs = folder / "configs"
    shutil.copytree(default_config_dir(), configs)
    sim = yaml.safe_load((configs / "simulator.yaml").read_text())
    sim["quality"]["macro_shock"] = {"start_month": truth["months"] - shock_months_before_end, "months": 3, "size": size}
    (configs / "simulator.yaml").write_text(yaml.safe_dump(sim))
    ws = folder / "ws"
    env = {TRACKING_URI_ENV: tracking_uri(Workspace(calm))}
    tc(ws, "simulate", "--out", str(ws / "simulated"), "--buyers", str(truth["buyers"]), "--sellers", str(truth["sellers"]),
       "--months", str(truth["months"]), "--start", truth["start"], configs=configs)
    for step in (["load", str(ws / "simulated" / "ledger")], ["features", "build"], ["features", "apply"], ["features", "training-set", "default"]):
        tc(ws, *step, env=env, configs=configs)
    return ws, configs


def monthly_runs(ws: Path, dates: list[date], env: dict[str, str] | None, configs: Path | None) -> list[dict]:
    shutil.rmtree(Workspace(ws).monitoring, ignore_errors=True)
    cfg = load_config(configs)
    ledger = read_normalised_ledger(ws / "ledger")
    end = Workspace(ws).built_as_of()
    defaulted = set(default_spells(ledger.tables, cfg.labels.default, end).spells["buyer_id"].to_list())
    rows = []
    red_before: set[str] = set()
    for day in dates:
        tc(ws, "monitor", "--as-of", day.isoformat(), env=env, configs=configs)
        summary = json.loads(Workspace(ws).monitoring_run(day).summary.read_text())
        with sqlite3.connect(Workspace(ws).alerts_db) as con:
            raised = con.execute("SELECT buyer_id, colour FROM alerts WHERE raised_on = ? OR escalated_on = ?", (day.isoformat(), day.isoformat())).fetchall()
            # Cases red at this run that were not red at the one before (opened or escalated).
            red_now = {b for (b,) in con.execute("SELECT buyer_id FROM case_snapshots WHERE as_of = ? AND kind = 'red'", (day.isoformat(),))}
        buyers = {b for b, _ in raised}
        rows.append({
            "as_of": day.isoformat(), "active": summary["active_buyers"], "score_psi": summary["score_drift"]["psi"], "mean_pd": summary["mean_pd_12m"],
            "raised_yellow": sum(c == "yellow" for _, c in raised), "raised_red": sum(c == "red" for _, c in raised),
            "open_red": summary["alerts"]["open_red"], "open_yellow": summary["alerts"]["open_yellow"],
            "alerted_buyers_defaulted": len(buyers & defaulted) / len(buyers) if buyers else None,
            "new_red_cases": len(red_now - red_before), "open_red_cases": len(red_now),
        })
        red_before = red_now
    return rows


def print_runs(world: str, rows: list[dict]) -> None:
    print(f"\n{world}: month, active buyers, score PSI, mean PD, raised per 1,000 buyers (yellow / red), open red, alerted buyers defaulted by the data end, "
          "new red cases / open red cases")
    for r in rows:
        per = 1000 / r["active"]
        defaulted = "n/a" if r["alerted_buyers_defaulted"] is None else f"{r['alerted_buyers_defaulted']:.1%}"
        print(f"  {r['as_of']}  {r['active']:>6,}  PSI {r['score_psi']:.3f}  PD {r['mean_pd']:.2%}  "
              f"{r['raised_yellow'] * per:6.1f} / {r['raised_red'] * per:5.1f}  open red {r['open_red']:>4}  {defaulted}  "
              f"red cases {r['new_red_cases']:>4} new / {r['open_red_cases']:>4} open")
    # The first month raises the stock of alerts already true; the rate is the months after it.
    later = rows[1:]
    if later:
        rate = sum((r["raised_yellow"] + r["raised_red"]) * 1000 / r["active"] for r in later) / len(later)
        red = sum(r["raised_red"] * 1000 / r["active"] for r in later) / len(later)
        print(f"  alerts raised per 1,000 buyers per month after the first run: {rate:.1f} (red {red:.1f})")
        new_red = sum(r["new_red_cases"] * 1000 / r["active"] for r in later) / len(later)
        print(f"  new red cases per 1,000 buyers per month after the first run: {new_red:.2f}")


def print_comparison(calm: list[dict], shocked: list[dict]) -> None:
    """Issue 22's goal: a downturn at least doubles new red cases against the calm twin."""
    calm_new, shocked_new = sum(r["new_red_cases"] for r in calm[1:]), sum(r["new_red_cases"] for r in shocked[1:])
    ratio = shocked_new / calm_new if calm_new else float("inf")
    print(f"\nNew red cases after the first run: calm {calm_new}, shocked {shocked_new}: x{ratio:.2f} (goal: at least x2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, help="a workspace with both champions (default: run the demo with 10,000 buyers)")
    parser.add_argument("--scenario", action="store_true", help="also run the shock against calm scenario")
    parser.add_argument("--months", type=int, default=6, help="monthly runs in the scenario")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench_monitoring_"))
    ws = args.workspace
    if ws is None:
        ws = scratch / "demo"
        print(f"Running the demo with 10,000 buyers in {ws} ...")
        tc(ws, "demo", "--buyers", "10000")
    end = Workspace(ws).built_as_of()
    shutil.rmtree(Workspace(ws).monitoring, ignore_errors=True)
    # A previous month first, so the timed run has a run before it (grade changes, alert dedup).
    tc(ws, "monitor", "--as-of", date(end.year, end.month, 1).isoformat())
    m = measure([TRADECREDIT, "--workspace", str(ws), "monitor", "--as-of", end.isoformat()])
    summary = json.loads(Workspace(ws).monitoring_run(end).summary.read_text())
    report = Workspace(ws).monitoring_run(end).report
    print(f"monitor --as-of {end}: {summary['active_buyers']:,} active buyers ({summary['inactive_buyers']:,} inactive), "
          f"{summary['late_scored_invoices']:,} invoices scored by the late model: {m.seconds:.1f} s wall, peak {m.peak_rss_mb:,.0f} MB "
          f"(goal: under 120 s for 10,000 buyers); report {report.stat().st_size / 1e6:.2f} MB")
    if args.scenario:
        dates = month_starts(end, args.months)
        print(f"\nScenario: building the shocked twin of {ws} ...")
        shocked, configs = shocked_twin(ws, scratch, shock_months_before_end=args.months - 1, size=-1.5)
        calm_rows = monthly_runs(ws, dates, None, None)
        print_runs("calm", calm_rows)
        shocked_rows = monthly_runs(shocked, dates, {TRACKING_URI_ENV: tracking_uri(Workspace(ws))}, configs)
        print_runs("shocked", shocked_rows)
        print_comparison(calm_rows, shocked_rows)
    print(f"\nScratch folder: {scratch}")


if __name__ == "__main__":
    main()
