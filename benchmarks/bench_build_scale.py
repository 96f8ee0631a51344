"""The partitioned feature build as the book grows: 10,000 to 100,000 buyers x 48 months on this
machine (goal: peak memory under 6 GB, time no faster than linear in buyers), the same build on a
Dask LocalCluster, and a plan for 1,000,000 buyers on a cluster extrapolated from the measured
partitions (said so in the output). With --materialize, the largest book is also registered and
materialized into SQLite and into a real Redis (goal: under 60 s).

The books are tiles: one simulated 10,000-buyer portfolio per seed (--tiles seeds, simulated and
loaded once), concatenated with each copy's ids prefixed; past --tiles x 10,000 buyers the
tiles repeat under new ids (a copy's buyers have the same histories as the original's). The
build treats every buyer on its own, so its work per buyer is that of one simulated book of the
size; simulating and loading 100,000 buyers in one go would take more memory and far more time
than the build being measured.

    .venv/bin/python benchmarks/bench_build_scale.py [--sizes 10000,20000,50000,100000] [--months 48]
        [--tiles 10] [--dask-size 20000] [--materialize] [--workdir DIR]
    .venv/bin/python benchmarks/bench_build_scale.py --materialize-only DIR/ws100000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import polars as pl
import yaml
from measure import TRADECREDIT, measure

from tradecredit.config import default_config_dir, load_config
from tradecredit.features.partitions import partition_count, partition_of

TILE = 10_000


def tile_workspace(workdir: Path, seed: int, months: int) -> Path:
    """One simulated, loaded 10,000-buyer book (kept in workdir between runs)."""
    ws = workdir / "tiles" / f"seed{seed}"
    if not (ws / "ledger" / "load_summary.json").exists():
        sim = workdir / "tiles" / f"sim{seed}"
        measure([TRADECREDIT, "simulate", "--out", str(sim), "--buyers", str(TILE), "--months", str(months), "--seed", str(seed),
                 "--format", "parquet"])
        measure([TRADECREDIT, "--workspace", str(ws), "load", str(sim / "ledger")])
        shutil.rmtree(sim)
    return ws / "ledger"


def compose_ledger(tiles: list[Path], out: Path) -> int:
    """The tiles' normalised tables as one loaded ledger, streamed; the number of invoices."""
    out.mkdir(parents=True, exist_ok=True)
    for table in sorted(p.stem for p in tiles[0].glob("*.parquet")):
        scans = []
        for i, tile in enumerate(tiles):
            scan = pl.scan_parquet(tile / f"{table}.parquet")
            names = scan.collect_schema().names()
            scans.append(scan.with_columns((pl.lit(f"t{i}-") + pl.col(c)).alias(c) for c in ("buyer_id", "invoice_id") if c in names))
        pl.concat(scans).sink_parquet(out / f"{table}.parquet")
    summaries = [json.loads((t / "load_summary.json").read_text()) for t in tiles]
    summary = summaries[0] | {"data_start": min(s["data_start"] for s in summaries), "data_end": max(s["data_end"] for s in summaries)}
    (out / "load_summary.json").write_text(json.dumps(summary, indent=2))
    return pl.scan_parquet(out / "invoices.parquet").select(pl.len()).collect().item()


def dask_configs(folder: Path) -> Path:
    """The shipped configs with the feature build on a Dask LocalCluster."""
    shutil.copytree(default_config_dir(), folder)
    backends = yaml.safe_load((folder / "backends.yaml").read_text())
    (folder / "backends.yaml").write_text(yaml.safe_dump(backends | {"feature_build_engine": "dask"}))
    return folder


