"""The feature build split by buyer: partitions whose memory follows their size, not the book's.

Every feature but the market view's is a function of one buyer's own facts (windows are per
buyer, seller signals per buyer and seller), so a build over a subset of buyers gives exactly
their rows of the full build. The market view (book-wide and industry lateness) is a second pass
over every partition's daily totals, rewritten on every build.
The ledger is split once by a hash of ``buyer_id`` (DuckDB streams it, spilling past its memory
limit); each partition is then read, built and written as one Parquet file per view before the
next starts, in this process or mapped over a Dask cluster with the same function. A partition
whose ledger rows (and build settings) are unchanged since the last build keeps its files.
"""

from __future__ import annotations

import hashlib
import json
import math
import resource
import shutil
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from tradecredit.backends_config import DaskConfig
from tradecredit.errors import StageError
from tradecredit.features import build as build_module
from tradecredit.features import catalog as catalog_module
from tradecredit.features import market as market_module
from tradecredit.features.build import SNAPSHOT_TS, build_features, connect_duckdb, finish_view
from tradecredit.features.catalog import VIEW_NAMES
from tradecredit.features.market import DAILY_SCHEMA, DAILY_SUMS, market_view
from tradecredit.features.config import FeaturesConfig
from tradecredit.features.paths import FeaturePaths

# The partition of a buyer: the first 32 bits of the MD5 of its id, modulo the partition count.
# Stable across machines and library versions (DuckDB's own hash() is not promised to be), and
# computed the same way in Python for plans that never touch a ledger.
MARKET_VIEW = "market_conditions"  # the one view whose rows depend on other buyers' facts
PER_BUYER_VIEWS = tuple(v for v in VIEW_NAMES if v != MARKET_VIEW)
PARTITION_SQL = "CAST(('0x' || substr(md5({column}), 1, 8)) AS UBIGINT) % {partitions}"


def partition_count(buyers: int, partition_buyers: int) -> int:
    return max(1, math.ceil(buyers / partition_buyers))


def partition_of(buyer_id: str, partitions: int) -> int:
    """Python's twin of :data:`PARTITION_SQL` (a test holds them equal)."""
    return int(hashlib.md5(buyer_id.encode()).hexdigest()[:8], 16) % partitions


@dataclass(frozen=True)
class PartitionPlan:
    """Everything a partition's build needs, picklable for a Dask worker."""

    ledger_dir: Path
    paths: FeaturePaths
    partitions: int
    features: FeaturesConfig
    settlement_tolerance: float
    data_start: date
    as_of_end: date
    sources: dict[str, bool]
    duckdb_settings: dict[str, str] = field(default_factory=dict)

    @property
    def settings_key(self) -> str:
        """What, besides the ledger rows, decides a feature value: a change rebuilds every partition."""
        code = b"".join(Path(m.__file__ or "").read_bytes() for m in (build_module, catalog_module, market_module))
        settings = {
            "as_of_end": self.as_of_end.isoformat(), "data_start": self.data_start.isoformat(), "sources": self.sources,
            "features": self.features.model_dump(mode="json", exclude={"build"}), "tolerance": self.settlement_tolerance,
            "partitions": self.partitions, "polars": pl.__version__, "duckdb": duckdb.__version__,
            "code": hashlib.sha256(code).hexdigest(),
        }
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class PartitionOutcome:
    partition: int
    buyers: int
    snapshots: int
    fingerprint: str
    rebuilt: bool
    seconds: float
    peak_rss_mb: float  # the building process's peak so far (a Dask worker's, or the command's)


@dataclass(frozen=True)
class PartitionedBuild:
    outcomes: tuple[PartitionOutcome, ...]
    engine: str  # "local", or the Dask scheduler's address ("LocalCluster" for a throwaway one)
    split_seconds: float
    workers: int = 1

    @property
    def snapshots(self) -> int:
        return sum(o.snapshots for o in self.outcomes)

    @property
    def rebuilt(self) -> int:
        return sum(o.rebuilt for o in self.outcomes)

    @property
    def largest_partition(self) -> int:
        return max(o.buyers for o in self.outcomes)


