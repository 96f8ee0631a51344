"""What the monotone constraints cost in ranking, on a trained workspace: the served model's
tuned parameters refitted at each walk-forward origin (its own rounds, trained-on buyers) with
every configured constraint, with none, and with each constrained feature left free in turn;
the mean AUC over the origins on held-out buyers, beside the logistic benchmark's.

    cd benchmarks && ../.venv/bin/python bench_monotone.py --workspace WS [--config-dir DIR] [--model default]
        [--free PREFIX ...] [--no-each]

``--free`` adds a variant with every constrained feature whose name starts with a PREFIX left
free (e.g. ``--free dbt_ paydex_ worst_seller_dbt_``: the days-beyond-terms family).

The constraints are an analyst's sign-off (configs/training.yaml ``monotone``), not a tuning
knob; this says what they cost on one ledger, so that a data scientist can decide with numbers.
The refits leave out calibration (AUC does not need it) and ``max_train_rows`` sampling, so
"all" can differ from the model card's walk-forward AUC by an isotonic calibration's ties.
The constraints it varies are the configured ones: on a workspace trained before a change to
``monotone:``, pass the config it was trained with.
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

from tradecredit.config import default_config_dir, load_config
from tradecredit.model_specs import model_spec
from tradecredit.training.model import model_matrix
from tradecredit.training.splits import HOLDOUT
from tradecredit.training.train import prepare
from tradecredit.workspace import Workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--config-dir", default=None)
    parser.add_argument("--model", default="default", choices=["default", "late"])
    parser.add_argument("--free", nargs="*", default=[], help="name prefixes of constrained features to leave free together")
    parser.add_argument("--no-each", action="store_true", help="skip the variants that free one feature at a time")
    args = parser.parse_args()
    cfg = load_config(Path(args.config_dir) if args.config_dir else default_config_dir())
    ws = Workspace(Path(args.workspace))
    summary = json.loads(ws.train_summary(args.model).read_text())
    model_cfg = cfg.training.model(args.model)
    frame, data_end = ws.read_training_set(args.model)
    data = prepare(frame, args.model, data_end, model_cfg, cfg.labels.late_days)
    label, date_column = model_spec(args.model).label(cfg.labels.late_days), data.plan.date_column
    params = {k: v for k, v in summary["params"].items() if k != "rounds"}
    day = pl.col(date_column).dt.date() if data.frame.schema[date_column] != pl.Date else pl.col(date_column)
    rows = data.frame.with_columns(day.alias("_day"))
    origins = []
    for origin in summary["walk_forward"]:
        trained_to, start, end = (date.fromisoformat(origin[k]) for k in ("trained_to", "test_from", "test_to"))
        train = rows.filter((pl.col("_day") <= trained_to) & ~pl.col(HOLDOUT))  # as training/walk_forward.py
        test = rows.filter(pl.col("_day").is_between(start, end) & pl.col(HOLDOUT))
        origins.append((model_matrix(train, data.features, data.categories, args.model), train[label].to_numpy(),
                        model_matrix(test, data.features, data.categories, args.model), test[label].to_numpy(),
                        int(origin["rounds"]), origin["logistic_auc"], origin["auc"]))
    constrained = [f for f in data.features if model_cfg.monotone.get(f, 0)]

    def mean_auc(free: set[str]) -> tuple[float, list[float]]:
        signs = [0 if f in free else model_cfg.monotone.get(f, 0) for f in data.features]
        aucs = []
        for x, y, x_test, y_test, rounds, _, _ in origins:
            booster = lgb.train(params | {"monotone_constraints": signs}, lgb.Dataset(x, y), num_boost_round=rounds)
            aucs.append(float(roc_auc_score(y_test, booster.predict(x_test))))
        return float(np.mean(aucs)), aucs

    logistic = float(np.mean([o[5] for o in origins]))
    card = float(np.mean([o[6] for o in origins]))
    print(f"{args.model}: {len(origins)} origins, {len(data.features)} features, {len(constrained)} constrained; "
          f"model card walk-forward AUC {card:.4f}, logistic benchmark {logistic:.4f}")
    print(f"{'variant':<40}{'mean AUC':>10}{'vs all':>9}{'vs logistic':>13}  by origin")
    everything, everything_by_origin = mean_auc(set())
    together = {f for f in constrained if any(f.startswith(prefix) for prefix in args.free)}
    variants = [("all constraints (as configured)", set()), ("no constraint", set(constrained))]
    if together:
        variants.append((f"{' '.join(p + '*' for p in args.free)} free", together))
    for name, free in [*variants, *([] if args.no_each else [(f"{f} free", {f}) for f in constrained])]:
        auc, by_origin = mean_auc(free) if free else (everything, everything_by_origin)
        print(f"{name:<40}{auc:>10.4f}{auc - everything:>+9.4f}{auc - logistic:>+13.4f}  {', '.join(f'{a:.4f}' for a in by_origin)}", flush=True)


if __name__ == "__main__":
    main()
