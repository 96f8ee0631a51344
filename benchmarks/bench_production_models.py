"""Production models: walk-forward quality against the oracle, the logistic benchmark and the
no-model rule, the served model's share of the labelled rows, and the gate's decision, on
simulated portfolios of several seeds and sizes (the simulator's messes on, as configured).

Each book runs through the command line up to the training sets, as a user would, then
``train`` and ``promote`` (the pipeline functions the commands call) for both models.

    .venv/bin/python benchmarks/bench_production_models.py [--books 1500x42:11,1500x42:12,100x18:13]
        [--shock START:MONTHS:SIZE]

``--shock`` simulates every book with that macro shock (configs/simulator.yaml ``macro_shock``:
e.g. ``24:4:-0.8``, a downturn from month 24), to see whether PDs follow the cycle. The last
column gives each origin's observed event rate against the mean prediction on held-out buyers.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from measure import TRADECREDIT, measure

from tradecredit import pipeline as platform_pipeline
from tradecredit.config import load_config
from tradecredit.errors import StageError
from tradecredit.model_specs import MODELS
from tradecredit.training.pipeline import promote, train
from tradecredit.workspace import Workspace


def _book(spec: str) -> tuple[int, int, int]:
    size, seed = spec.split(":")
    buyers, months = size.split("x")
    return int(buyers), int(months), int(seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", default="1500x42:11,1500x42:12,3000x48:13,100x18:14",
                        help="BUYERSxMONTHS:SEED, comma-separated")
    parser.add_argument("--shock", default=None, help="START:MONTHS:SIZE, a macro shock in every book (e.g. 24:4:-0.8)")
    args = parser.parse_args()
    cfg = load_config()
    shock = None
    if args.shock:
        start, months, size = args.shock.split(":")
        shock = {"start_month": int(start), "months": int(months), "size": float(size)}
    print("book | model | origins | AUC (sd) | logistic | no-model | lift vs logistic [95% bounds] | lift vs no-model [bounds] | "
          "model/oracle AUC | ECE | oracle ECE | served rows share | gate | observed / predicted by origin")
    for spec in args.books.split(","):
        buyers, months, seed = _book(spec)
        with tempfile.TemporaryDirectory() as tmp:
            ws = Workspace(Path(tmp) / "ws")
            base = [TRADECREDIT, "--workspace", str(ws.root)]
            simulate = [[*base, "simulate", "--out", str(ws.simulated), "--buyers", str(buyers), "--months", str(months), "--seed", str(seed)]]
            if shock:  # the command line has no shock option: the same simulation, in process
                quality = cfg.simulator.quality.model_dump() | {"macro_shock": shock}
                sim_cfg = platform_pipeline.simulator_config(cfg.simulator, buyers=buyers, months=months, seed=seed, quality=quality)
                platform_pipeline.simulate(sim_cfg, ws.simulated)
                simulate = []
            steps = [*simulate, [*base, "load", str(ws.simulated / "ledger")], [*base, "features", "build"], [*base, "features", "apply"],
                     [*base, "features", "materialize"], *[[*base, "features", "training-set", m] for m in MODELS]]
            for command in steps:
                measure(command)
            for model in MODELS:
                book = f"{buyers}x{months} seed {seed}" + (f" shock {args.shock}" if shock else "")
                try:
                    trained = train(cfg, ws, model)
                except StageError as exc:
                    print(f"{book} | {model} | does not train: {exc}")
                    continue
                m = trained.metrics
                decision = promote(cfg, ws, model).decision
                e = decision.evidence

                def bounds(key: str) -> str:
                    if f"auc_minus_{key}" not in e:
                        return "-"
                    return f"{e[f'auc_minus_{key}']:+.4f} [{e[f'auc_minus_{key}_low']:+.4f}, {e[f'auc_minus_{key}_high']:+.4f}]"

                gate = decision.decision + (f" ({', '.join(decision.failed_checks)})" if decision.failed_checks else "")
                print(f"{book} | {model} | {m['walk_forward_origins']:.0f} | {m['test_auc']:.4f} ({m['test_auc_sd']:.4f}) | "
                      f"{m['benchmark_auc']:.4f} | {m.get('no_model_auc', float('nan')):.4f} | {bounds('logistic')} | {bounds('no_model')} | "
                      f"{m.get('oracle_auc_ratio', float('nan')):.3f} | {m['test_ece']:.4f} (Spiegelhalter p {e['spiegelhalter_p']:.2g}) | {m.get('oracle_ece', float('nan')):.4f} | "
                      f"{m['served_model_rows_share']:.0%} | {gate} | {_levels(trained)}", flush=True)


def _levels(trained) -> str:
    """Each origin's observed rate / mean prediction on held-out buyers, in per cent."""
    pairs = []
    for origin in trained.trained.walk_forward.origins:
        held = origin.metrics["heldout"]
        if "model_observed_rate" in held:
            pairs.append(f"{held['model_observed_rate']:.1%}/{held['model_mean_predicted']:.1%}")
    return ", ".join(pairs) or "-"


if __name__ == "__main__":
    main()
