"""Distributed training: the final booster fitted by LightGBM's Dask estimator.

The features, monotone constraints and tuned parameters are the single-machine ones; only the
fit is spread over the Dask workers (LightGBM's data-parallel tree learner: each worker builds
histograms of its partition, and they are summed over the network every split). The result is
an ordinary ``lgb.Booster``, so calibration, evaluation, the registry and the service do not
know where it was trained.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from tradecredit.backends_config import DaskConfig
from tradecredit.dask_cluster import dask_client

LABEL_COLUMN = "__label__"


@dataclass(frozen=True)
class DaskFit:
    fitted_booster: lgb.Booster
    workers: int
    scheduler: str  # the scheduler's address, or "LocalCluster"
    cluster_seconds: float  # starting (or reaching) the cluster
    fit_seconds: float


def fit_booster_dask(params: dict[str, object], x: pd.DataFrame, y: np.ndarray, rounds: int, cfg: DaskConfig) -> DaskFit:
    """Fit ``rounds`` trees with ``params`` on the Dask cluster, the rows split evenly over its
    workers. Text features keep their pandas categories, so the booster reads the same input
    frame as one trained in process."""
    import dask.dataframe as dd
    from lightgbm import DaskLGBMClassifier

    started = time.perf_counter()
    with dask_client(cfg) as (client, scheduler):
        workers = len(client.scheduler_info()["workers"])  # type: ignore[attr-defined]
        ready = time.perf_counter()
        # One frame split once, so every partition's features and labels line up.
        frame = dd.from_pandas(x.assign(**{LABEL_COLUMN: y}), npartitions=workers, sort=False)
        x_parts, y_parts = frame.drop(columns=[LABEL_COLUMN]), frame[LABEL_COLUMN]
        x_parts, y_parts = client.persist([x_parts, y_parts])  # type: ignore[attr-defined]
        settings = {k: v for k, v in params.items() if k != "num_threads"}
        estimator = DaskLGBMClassifier(
            client=client, n_estimators=rounds, num_threads=cfg.threads_per_worker, **settings,
        )
        with warnings.catch_warnings():
            # LightGBM says it found the workers' ports itself; that is what we ask of it.
            warnings.simplefilter("ignore", UserWarning)
            estimator.fit(x_parts, y_parts)
        booster = estimator.to_local().booster_
    done = time.perf_counter()
    return DaskFit(booster, workers, scheduler, ready - started, done - ready)
