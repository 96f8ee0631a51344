"""Why the default model's PD level misses at each walk-forward origin, on a trained workspace:
the trend, the calibrator's transfer, and what an early read of the in-flight months would add.

    cd benchmarks && ../.venv/bin/python bench_calibration_level.py --workspace WS [--config-dir DIR] [--truth DIR]

At each origin the procedure is refitted as training ran it (the workspace's tuned parameters
and rounds, trained-on buyers up to the origin's training end) and its held-out test months are
scored. Printed per origin:

- the event rate of the calibration months the procedure used, and of the test months: the
  level the calibrator learned against the level it is judged on;
- the mean PD of the booster fitted on every row and of the cross-fitting folds' boosters, both
  through the one calibrator: whether the calibrator carries over to the booster it is put on
  (decision 0008);
- an **early read**: the trained-on buyers' rows dated after the training end, whose 12-month
  windows were still open at the origin (known up to and including its first test day). Their defaults so far
  against the PDs times the share of a year's defaults that arrive within the days each row was
  watched (from the complete rows' default dates) give a shift of the log-odds; the test months'
  mean PD and ECE with that shift are printed beside.

A measurement, not a model change: the procedure calibrates on complete windows only. The refits
use every training row (no ``max_train_rows`` sample), as training does by default.
"""

from __future__ import annotations

import argparse
import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from scipy.optimize import brentq
from sklearn.model_selection import StratifiedGroupKFold

from tradecredit.config import default_config_dir, load_config
from tradecredit.features.labels import DEFAULT_HORIZON_DAYS, default_spells
from tradecredit.model_specs import model_spec
from tradecredit.training.evaluate import expected_calibration_error
from tradecredit.training.pipeline import read_truth
from tradecredit.training.procedure import fit_booster, fit_procedure, scaled_rounds
from tradecredit.training.splits import HOLDOUT
from tradecredit.training.train import prepare, procedure_spec, truth_column
from tradecredit.workspace import Workspace


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--config-dir", default=None)
    parser.add_argument("--truth", default=None, help="the simulator's truth folder, if not the workspace's own")
    args = parser.parse_args()
    cfg = load_config(Path(args.config_dir) if args.config_dir else default_config_dir())
    ws = Workspace(Path(args.workspace))
    model = "default"
    spec, model_cfg = model_spec(model), cfg.training.model(model)
    summary = json.loads(ws.train_summary(model).read_text())
    frame, data_end = ws.read_training_set(model)
    data = prepare(frame, model, data_end, model_cfg, cfg.labels.late_days)
    label = spec.label(cfg.labels.late_days)
    tuned = dict(summary["params"])
    rounds = int(tuned.pop("rounds"))
    procedure = procedure_spec(data, model, cfg.labels.late_days, model_cfg,
                               tuned | {"monotone_constraints": [model_cfg.monotone.get(f, 0) for f in data.features]},
                               rounds, int(summary["slice_rows"]["tuning_train"]))
    # The first default start in each row's 12-month window, from the label's own spells.
    spells = default_spells(ws.read_ledger().tables, cfg.labels.default, data_end).spells
    rows = data.frame.with_columns(pl.col(spec.date_column).dt.date().alias("_day"))
    starts = (rows.select("buyer_id", "_day").unique().join(spells.select("buyer_id", "default_on"), on="buyer_id")
              .filter((pl.col("default_on") > pl.col("_day")) & (pl.col("default_on") <= pl.col("_day") + timedelta(days=DEFAULT_HORIZON_DAYS)))
              .group_by("buyer_id", "_day").agg(pl.col("default_on").min()))
    rows = rows.join(starts, on=["buyer_id", "_day"], how="left").with_columns(
        _days_to_default=(pl.col("default_on") - pl.col("_day")).dt.total_days())
    truth = read_truth(ws, spec, data_end, cfg.labels.late_days, Path(args.truth) if args.truth else None)
    helper = ["_day", "default_on", "_days_to_default"]
    print(f"{ws.root}: {len(summary['walk_forward'])} origins, tuned rounds {rounds}")
    print("origin test months | calibration months' rate | test rate | oracle mean | mean PD (full booster / folds' boosters) | "
          "ECE | in-flight rows, defaults so far / expected | log-odds shift | mean PD, ECE with the shift")
    for origin in summary["walk_forward"]:
        trained_to, start, end = (date.fromisoformat(origin[k]) for k in ("trained_to", "test_from", "test_to"))
        train = rows.filter((pl.col("_day") <= trained_to) & ~pl.col(HOLDOUT))
        fitted = fit_procedure(train.drop(helper), procedure, model_cfg)
        test = rows.filter(pl.col("_day").is_between(start, end) & pl.col(HOLDOUT))
        y, pd_test = test[label].to_numpy(), fitted.model.predict_proba(test)
        calibration_rate = train.filter(pl.col("_day") >= fitted.calibration_start)[label].mean()
        # Boosters that never saw a third of the buyers, like the procedure's cross-fitting folds (three
        # folds of buyers over the training rows, not its exact folds): does the calibrator carry over?
        x, y_train, buyers = fitted.model.matrix(train), train[label].to_numpy(), train["buyer_id"].to_numpy()
        fold_means = []
        for keep, _ in StratifiedGroupKFold(n_splits=model_cfg.crossfit_folds).split(x, y_train, buyers):
            booster = fit_booster(procedure.params, x.iloc[keep], y_train[keep],
                                  scaled_rounds(procedure.tuned_rounds, procedure.tuned_rows, len(keep), procedure.rounds_cap))
            fold_means.append(fitted.model.calibrate(booster.predict(fitted.model.matrix(test), raw_score=True)).mean())
        oracle = np.nanmean(truth_column(test, truth)) if truth is not None else float("nan")
        # The early read: windows still open at the origin, watched from the as-of date to the first test day.
        in_flight = rows.filter((pl.col("_day") > trained_to) & (pl.col("_day") < start) & ~pl.col(HOLDOUT))
        watched = np.array([(start - d).days for d in in_flight["_day"].to_list()])
        # A fact dated on the as-of day is known that day (as the features read it).
        seen = in_flight["_days_to_default"].fill_null(10_000).to_numpy() <= watched
        complete_days = train.filter(pl.col(label) == 1)["_days_to_default"].to_numpy()
        share_by = np.searchsorted(np.sort(complete_days), watched, side="right") / max(len(complete_days), 1)
        pd_in_flight = fitted.model.predict_proba(in_flight)
        observed, expected = int(seen.sum()), float((share_by * pd_in_flight).sum())

        def excess(s: float) -> float:
            return float((share_by * _sigmoid(_logit(pd_in_flight) + s)).sum()) - observed

        shift = float("nan")
        if observed > 0 and expected > 0 and excess(-6.0) < 0 < excess(6.0):
            shift = brentq(excess, -6.0, 6.0)
        shifted = _sigmoid(_logit(pd_test) + shift) if np.isfinite(shift) else pd_test
        print(f"{start}..{end} | {calibration_rate:.4f} | {y.mean():.4f} | {oracle:.4f} | {pd_test.mean():.4f} / {np.mean(fold_means):.4f} | "
              f"{expected_calibration_error(y, pd_test, model_cfg.ece_bins):.4f} | {in_flight.height:,}, {observed} / {expected:.1f} | "
              f"{shift:+.3f} | {shifted.mean():.4f}, {expected_calibration_error(y, shifted, model_cfg.ece_bins):.4f}", flush=True)


if __name__ == "__main__":
    main()
