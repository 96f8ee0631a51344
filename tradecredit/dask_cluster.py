"""A Dask client of the configured scheduler, or of a throwaway LocalCluster: one place for the
stages that spread work over Dask (the feature build's partitions, LightGBM's Dask fit)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from tradecredit.backends_config import DaskConfig


@contextlib.contextmanager
def dask_client(cfg: DaskConfig) -> Iterator[tuple[object, str]]:
    """A client of the configured scheduler, or of a LocalCluster of ``cfg.workers`` processes
    that is shut down on exit; with the scheduler's address (or "LocalCluster")."""
    from distributed import Client, LocalCluster

    # distributed logs every worker start and stop at INFO; the command prints its own summary.
    logging.getLogger("distributed").setLevel(logging.ERROR)
    if cfg.scheduler:
        with Client(cfg.scheduler) as client:
            yield client, cfg.scheduler
        return
    with (
        LocalCluster(n_workers=cfg.workers, threads_per_worker=cfg.threads_per_worker, processes=True,
                     dashboard_address=None, host="127.0.0.1") as cluster,
        Client(cluster) as client,
    ):
        yield client, "LocalCluster"
