"""The workspace folder: everything a run produces lives under one root."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

WORKSPACE_ENV = "TRADECREDIT_WORKSPACE"
DEFAULT_WORKSPACE = Path("workspace")


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def resolve(cls, root: Path | None) -> Workspace:
        """The given folder, else ``$TRADECREDIT_WORKSPACE``, else ``./workspace``."""
        chosen = root or Path(os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE)
        return cls(chosen.resolve())

    @property
    def simulated(self) -> Path:
        """Simulated portfolios written by ``demo`` (a ledger folder plus its truth)."""
        return self.root / "simulated"

    @property
    def ledger(self) -> Path:
        """Normalised tables, rejects and load summary written by ``load``."""
        return self.root / "ledger"

    @property
    def features(self) -> Path:
        """Feature snapshots written by ``features build``: one Parquet file per feature view."""
        return self.root / "features"

    @property
    def feature_repo(self) -> Path:
        """The Feast registry and the SQLite online store."""
        return self.root / "feature_repo"

    @property
    def training_sets(self) -> Path:
        """Training sets written by ``features training-set``."""
        return self.root / "training_sets"

    @property
    def mlflow(self) -> Path:
        """The MLflow tracking and registry database (SQLite) and its artifact store."""
        return self.root / "mlflow"

    @property
    def models(self) -> Path:
        """Per-model summaries, metrics and reports written by ``train``, ``evaluate`` and ``promote``."""
        return self.root / "models"

    @property
    def serving(self) -> Path:
        """The scoring service's decision log (``decisions.db``)."""
        return self.root / "serving"

    @property
    def decision_log(self) -> Path:
        return self.serving / "decisions.db"
