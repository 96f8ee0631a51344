"""Where the feature build's files and the Feast repo live (importable without Feast)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tradecredit.errors import StageError
from tradecredit.features.build import FeatureTables


class FeatureStoreError(StageError):
    """The feature store cannot do what was asked: missing build, bad entity rows, no server."""


@dataclass(frozen=True)
class FeaturePaths:
    offline_dir: Path  # <workspace>/features: one Parquet file per view
    repo_dir: Path  # <workspace>/feature_repo: registry and online store

    def view_file(self, view: str) -> Path:
        return self.offline_dir / f"{view}.parquet"

    @property
    def registry_db(self) -> Path:
        """Feast's file registry (the embedded profile; the production one keeps it in PostgreSQL)."""
        return self.repo_dir / "registry.db"

    @property
    def online_store_db(self) -> Path:
        """The SQLite online store (the embedded profile; the production one uses Redis)."""
        return self.repo_dir / "online_store.db"


def write_feature_tables(tables: FeatureTables, paths: FeaturePaths) -> None:
    """Write each view's snapshot rows as the Parquet file its Feast source reads."""
    paths.offline_dir.mkdir(parents=True, exist_ok=True)
    for view, frame in tables.views.items():
        frame.write_parquet(paths.view_file(view))