def split_ledger(plan: PartitionPlan) -> None:
    """Write each ledger table as ``ledger_split/<table>/part=<k>/`` Parquet, k the buyer's
    partition; a table keyed by invoice (payments) takes its invoice's buyer."""
    out = plan.paths.ledger_split_dir
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    con = connect_duckdb(plan.duckdb_settings)
    try:
        invoices = plan.ledger_dir / "invoices.parquet"
        for path in sorted(plan.ledger_dir.glob("*.parquet")):
            columns = pl.read_parquet_schema(path)
            if "buyer_id" in columns:
                source, key = f"read_parquet('{path}') t", "t.buyer_id"
            elif "invoice_id" in columns:
                source = (f"read_parquet('{path}') t JOIN (SELECT invoice_id AS _invoice, buyer_id AS _buyer "
                          f"FROM read_parquet('{invoices}')) i ON t.invoice_id = i._invoice")
                key = "i._buyer"
            else:
                raise StageError(f"{path}: a ledger table with neither buyer_id nor invoice_id cannot be split by buyer")
            part = PARTITION_SQL.format(column=key, partitions=plan.partitions)
            con.execute(f"COPY (SELECT t.*, {part} AS part FROM {source}) TO '{out / path.stem}' "
                        "(FORMAT parquet, PARTITION_BY (part))")
    finally:
        con.close()


def read_partition(plan: PartitionPlan, partition: int) -> dict[str, pl.DataFrame]:
    """One partition's ledger tables (a table with no row in it comes back empty, typed)."""
    tables = {}
    for path in sorted(plan.ledger_dir.glob("*.parquet")):
        schema = pl.read_parquet_schema(path)
        folder = plan.paths.ledger_split_dir / path.stem / f"part={partition}"
        files = sorted(folder.glob("*.parquet"))
        frame = pl.read_parquet(files, hive_partitioning=False) if files else pl.DataFrame(schema=schema)
        tables[path.stem] = frame.select(pl.col(name).cast(dtype) for name, dtype in schema.items())
    return tables


def ledger_fingerprint(tables: dict[str, pl.DataFrame]) -> str:
    """A digest of the partition's rows, in any order: equal rows, equal digest."""
    parts = [f"{name}:{frame.height}:{frame.hash_rows(seed=0).sum() if frame.height else 0}" for name, frame in sorted(tables.items())]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def build_partition(plan: PartitionPlan, partition: int, previous_fingerprint: str | None = None) -> PartitionOutcome:
    """Build and write one partition's rows of every view, unless its ledger rows match
    ``previous_fingerprint`` and its files are there. The function a Dask worker runs."""
    started = time.perf_counter()
    tables = read_partition(plan, partition)
    fingerprint = ledger_fingerprint(tables)
    buyers = tables["buyers"].height
    # The market view is written by the pass after every partition (write_market_view).
    files = [plan.paths.partition_file(view, partition) for view in PER_BUYER_VIEWS] + [plan.paths.market_daily_file(partition)]
    if fingerprint == previous_fingerprint and (buyers == 0 or all(f.exists() for f in files)):
        snapshots = pl.scan_parquet(files[0]).select(pl.len()).collect().item() if buyers else 0
        return PartitionOutcome(partition, buyers, snapshots, fingerprint, False, time.perf_counter() - started, _peak_rss_mb())
    for stale in files:
        stale.unlink(missing_ok=True)
    snapshots = 0
    if buyers:
        built = build_features(tables, plan.features, plan.settlement_tolerance, plan.data_start, plan.as_of_end, plan.sources,
                               duckdb_settings=plan.duckdb_settings, market=False)
        del tables
        for view in PER_BUYER_VIEWS:
            _write_atomically(built.views[view], plan.paths.partition_file(view, partition))
        assert built.market_daily is not None
        _write_atomically(built.market_daily, plan.paths.market_daily_file(partition))
        snapshots = built.snapshots
    return PartitionOutcome(partition, buyers, snapshots, fingerprint, True, time.perf_counter() - started, _peak_rss_mb())