def build(ws: Path, env: dict[str, str] | None = None) -> tuple[float, float, dict]:
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        run = measure([TRADECREDIT, "--workspace", str(ws), "features", "build"])
    finally:
        os.environ.clear()
        os.environ.update(old)
    return run.seconds, run.peak_rss_mb, json.loads((ws / "features" / "build_summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,20000,50000,100000")
    parser.add_argument("--months", type=int, default=48)
    parser.add_argument("--tiles", type=int, default=10, help="distinct simulated 10,000-buyer books (seeds 1..N)")
    parser.add_argument("--dask-size", type=int, default=20_000)
    parser.add_argument("--materialize", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the tiles and the largest book's workspace here between runs (default: a temporary folder)")
    parser.add_argument("--materialize-only", type=Path, metavar="WORKSPACE",
                        help="only register and materialize an already built workspace (one this script left in --workdir)")
    args = parser.parse_args()
    if args.materialize_only:
        with tempfile.TemporaryDirectory() as tmp:
            buyers = pl.scan_parquet(args.materialize_only / "ledger" / "buyers.parquet").select(pl.len()).collect().item()
            materialize(args.materialize_only, buyers, Path(tmp))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    cfg = load_config()
    print(f"cores: {os.cpu_count()}; partition_buyers {cfg.features.build.partition_buyers:,}, "
          f"DuckDB memory limit {cfg.features.build.duckdb_memory_limit}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        distinct = [tile_workspace(workdir, seed, args.months) for seed in range(1, min(args.tiles, math.ceil(max(sizes) / TILE)) + 1)]
        tiles = [distinct[i % len(distinct)] for i in range(math.ceil(max(sizes) / TILE))]
        print(f"{len(distinct)} distinct simulated books of {TILE:,} buyers x {args.months} months, repeated under new ids beyond "
              f"{len(distinct) * TILE:,} buyers")
        print(f"{'buyers':>9} {'invoices':>11} {'snapshots':>11} {'partitions':>10} {'seconds':>8} {'s/1k buyers':>11} {'peak MB':>8}")
        results = {}
        for size in sizes:
            ws = workdir / f"ws{size}"
            shutil.rmtree(ws, ignore_errors=True)
            invoices = compose_ledger(tiles[: math.ceil(size / TILE)], ws / "ledger")
            seconds, peak, summary = build(ws)
            results[size] = (seconds, peak, summary, ws)
            print(f"{size:>9,} {invoices:>11,} {summary['snapshots']:>11,} {summary['partitions']['count']:>10} {seconds:>8.1f} "
                  f"{seconds / size * 1000:>11.2f} {peak:>8,.0f}")
            if size != max(sizes) and size != args.dask_size:
                shutil.rmtree(ws)
        small, large = min(sizes), max(sizes)
        growth = results[large][0] / results[small][0]
        print(f"time x{growth:.2f} for x{large / small:.0f} the buyers (linear: x{large / small:.0f}); "
              f"peak memory {results[small][1]:,.0f} MB at {small:,} buyers, {results[large][1]:,.0f} MB at {large:,}")

        # The same build mapped over a Dask LocalCluster (2 worker processes, 1 thread each).
        if args.dask_size in results:
            ws = results[args.dask_size][3]
            env = {"TRADECREDIT_CONFIG_DIR": str(dask_configs(Path(tmp) / "dask_configs"))}
            shutil.rmtree(ws / "features")
            seconds, peak, summary = build(ws, env)
            local = results[args.dask_size][0]
            print(f"Dask LocalCluster ({summary['partitions']['workers']} workers), {args.dask_size:,} buyers: {seconds:.1f} s "
                  f"(in process: {local:.1f} s), largest process {peak:,.0f} MB")
            if args.dask_size != large:
                shutil.rmtree(ws)

        # 1,000,000 buyers: the partition plan computed, the time extrapolated from the largest
        # measured build's partitions (not run: this machine has 2 cores).
        seconds, peak, summary, ws = results[large]
        parts = summary["partitions"]
        per_buyer = sum(parts["partition_seconds"]) / sum(parts["partition_buyers"])
        split_per_buyer = parts["split_seconds"] / large
        million = 1_000_000
        count = partition_count(million, cfg.features.build.partition_buyers)
        sizes_1m = pl.Series([partition_of(f"B{i:07d}", count) for i in range(million)]).value_counts()["count"]
        print(f"1,000,000 buyers (extrapolated, not run): {count} partitions of {sizes_1m.min():,}-{sizes_1m.max():,} buyers; "
              f"each about {per_buyer * sizes_1m.max():.0f} s and {parts['peak_rss_mb']:,.0f} MB per worker as measured here")
        for workers in (2, 8, 32):
            waves = math.ceil(count / workers)
            wall = split_per_buyer * million + waves * per_buyer * sizes_1m.max()
            print(f"  on {workers:>2} workers: {waves} waves, about {wall / 60:.0f} min (the split, {split_per_buyer * million:.0f} s, "
                  "runs once on the scheduler's machine)")

        if args.materialize:
            materialize(ws, large, Path(tmp))


def materialize(ws: Path, buyers: int, tmp: Path) -> None:
    from tradecredit.local_servers import start_redis

    apply = measure([TRADECREDIT, "--workspace", str(ws), "features", "apply"])
    mat = measure([TRADECREDIT, "--workspace", str(ws), "features", "materialize"])
    print(f"SQLite: apply {apply.seconds:.1f} s; materialize {buyers:,} buyers x 4 views {mat.seconds:.1f} s, peak {mat.peak_rss_mb:,.0f} MB")
    configs = Path(tmp) / "redis_configs"
    shutil.copytree(default_config_dir(), configs)
    features = yaml.safe_load((configs / "features.yaml").read_text())
    (configs / "features.yaml").write_text(yaml.safe_dump(features | {"online_store": "redis"}))
    with start_redis() as server:
        env = {"TRADECREDIT_CONFIG_DIR": str(configs), "TRADECREDIT_REDIS_URL": server.address}
        old = dict(os.environ)
        os.environ.update(env)
        try:
            mat = measure([TRADECREDIT, "--workspace", str(ws), "features", "materialize"])
        finally:
            os.environ.clear()
            os.environ.update(old)
    print(f"Redis: materialize {buyers:,} buyers x 4 views {mat.seconds:.1f} s, peak {mat.peak_rss_mb:,.0f} MB")


if __name__ == "__main__":
    main()
