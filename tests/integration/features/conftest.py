"""Ledgers and a real Feast store for the feature-store tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import GOOD_LEDGER, write_ledger
from tradecredit.config import PlatformConfig
from tradecredit.features.config import FeaturesConfig, SnapshotConfig
from tradecredit.features.build import SNAPSHOT_TS
from tradecredit.features.catalog import VIEW_NAMES
from tradecredit.features.partitions import PartitionedBuild, PartitionPlan, partition_count, run_partitioned_build
from tradecredit.features.paths import FeaturePaths
from tradecredit.ledger import ledger_sources, load_ledger, write_loaded_ledger
from tradecredit.simulator import simulate_portfolio, write_portfolio

# Ties, same-day facts, partial and over-payments, tolerance, restatements, unknown event types.
TRICKY_LEDGER: dict[str, list[dict[str, str]]] = {
    "buyers": [
        *GOOD_LEDGER["buyers"],
        {"buyer_id": "T1", "country": "CN", "industry": "C", "legal_form": "LLC", "founded_on": "2019-02-28",
         "registered_capital": "0", "paid_in_capital": "0", "employees": "40"},
    ],
    "invoices": [
        *GOOD_LEDGER["invoices"],
        {"invoice_id": "TA", "buyer_id": "T1", "seller_id": "S1", "issued_on": "2024-03-01", "due_on": "2024-03-31", "amount": "100"},
        {"invoice_id": "TB", "buyer_id": "T1", "seller_id": "S2", "issued_on": "2024-03-01", "due_on": "2024-03-15", "amount": "200",
         "disputed_on": "2024-03-20"},
        {"invoice_id": "TC", "buyer_id": "T1", "seller_id": "S2", "issued_on": "2024-03-05", "due_on": "2024-03-05", "amount": "50"},
        {"invoice_id": "TD", "buyer_id": "T1", "seller_id": "S3", "issued_on": "2024-01-02", "due_on": "2024-01-31", "amount": "75.5"},
        {"invoice_id": "TE", "buyer_id": "T1", "seller_id": "S3", "issued_on": "2024-03-20", "due_on": "2024-04-19", "amount": "100"},
        {"invoice_id": "TF", "buyer_id": "T1", "seller_id": "S1", "issued_on": "2023-11-15", "due_on": "2023-12-15", "amount": "120",
         "paid_on": "2024-01-20"},
    ],
    "payments": [
        *GOOD_LEDGER["payments"],
        {"invoice_id": "TA", "paid_on": "2024-03-31", "amount": "100"},
        {"invoice_id": "TB", "paid_on": "2024-04-20", "amount": "200"},
        {"invoice_id": "TC", "paid_on": "2024-03-05", "amount": "20"},
        {"invoice_id": "TC", "paid_on": "2024-04-10", "amount": "29.995"},
        {"invoice_id": "TE", "paid_on": "2024-04-01", "amount": "60"},
        {"invoice_id": "TE", "paid_on": "2024-04-01", "amount": "60"},
    ],
    "registry_events": [
        *GOOD_LEDGER["registry_events"],
        {"buyer_id": "T1", "event_on": "2024-03-20", "event_type": "lawsuit_filed"},
        {"buyer_id": "T1", "event_on": "2024-03-20", "event_type": "lawsuit_filed"},
        {"buyer_id": "T1", "event_on": "2024-04-01", "event_type": "enforcement_order"},
        {"buyer_id": "T1", "event_on": "2024-04-01", "event_type": "zoning_dispute"},
        {"buyer_id": "T1", "event_on": "2023-12-01", "event_type": "legal_representative_change"},
    ],
    "financials": [
        *GOOD_LEDGER["financials"],
        {"buyer_id": "T1", "period_end": "2022-12-31", "published_on": "2023-06-30", "revenue": "900000", "total_assets": "500000",
         "total_liabilities": "400000", "current_assets": "200000", "current_liabilities": "0", "cash": "10000",
         "equity": "100000", "net_income": "20000"},
        {"buyer_id": "T1", "period_end": "2022-12-31", "published_on": "2024-02-01", "revenue": "800000", "total_assets": "500000",
         "total_liabilities": "420000", "equity": "80000", "net_income": "10000"},
        {"buyer_id": "T1", "period_end": "2023-12-31", "published_on": "2024-04-30", "revenue": "1000000", "total_assets": "600000",
         "total_liabilities": "300000", "current_assets": "250000", "current_liabilities": "125000", "cash": "50000",
         "equity": "300000", "net_income": "-5000"},
        {"buyer_id": "T1", "period_end": "2023-12-31", "published_on": "2024-05-15", "revenue": "1100000", "total_assets": "600000",
         "total_liabilities": "300000", "equity": "300000", "net_income": "5000"},
    ],
    "credit_events": GOOD_LEDGER["credit_events"],
}


@dataclass(frozen=True)
class BuiltLedger:
    tables: dict
    data_start: date
    data_end: date
    paths: FeaturePaths
    features_cfg: FeaturesConfig
    partitioned: PartitionedBuild | None = None

    def views(self) -> dict[str, pl.DataFrame]:
        """Every view's rows from all partition files, in (buyer, snapshot) order."""
        return {view: pl.read_parquet(self.paths.view_dataset(view)).sort("buyer_id", SNAPSHOT_TS) for view in VIEW_NAMES}


