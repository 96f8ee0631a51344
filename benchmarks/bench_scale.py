"""Scaling-out figures (docs/operations.md; figures in RESULTS.md).

training: the final LightGBM fit on a Dask LocalCluster of 2 workers (LightGBM's Dask
    estimator, 1 thread each) against the same fit in one process (2 threads), at the same
    tuned-style parameters and number of trees, on the default model's training rows of a
    portfolio of N buyers (the synthetic training-set generator of tests/model: every model
    column, monthly rows; the simulator's full pipeline at 50,000 buyers takes most of an hour
    here). Prints fit seconds, the cluster's start-up, and test AUC / log loss of both.

serving: the per-request cost of the production profile (Feast SQL registry on PostgreSQL,
    online features in Redis) against the embedded one (file registry, SQLite online store) on
    the same workspace, models and buyers, in process (the HTTP layer is the same in both).
    Starts throwaway servers (tradecredit.local_servers), applies and materializes the
    workspace's features into both stores, loads the champions from the MLflow server.

    cd benchmarks && ../.venv/bin/python bench_scale.py training [--buyers 50000] [--rounds 300]
    cd benchmarks && ../.venv/bin/python bench_scale.py serving --workspace DIR [--requests 2000] [--config-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the synthetic training-set generator lives with the model tests


def training(buyers: int, months: int, rounds: int) -> None:
    from sklearn.metrics import log_loss, roc_auc_score

    from tests.model.synthetic import synthetic_training_set
    from tradecredit.config import load_config
    from tradecredit.training.distributed import fit_booster_dask
    from tradecredit.training.model import model_matrix
    from tradecredit.training.splits import TEST
    from tradecredit.training.procedure import fit_booster
    from tradecredit.training.train import final_params, tuning_inputs

    cfg = load_config(REPO / "configs")
    model_cfg = cfg.training.default
    started = time.perf_counter()
    frame, data_end = synthetic_training_set("default", buyers=buyers, months=months)
    inputs = tuning_inputs(frame, "default", data_end, model_cfg, cfg.training.lightgbm, cfg.labels.late_days)
    params = final_params(model_cfg.tuning.first_trial.model_dump(), inputs.base)
    test = inputs.data.rows(TEST, holdout=True)
    x_test, y_test = model_matrix(test, inputs.data.features, inputs.data.categories, "default"), test["default_12m"].to_numpy()
    print(f"{buyers:,} buyers x {months} months: {frame.height:,} rows, {inputs.x_train.shape[0]:,} training rows x "
          f"{inputs.x_train.shape[1]} features, {len(y_test):,} test rows ({time.perf_counter() - started:.0f} s to generate)")
    print(f"Parameters: the configured first trial, {rounds} trees, monotone constraints on; 2 cores.")

    t0 = time.perf_counter()
    local = fit_booster(params, inputs.x_train, inputs.y_train, rounds)
    local_seconds = time.perf_counter() - t0
    dask = fit_booster_dask(params, inputs.x_train, inputs.y_train, rounds, cfg.backends.dask)
    for name, booster, seconds, extra in (
        ("single process (2 threads)", local, local_seconds, ""),
        (f"Dask LocalCluster ({dask.workers} workers x 1 thread)", dask.fitted_booster, dask.fit_seconds,
         f"; cluster start {dask.cluster_seconds:.1f} s"),
    ):
        prob = booster.predict(x_test)
        print(f"  {name}: fit {seconds:.1f} s{extra}; test AUC {roc_auc_score(y_test, prob):.4f}, log loss {log_loss(y_test, prob):.5f}")


def _timed(calls, n: int) -> list[float]:
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        calls(i)
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def _summary(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return f"p50 {q[49]:.2f} ms, p95 {q[94]:.2f} ms, mean {statistics.fmean(samples):.2f} ms"


def serving(workspace: Path, requests: int, configs: Path) -> None:
    from tradecredit.config import load_config
    from tradecredit.features.store import apply_repo, materialize
    from tradecredit.ledger import read_normalised_table
    from tradecredit.local_servers import start_production_servers
    from tradecredit.serving.engine import Clock, open_assessor
    from tradecredit.serving.schemas import AssessRequest
    from tradecredit.training.registry import TRACKING_URI_ENV
    from tradecredit.workspace import Workspace

    ws = Workspace(workspace.resolve())
    as_of = ws.built_as_of()
    clock = Clock(datetime(as_of.year, as_of.month, as_of.day, 23, 59, 59, tzinfo=UTC))
    buyers = read_normalised_table(ws.ledger, "buyers", ["buyer_id"])["buyer_id"].to_list()
    servers = start_production_servers()
    try:
        os.environ.update(servers.environment())
        profiles = {"embedded": load_config(configs, "embedded"), "production": load_config(configs, "production")}
        # Both profiles serve the same champions: train once into the server, the embedded run reads it there too.
        os.environ[TRACKING_URI_ENV] = servers.mlflow.address
        _register_workspace_models(ws, profiles["production"], configs)
        for name, cfg in profiles.items():
            store = apply_repo(ws.feature_paths(), cfg.features, cfg.backends)
            materialize(store, as_of, cfg.features)
        print(f"{len(buyers):,} buyers of {ws.root}, clock {clock.now().date()}; {requests:,} requests each, one at a time, in process; 2 cores.")
        for name, cfg in profiles.items():
            assessor = open_assessor(ws, cfg, clock, with_log=True)
            reader = assessor.reader
            reads = _timed(lambda i: reader.read([buyers[i % len(buyers)]]), requests)
            assess = _timed(lambda i: assessor.assess([AssessRequest.model_validate(
                {"buyer_id": buyers[i % len(buyers)], "order": {"amount": 10_000, "terms_days": 60}})], "assess"), requests)
            print(f"  {name:10s} online read: {_summary(reads)}; whole assessment (with SHAP and the decision log): {_summary(assess)}")
    finally:
        servers.stop()


def _register_workspace_models(ws, cfg, configs: Path) -> None:
    """Train both models of the workspace into the MLflow server with the production profile's
    tuning (shared study) and the Dask fit, and promote them: the same champions for both runs."""
    from tradecredit.training import pipeline

    for model in ("default", "late"):
        print(pipeline.train(cfg, ws, model, config_dir=configs).describe())
        print(pipeline.promote(cfg, ws, model).describe())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("training")
    t.add_argument("--buyers", type=int, default=50_000)
    t.add_argument("--months", type=int, default=30)
    t.add_argument("--rounds", type=int, default=300)
    s = sub.add_parser("serving")
    s.add_argument("--workspace", type=Path, required=True)
    s.add_argument("--requests", type=int, default=2000)
    s.add_argument("--config-dir", type=Path, default=REPO / "configs", help="e.g. a copy with short searches: the models only need to exist")
    args = parser.parse_args()
    if args.what == "training":
        training(args.buyers, args.months, args.rounds)
    else:
        serving(args.workspace, args.requests, args.config_dir)


if __name__ == "__main__":
    main()
