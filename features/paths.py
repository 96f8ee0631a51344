"""Where the feature build's files and the Feast repo live (importable without Feast)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tradecredit.errors import StageError


class FeatureStoreError(StageError):
    """The feature store cannot do what was asked: missing build, bad entity rows, no server."""


@dataclass(frozen=True)
class FeaturePaths:
    offline_dir: Path  # <workspace>/features: one folder per view, one Parquet file per buyer partition
    repo_dir: Path  # <workspace>/feature_repo: registry and online store

    def view_dir(self, view: str) -> Path:
        return self.offline_dir / view

    def view_dataset(self, view: str) -> Path:
        """A view's snapshots as one dataset: the glob of its partition files, which Feast's
        file source, DuckDB's ``read_parquet`` and Polars' ``scan_parquet`` read as one table."""
        return self.view_dir(view) / "*.parquet"

    def partition_file(self, view: str, partition: int) -> Path:
        return self.view_dir(view) / f"part-{partition:05d}.parquet"

    def view_built(self, view: str) -> bool:
        return self.view_dir(view).is_dir() and any(self.view_dir(view).glob("*.parquet"))

    @property
    def market_daily_dir(self) -> Path:
        """Each partition's settled totals per industry and day: the market view's input."""
        return self.offline_dir / "market_daily"

    def market_daily_file(self, partition: int) -> Path:
        return self.market_daily_dir / f"part-{partition:05d}.parquet"

    @property
    def partitions_manifest(self) -> Path:
        """Each partition's ledger fingerprint and counts: what an incremental build compares."""
        return self.offline_dir / "partitions.json"

    @property
    def ledger_split_dir(self) -> Path:
        """The ledger split by partition for the build (removed when the build ends)."""
        return self.offline_dir / "ledger_split"

    @property
    def spill_dir(self) -> Path:
        """DuckDB's spill directory when the config names none."""
        return self.offline_dir / "spill"

    @property
    def registry_db(self) -> Path:
        """Feast's file registry (the embedded profile; the production one keeps it in PostgreSQL)."""
        return self.repo_dir / "registry.db"

    @property
    def online_store_db(self) -> Path:
        """The SQLite online store (the embedded profile; the production one uses Redis)."""
        return self.repo_dir / "online_store.db"