def daily(cfg: FeaturesConfig) -> FeaturesConfig:
    """Snapshots every day: then any as-of date has its own exact snapshot."""
    return cfg.model_copy(update={"snapshots": SnapshotConfig(calendar="daily", before_invoice_dates=False)})


def load_folder(folder: Path, config: PlatformConfig):
    loaded = load_ledger(folder, config.ledger)
    assert loaded.summary.rows_rejected == 0, loaded.rejects
    return loaded


def build_into(root: Path, loaded, config: PlatformConfig, features_cfg: FeaturesConfig, as_of_end: date | None = None,
               partition_buyers: int = 2, engine: str = "local", ledger_dir: Path | None = None) -> BuiltLedger:
    """The partitioned build of ``loaded`` as ``features build`` runs it, with partitions small
    enough that the oracle tests read a multi-partition build (at least two hold buyers)."""
    start, end = date.fromisoformat(loaded.summary.data_start), date.fromisoformat(loaded.summary.data_end)
    as_of_end = as_of_end or end
    paths = FeaturePaths(offline_dir=root / "features", repo_dir=root / "feature_repo")
    ledger_dir = ledger_dir or write_loaded_ledger(loaded, root / "loaded")
    partitions = partition_count(loaded.tables["buyers"].height, partition_buyers)
    plan = PartitionPlan(ledger_dir, paths, partitions, features_cfg, config.ledger.settlement_tolerance, start, as_of_end,
                         ledger_sources(loaded.tables))
    built = run_partitioned_build(plan, engine, config.backends.dask)
    assert sum(1 for o in built.outcomes if o.buyers) >= 2, "the fixture must exercise more than one partition"
    return BuiltLedger(loaded.tables, start, as_of_end, paths, features_cfg, built)


@pytest.fixture(scope="session")
def tricky_built(tmp_path_factory, config) -> BuiltLedger:
    root = tmp_path_factory.mktemp("tricky")
    loaded = load_folder(write_ledger(root / "ledger", TRICKY_LEDGER), config)
    return build_into(root, loaded, config, daily(config.features), as_of_end=date(2024, 7, 31))


@pytest.fixture(scope="session")
def small_portfolio(tmp_path_factory, config):
    """A simulated portfolio of 40 buyers over 15 months, loaded."""
    root = tmp_path_factory.mktemp("small")
    sim = config.simulator.model_copy(update={"buyers": 40, "sellers": 4, "months": 15, "seed": 11})
    paths = write_portfolio(simulate_portfolio(sim), root / "sim", "parquet")
    return root, load_folder(paths.ledger_dir, config)


@pytest.fixture(scope="session")
def small_built(small_portfolio, config) -> BuiltLedger:
    root, loaded = small_portfolio
    return build_into(root, loaded, config, daily(config.features), partition_buyers=8)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server (Debian package; .ci/run installs it) on loopback, for this session."""
    from tradecredit.local_servers import start_redis

    with start_redis() as server:
        yield server.address
