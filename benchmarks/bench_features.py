"""Feature store figures on a portfolio of 10,000 buyers over 36 months (about 1.5 million invoices).

Prints: the feature build (goal: under 60 s on 2 cores) and its peak memory; Feast apply and
materialize; the default model's training-set retrieval (one row per buyer and month) through
Feast's DuckDB offline store against a direct DuckDB ASOF join of the same Parquet files (and
checks they agree); online lookup p50/p99 for 1 and 100 buyers, in process, SQLite.

    .venv/bin/python benchmarks/bench_features.py [--buyers 10000] [--months 36]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import polars as pl
from measure import TRADECREDIT, measure

from tradecredit.config import load_config
from tradecredit.features.build import KNOWN_AT_TS, SNAPSHOT_TS, calendar_dates
from tradecredit.features.catalog import FEATURE_SERVICES, features_of_model
from tradecredit.features.paths import FeaturePaths
from tradecredit.features.store import OnlineFeatureReader, historical_features, open_store


def direct_asof(paths: FeaturePaths, entities: pl.DataFrame, ttl_days: dict[str, int]) -> pl.DataFrame:
    """The same point-in-time join as Feast's, written straight in DuckDB."""
    con = duckdb.connect()
    con.register("entities", entities.with_row_index("entity_row"))
    selects, joins = [], []
    for view in FEATURE_SERVICES["default"][1]:
        names = [f.name for f in features_of_model("default") if f.view == view]
        alias = f"v_{view}"
        fresh = f"{alias}.{SNAPSHOT_TS} >= e.as_of_ts - INTERVAL {ttl_days[view]} DAY AND {alias}.{KNOWN_AT_TS} <= e.as_of_ts"
        selects += [f"CASE WHEN {fresh} THEN {alias}.{n} END AS {n}" for n in names]
        joins.append(
            f"ASOF LEFT JOIN read_parquet('{paths.view_dataset(view)}') {alias} "
            f"ON e.buyer_id = {alias}.buyer_id AND e.as_of_ts >= {alias}.{SNAPSHOT_TS}"
        )
    sql = f"SELECT e.entity_row, e.buyer_id, e.as_of_ts, {', '.join(selects)} FROM entities e {' '.join(joins)}"
    frame = con.sql(sql).pl().sort("entity_row").drop("entity_row")
    return frame.with_columns(pl.col("as_of_ts").dt.convert_time_zone("UTC"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buyers", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=36)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}")
    cfg = load_config()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        sim = Path(tmp) / "sim"
        measure([TRADECREDIT, "simulate", "--out", str(sim), "--buyers", str(args.buyers), "--months", str(args.months)])
        measure([TRADECREDIT, "--workspace", str(ws), "load", str(sim / "ledger")])
        load_summary = json.loads((ws / "ledger" / "load_summary.json").read_text())
        invoices = load_summary["tables"]["invoices"]["accepted"]

        build = measure([TRADECREDIT, "--workspace", str(ws), "features", "build"])
        summary = json.loads((ws / "features" / "build_summary.json").read_text())
        print(
            f"features build: {args.buyers:,} buyers, {invoices:,} invoices -> {summary['snapshots']:,} snapshots x "
            f"{sum(summary['features'].values())} features: {summary['seconds']:.1f} s inside the command, "
            f"{build.seconds:.1f} s with process start, peak memory {build.peak_rss_mb:,.0f} MB"
        )
        apply = measure([TRADECREDIT, "--workspace", str(ws), "features", "apply"])
        mat = measure([TRADECREDIT, "--workspace", str(ws), "features", "materialize"])
        print(f"feast apply: {apply.seconds:.1f} s; materialize {args.buyers:,} buyers x 4 views: {mat.seconds:.1f} s "
              f"(peak memory {mat.peak_rss_mb:,.0f} MB; both include ~10 s of importing Feast)")

        paths = FeaturePaths(ws / "features", ws / "feature_repo")
        store = open_store(paths, cfg.features)
        months = calendar_dates(
            pl.Series([load_summary["data_start"]]).str.to_date()[0], pl.Series([load_summary["data_end"]]).str.to_date()[0], "monthly"
        )
        buyers = pl.read_parquet(ws / "ledger" / "buyers.parquet").select("buyer_id")
        entities = buyers.join(pl.DataFrame({"as_of_ts": months}), how="cross").with_columns(
            pl.col("as_of_ts").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        )
        started = time.perf_counter()
        via_feast = historical_features(store, "default", entities)
        feast_s = time.perf_counter() - started
        started = time.perf_counter()
        direct = direct_asof(paths, entities, cfg.features.ttl_days.model_dump())
        direct_s = time.perf_counter() - started
        same = via_feast.equals(direct.select(via_feast.columns))
        print(
            f"default training-set retrieval, {entities.height:,} rows x {via_feast.width - 2} features: "
            f"Feast (DuckDB offline store) {feast_s:.1f} s, direct DuckDB ASOF join {direct_s:.1f} s "
            f"({feast_s / direct_s:.1f}x); identical results: {same}"
        )

        ids = buyers["buyer_id"].to_list()
        reader = OnlineFeatureReader(store, "default", cfg.features)
        for batch in (1, 100):
            timings = []
            for i in range(300):
                chosen = [ids[(i * batch + j) % len(ids)] for j in range(batch)]
                t0 = time.perf_counter()
                reader.read(chosen).stale_features()
                timings.append((time.perf_counter() - t0) * 1000)
            timings = timings[20:]  # warm-up
            print(
                f"online lookup, {batch} buyer(s) x {via_feast.width - 2} features (SQLite, in process): "
                f"p50 {statistics.median(timings):.2f} ms, p99 {percentile(timings, 0.99):.2f} ms"
            )


if __name__ == "__main__":
    main()
