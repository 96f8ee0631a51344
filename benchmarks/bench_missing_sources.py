"""What each optional source of the data contract is worth: the same simulated portfolio with
one source left out at a time (the simulator's ``omit`` switch), and an invoice-only ledger
with all of them left out, each run through load, features, training sets and training; the
default and late models' out-of-time AUC on held-out buyers and against the simulator's truth.

Credit events stay in every variant but the invoice-only one, so the default label is the same
event; without them it is derived from days past due (configs/labels.yaml).

    .venv/bin/python benchmarks/bench_missing_sources.py [--buyers 3000] [--months 48] [--trials 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tradecredit import pipeline as ledger_stages
from tradecredit.config import load_config
from tradecredit.features import pipeline as feature_stages
from tradecredit.ledger import FIRMOGRAPHIC_COLUMNS
from tradecredit.model_specs import MODELS, model_spec
from tradecredit.training.pipeline import read_truth
from tradecredit.training.train import train
from tradecredit.workspace import Workspace

VARIANTS: dict[str, dict[str, list[str]]] = {
    "everything": {"tables": [], "columns": []},
    "no registry_events": {"tables": ["registry_events"], "columns": []},
    "no financials": {"tables": ["financials"], "columns": []},
    "no firmographics": {"tables": [], "columns": list(FIRMOGRAPHIC_COLUMNS)},
    "no payments (paid_on only)": {"tables": ["payments"], "columns": []},
    "no seller_id": {"tables": [], "columns": ["seller_id"]},
    "no disputed_on": {"tables": [], "columns": ["disputed_on"]},
    "invoice-only": {"tables": ["payments", "registry_events", "financials", "credit_events"],
                     "columns": ["seller_id", "disputed_on", *FIRMOGRAPHIC_COLUMNS]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buyers", type=int, default=3000)
    parser.add_argument("--months", type=int, default=48)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    args = parser.parse_args()
    cfg = load_config()
    training = cfg.training.model_copy(update={
        name: cfg.training.model(name).model_copy(update={"tuning": cfg.training.model(name).tuning.model_copy(update={"trials": args.trials})})
        for name in MODELS
    })
    print(f"{args.buyers} buyers x {args.months} months, seed {cfg.simulator.seed}, {args.trials}-trial searches")
    print(f"{'ledger':<28}{'features':>9}  {'default AUC':>11} {'x oracle':>8} {'label rate':>10}   {'late AUC':>8} {'x oracle':>8}  {'seconds':>7}")
    for name, omit in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            ws = Workspace(Path(tmp) / "ws")
            sim_cfg = ledger_stages.simulator_config(cfg.simulator, buyers=args.buyers, months=args.months, omit=omit)
            simulated = ledger_stages.simulate(sim_cfg, ws.simulated)
            ledger_stages.load(cfg, simulated.paths.ledger_dir, ws)
            feature_stages.build(cfg, ws)
            feature_stages.apply(cfg, ws)
            row = []
            for model in MODELS:
                feature_stages.training_set(cfg, ws, model)
                frame, data_end = ws.read_training_set(model)
                truth = read_truth(ws, model_spec(model), data_end, cfg.labels.late_days)
                trained = train(frame, model, data_end, training.model(model), training.lightgbm, cfg.policy, cfg.labels.late_days, truth)
                m = trained.flat_metrics()
                row.append((m["test_auc"], m.get("oracle_auc_ratio"), float(frame[trained.model.label].mean()), len(trained.model.features)))
        (d_auc, d_ratio, d_rate, d_features), (l_auc, l_ratio, _, _) = row
        print(f"{name:<28}{d_features:>9}  {d_auc:>11.4f} {d_ratio or float('nan'):>8.3f} {d_rate:>10.2%}   {l_auc:>8.4f} "
              f"{l_ratio or float('nan'):>8.3f}  {time.perf_counter() - started:>7.0f}", flush=True)


if __name__ == "__main__":
    main()