def _write_atomically(frame: pl.DataFrame, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed: a reader never sees half a file, a killed build no partial one.
    frame.write_parquet(target.with_suffix(".tmp"))
    target.with_suffix(".tmp").replace(target)


def write_market_view(plan: PartitionPlan) -> None:
    """The market view of every partition from the sum of all partitions' daily totals: the
    second, cheap pass (it reads a few thousand totals per partition and each partition's keys)."""
    daily_files = [plan.paths.market_daily_file(i) for i in range(plan.partitions)]
    present = [f for f in daily_files if f.exists()]
    daily = pl.concat([pl.read_parquet(f) for f in present]) if present else pl.DataFrame(schema=DAILY_SCHEMA)
    # Summed across partitions once (days x industries rows), not once per partition.
    daily = daily.group_by("industry", "day").agg(pl.col(c).sum() for c in DAILY_SUMS)
    without_source = catalog_module.features_without_source(plan.sources)
    for partition in range(plan.partitions):
        target = plan.paths.partition_file(MARKET_VIEW, partition)
        keys_file = plan.paths.partition_file("firmographics", partition)
        if not keys_file.exists():  # a partition with no buyer
            target.unlink(missing_ok=True)
            continue
        keys = pl.read_parquet(keys_file, columns=["buyer_id", SNAPSHOT_TS, "industry"]).with_columns(as_of=pl.col(SNAPSHOT_TS).dt.date())
        view = market_view(keys, daily, plan.features.market.industry_prior_invoices)
        _write_atomically(finish_view(view, MARKET_VIEW, without_source), target)


def run_partitioned_build(plan: PartitionPlan, engine: str, dask: DaskConfig) -> PartitionedBuild:
    """Split the ledger and build every partition (on Dask when ``engine`` is ``dask``),
    keeping the partitions the manifest of the last build shows unchanged."""
    previous = _previous_fingerprints(plan)
    started = time.perf_counter()
    split_ledger(plan)
    split_seconds = time.perf_counter() - started
    indices = list(range(plan.partitions))
    try:
        if engine == "dask":
            from tradecredit.dask_cluster import dask_client

            worker_plan = _with_threads(plan, dask.threads_per_worker)
            with dask_client(dask) as (client, scheduler):
                workers = len(client.scheduler_info()["workers"])  # type: ignore[attr-defined]
                futures = client.map(build_partition, [worker_plan] * len(indices), indices,  # type: ignore[attr-defined]
                                     [previous.get(i) for i in indices], pure=False)
                outcomes = client.gather(futures)  # type: ignore[attr-defined]
            result = PartitionedBuild(tuple(outcomes), scheduler, split_seconds, workers)
        else:
            outcomes = [build_partition(plan, i, previous.get(i)) for i in indices]
            result = PartitionedBuild(tuple(outcomes), "local", split_seconds)
    finally:
        shutil.rmtree(plan.paths.ledger_split_dir, ignore_errors=True)
    write_market_view(plan)
    _write_manifest(plan, result)
    return result


def _previous_fingerprints(plan: PartitionPlan) -> dict[int, str]:
    """The last build's fingerprints if its settings match; otherwise none, and its files go."""
    manifest = plan.paths.partitions_manifest
    if manifest.exists():
        saved = json.loads(manifest.read_text(encoding="utf-8"))
        if saved.get("settings_key") == plan.settings_key:
            return {int(k): v for k, v in saved["fingerprints"].items()}
    manifest.unlink(missing_ok=True)
    shutil.rmtree(plan.paths.market_daily_dir, ignore_errors=True)
    for view in VIEW_NAMES:
        shutil.rmtree(plan.paths.view_dir(view), ignore_errors=True)
        # The single-file layout of earlier versions.
        (plan.paths.offline_dir / f"{view}.parquet").unlink(missing_ok=True)
    return {}


def _write_manifest(plan: PartitionPlan, result: PartitionedBuild) -> None:
    plan.paths.partitions_manifest.write_text(json.dumps({
        "settings_key": plan.settings_key,
        "partitions": plan.partitions,
        "fingerprints": {str(o.partition): o.fingerprint for o in result.outcomes},
        "buyers": {str(o.partition): o.buyers for o in result.outcomes},
    }, indent=2) + "\n", encoding="utf-8")


def _with_threads(plan: PartitionPlan, threads: int) -> PartitionPlan:
    from dataclasses import replace

    return replace(plan, duckdb_settings=plan.duckdb_settings | {"threads": str(threads)})


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
