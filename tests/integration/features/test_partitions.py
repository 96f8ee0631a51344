"""The partitioned feature build: any split by buyer gives the single build's rows, future
facts never leak through a partition, an incremental build redoes only what changed, and the
same partitions build on a Dask LocalCluster."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import duckdb
import polars as pl
from polars.testing import assert_frame_equal

from tests.conftest import write_ledger
from tests.integration.features.conftest import TRICKY_LEDGER, build_into, daily, load_folder
from tests.unit.features.test_build import AS_OF, LATER, _planted
from tradecredit.features.build import SNAPSHOT_TS, build_features
from tradecredit.features.partitions import PARTITION_SQL, partition_of
from tradecredit.ledger import ledger_sources


def _single(loaded, config, features_cfg, as_of_end: date) -> dict[str, pl.DataFrame]:
    start = date.fromisoformat(loaded.summary.data_start)
    built = build_features(loaded.tables, features_cfg, config.ledger.settlement_tolerance, start, as_of_end, ledger_sources(loaded.tables))
    return built.views


def _assert_same(partitioned: dict[str, pl.DataFrame], single: dict[str, pl.DataFrame]) -> None:
    assert partitioned.keys() == single.keys()
    for view, frame in single.items():
        assert_frame_equal(partitioned[view], frame.sort("buyer_id", SNAPSHOT_TS), check_row_order=True)


def test_the_partition_of_a_buyer_is_the_same_in_sql_and_python():
    ids = [f"B{i:06d}" for i in range(500)] + ["", "ü-ß", "a" * 80]
    for partitions in (1, 3, 16):
        sql = PARTITION_SQL.format(column="buyer_id", partitions=partitions)
        got = duckdb.sql(f"SELECT buyer_id, {sql} AS part FROM (SELECT unnest(?) AS buyer_id)", params=[ids]).pl()
        assert dict(zip(got["buyer_id"], got["part"], strict=True)) == {b: partition_of(b, partitions) for b in ids}
    sizes = pl.Series([partition_of(b, 16) for b in ids[:500]]).value_counts()["count"]
    assert sizes.min() > 10, "md5 spreads sequential ids over every partition"


def test_a_multi_partition_build_equals_the_single_build(small_portfolio, config, tmp_path):
    root, loaded = small_portfolio
    end = date.fromisoformat(loaded.summary.data_end)
    built = build_into(tmp_path, loaded, config, config.features, partition_buyers=7)
    assert len(built.partitioned.outcomes) == 6 and built.partitioned.rebuilt == 6
    assert sum(o.buyers for o in built.partitioned.outcomes) == loaded.tables["buyers"].height
    _assert_same(built.views(), _single(loaded, config, config.features, end))


def test_planted_future_facts_never_reach_a_partition(config, tmp_path):
    """The planted ledger's buyer T1 gets a payment, an invoice, a dispute, an event and a
    statement dated after the as-of date; no partition's snapshots may change up to it."""
    features_cfg = daily(config.features)
    clean = load_folder(write_ledger(tmp_path / "clean", TRICKY_LEDGER), config)
    planted = load_folder(write_ledger(tmp_path / "planted", _planted()), config)
    cut = build_into(tmp_path / "cut", planted, config, features_cfg, as_of_end=AS_OF).views()
    reference = {v: f.filter(pl.col(SNAPSHOT_TS).dt.date() <= AS_OF) for v, f in build_into(tmp_path / "ref", clean, config, features_cfg).views().items()}
    _assert_same(cut, reference)
    # ...and the planted facts do show from their own date on, so the comparison can fail.
    later = build_into(tmp_path / "later", planted, config, features_cfg).views()["payment_behaviour"]
    row = later.filter((pl.col("buyer_id") == "T1") & (pl.col(SNAPSHOT_TS).dt.date() == LATER)).row(0, named=True)
    before = reference["payment_behaviour"].filter(pl.col("buyer_id") == "T1").row(-1, named=True)
    assert row["invoices_issued_90d"] > before["invoices_issued_90d"]


def test_an_incremental_build_redoes_only_the_partitions_whose_rows_changed(small_portfolio, config, tmp_path):
    _, loaded = small_portfolio
    first = build_into(tmp_path, loaded, config, config.features, partition_buyers=7)
    assert first.partitioned.rebuilt == 6
    original = first.views()
    again = build_into(tmp_path, loaded, config, config.features, partition_buyers=7)
    assert again.partitioned.rebuilt == 0, "nothing changed: every partition is kept"
    _assert_same(again.views(), original)

    # One buyer's invoice is corrected: only that buyer's partition is rebuilt, and the result
    # is the full build of the corrected ledger.
    invoices = loaded.tables["invoices"]
    target = invoices.row(0, named=True)
    corrected = invoices.with_columns(
        amount=pl.when(pl.col("invoice_id") == target["invoice_id"]).then(pl.col("amount") * 3).otherwise(pl.col("amount"))
    )
    changed = replace(loaded, tables={**loaded.tables, "invoices": corrected})
    rebuilt = build_into(tmp_path, changed, config, config.features, partition_buyers=7)
    touched = [o.partition for o in rebuilt.partitioned.outcomes if o.rebuilt]
    assert touched == [partition_of(target["buyer_id"], 6)]
    end = date.fromisoformat(loaded.summary.data_end)
    _assert_same(rebuilt.views(), _single(changed, config, config.features, end))
    assert not rebuilt.views()["payment_behaviour"].equals(original["payment_behaviour"])

    # A new as-of date changes every snapshot grid: every partition is rebuilt.
    moved = build_into(tmp_path, changed, config, config.features, as_of_end=end.replace(day=1), partition_buyers=7)
    assert moved.partitioned.rebuilt == 6


def test_the_partitions_build_on_a_dask_local_cluster(small_portfolio, config, tmp_path):
    _, loaded = small_portfolio
    on_dask = build_into(tmp_path / "dask", loaded, config, config.features, partition_buyers=7, engine="dask")
    assert on_dask.partitioned.engine == "LocalCluster" and on_dask.partitioned.workers == config.backends.dask.workers
    assert on_dask.partitioned.rebuilt == 6
    end = date.fromisoformat(loaded.summary.data_end)
    _assert_same(on_dask.views(), _single(loaded, config, config.features, end))


def test_empty_partitions_hold_no_market_rows_and_a_partition_that_empties_loses_them(config, tmp_path):
    """Five partitions for four buyers (two empty); then buyer B2 leaves the ledger and its
    partition empties: its files, the market view's too, go, and the rest is the single build."""
    from tradecredit.features.partitions import PartitionPlan, run_partitioned_build
    from tradecredit.features.paths import FeaturePaths
    from tradecredit.ledger import write_loaded_ledger

    features_cfg = daily(config.features)
    paths = FeaturePaths(offline_dir=tmp_path / "features", repo_dir=tmp_path / "repo")

    def build(tables: dict, name: str) -> tuple[object, dict[str, pl.DataFrame]]:
        loaded = load_folder(write_ledger(tmp_path / name, tables), config)
        start, end = date.fromisoformat(loaded.summary.data_start), date(2024, 7, 31)
        plan = PartitionPlan(write_loaded_ledger(loaded, tmp_path / f"{name}-loaded"), paths, 5, features_cfg,
                             config.ledger.settlement_tolerance, start, end, ledger_sources(loaded.tables))
        built = run_partitioned_build(plan, "local", config.backends.dask)
        single = build_features(loaded.tables, features_cfg, config.ledger.settlement_tolerance, start, end, ledger_sources(loaded.tables)).views
        return built, single

    assert [partition_of(b, 5) for b in ("B1", "B2", "B3", "T1")] == [0, 2, 3, 0]
    built, single = build(TRICKY_LEDGER, "all")
    assert sorted(o.partition for o in built.outcomes if not o.buyers) == [1, 4]
    assert not paths.partition_file("market_conditions", 1).exists() and paths.partition_file("market_conditions", 3).exists()
    _assert_same({v: pl.read_parquet(paths.view_dataset(v)).sort("buyer_id", SNAPSHOT_TS) for v in single}, single)

    without_b2 = {k: [r for r in rows if r.get("buyer_id") != "B2"] for k, rows in TRICKY_LEDGER.items()}
    b2_invoices = {r["invoice_id"] for r in TRICKY_LEDGER["invoices"] if r["buyer_id"] == "B2"}
    without_b2["payments"] = [r for r in TRICKY_LEDGER["payments"] if r["invoice_id"] not in b2_invoices]
    built, single = build(without_b2, "without-b2")
    assert [o.partition for o in built.outcomes if o.rebuilt] == [2], "incremental: only the emptied partition is redone"
    assert sorted(o.partition for o in built.outcomes if not o.buyers) == [1, 2, 4]
    assert not any(paths.partition_file(v, 2).exists() for v in single), "an emptied partition keeps no file of any view"
    _assert_same({v: pl.read_parquet(paths.view_dataset(v)).sort("buyer_id", SNAPSHOT_TS) for v in single}, single)
