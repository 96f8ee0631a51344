"""The artefact catalogue: the only code that knows where a file lives in the workspace and in
which format. Stages ask it for paths, readers and writers; none builds a path of its own.

Everything a run produces lives under one root folder (``--workspace``, else
``$TRADECREDIT_WORKSPACE``, else ``./workspace``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from tradecredit.errors import MissingArtefact

if TYPE_CHECKING:
    from tradecredit.features.paths import FeaturePaths
    from tradecredit.ledger import NormalisedLedger

WORKSPACE_ENV = "TRADECREDIT_WORKSPACE"
DEFAULT_WORKSPACE = Path("workspace")


def write_json(path: Path, document: Any) -> Path:
    """An indented JSON document (numpy scalars and dates as plain values), folders made as needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=_plain) + "\n", encoding="utf-8")
    return path


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _plain(value: Any) -> Any:
    """numpy scalars and dates as JSON values; anything else is an error, never a silent string."""
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a JSON value")


@dataclass(frozen=True)
class MonitoringRunFiles:
    """One monitoring run's folder, ``WORKSPACE/monitoring/runs/DATE/``."""

    folder: Path
    SCORES = "scores.parquet"  # buyer_id, as_of_ts, pd_12m, grade, tier, model_version
    LATE_SCORES = "late_scores.parquet"  # invoice_id, buyer_id, issued_on, run_as_of, p_late, model_version

    @property
    def scores(self) -> Path:
        return self.folder / self.SCORES

    @property
    def late_scores(self) -> Path:
        return self.folder / self.LATE_SCORES

    @property
    def drift(self) -> Path:
        return self.folder / "drift.json"

    @property
    def summary(self) -> Path:
        return self.folder / "summary.json"

    @property
    def positions(self) -> Path:
        return self.folder / "positions.parquet"

    @property
    def report(self) -> Path:
        return self.folder / "report.html"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def resolve(cls, root: Path | None) -> Workspace:
        """The given folder, else ``$TRADECREDIT_WORKSPACE``, else ``./workspace``."""
        chosen = root or Path(os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE)
        return cls(chosen.resolve())

    # -- the simulated portfolio (demo) ---------------------------------------------------------
    @property
    def simulated(self) -> Path:
        """Simulated portfolios written by ``demo`` (a ledger folder plus its truth)."""
        return self.root / "simulated"

    @property
    def simulated_truth(self) -> Path:
        """The demo's simulator truth: never loaded, read only for oracle metrics."""
        return self.simulated / "truth"

    # -- the loaded ledger ------------------------------------------------------------------------
    @property
    def ledger(self) -> Path:
        """Normalised tables, ``rejects.csv`` and ``load_summary.json`` written by ``load``."""
        return self.root / "ledger"

    def ledger_table_file(self, table: str) -> Path:
        return self.ledger / f"{table}.parquet"

    def read_ledger(self) -> NormalisedLedger:
        """The loaded ledger; a :class:`MissingArtefact` naming ``load`` if there is none."""
        from tradecredit.ledger import LedgerError, read_normalised_ledger

        try:
            return read_normalised_ledger(self.ledger)
        except LedgerError as exc:
            raise MissingArtefact(str(exc)) from None

    def ledger_span(self) -> tuple[date, date]:
        """The loaded ledger's first and last dated fact, without reading its tables."""
        from tradecredit.ledger import LedgerError, read_ledger_span

        try:
            return read_ledger_span(self.ledger)
        except LedgerError as exc:
            raise MissingArtefact(str(exc)) from None

    def scan_ledger(self) -> dict[str, pl.LazyFrame]:
        """The loaded ledger's tables as lazy scans (the feature build reads them a partition at a time)."""
        from tradecredit.ledger import LedgerError, scan_normalised_ledger

        try:
            return scan_normalised_ledger(self.ledger)
        except LedgerError as exc:
            raise MissingArtefact(str(exc)) from None

    def read_ledger_table(self, table: str, columns: list[str]) -> pl.DataFrame:
        from tradecredit.ledger import LedgerError, read_normalised_table

        try:
            return read_normalised_table(self.ledger, table, columns)
        except LedgerError as exc:
            raise MissingArtefact(str(exc)) from None

    # -- features -----------------------------------------------------------------------------------
    @property
    def features(self) -> Path:
        """Feature snapshots written by ``features build``: one folder per feature view, one Parquet file per buyer partition."""
        return self.root / "features"

    @property
    def build_summary(self) -> Path:
        return self.features / "build_summary.json"

    def feature_view_dataset(self, view: str) -> Path:
        """A view's snapshots, every partition file (a glob that Polars and DuckDB read as one table)."""
        return self.feature_paths().view_dataset(view)

    def built_as_of(self) -> date:
        """The last snapshot date of the feature build (labels are complete up to it)."""
        if not self.build_summary.exists():
            raise MissingArtefact(f"no feature build in {self.features}: run 'tradecredit features build'")
        return date.fromisoformat(read_json(self.build_summary)["as_of_end"])

    @property
    def feature_repo(self) -> Path:
        """The Feast registry and the SQLite online store."""
        return self.root / "feature_repo"

    def feature_paths(self) -> FeaturePaths:
        """The feature build's files and the Feast repo (its registry and online store files)."""
        from tradecredit.features.paths import FeaturePaths

        return FeaturePaths(offline_dir=self.features, repo_dir=self.feature_repo)

    # -- training sets ------------------------------------------------------------------------------
    @property
    def training_sets(self) -> Path:
        """Training sets written by ``features training-set``."""
        return self.root / "training_sets"

    def training_set_file(self, model: str) -> Path:
        return self.training_sets / f"{model}.parquet"

    def training_set_summary(self, model: str) -> Path:
        return self.training_sets / f"{model}_summary.json"

    def write_training_set(self, model: str, frame: pl.DataFrame, summary: dict[str, Any]) -> Path:
        self.training_sets.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(self.training_set_file(model))
        write_json(self.training_set_summary(model), summary)
        return self.training_set_file(model)

    def read_training_set(self, model: str) -> tuple[pl.DataFrame, date]:
        """A model's training set and the date its labels are complete to."""
        path, summary = self.training_set_file(model), self.training_set_summary(model)
        if not path.exists() or not summary.exists():
            raise MissingArtefact(f"no {model} training set in {self.training_sets}: run 'tradecredit features training-set {model}'")
        data_end = read_json(summary).get("data_end")
        if data_end is None:
            raise MissingArtefact(f"{summary.name} predates this version: run 'tradecredit features training-set {model}' again")
        return pl.read_parquet(path), date.fromisoformat(data_end)

    # -- models -------------------------------------------------------------------------------------
    @property
    def mlflow(self) -> Path:
        """The MLflow tracking and registry database (SQLite) and its artifact store."""
        return self.root / "mlflow"

    @property
    def mlflow_db(self) -> Path:
        return self.mlflow / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.mlflow / "artifacts"

    @property
    def models(self) -> Path:
        """Per-model summaries, metrics and reports written by ``train``, ``evaluate`` and ``promote``."""
        return self.root / "models"

    def model_dir(self, model: str) -> Path:
        return self.models / model

    def train_summary(self, model: str) -> Path:
        return self.model_dir(model) / "train_summary.json"

    def train_metrics(self, model: str) -> Path:
        """The headline metrics DVC tracks (``dvc metrics show``)."""
        return self.model_dir(model) / "metrics.json"

    def model_card(self, model: str) -> Path:
        return self.model_dir(model) / "model_card.md"

    def training_report_dir(self, model: str) -> Path:
        return self.model_dir(model) / "report"

    def evaluation_dir(self, model: str) -> Path:
        return self.model_dir(model) / "evaluation"

    def evaluation_metrics(self, model: str) -> Path:
        """The headline metrics of ``evaluate`` (DVC tracks them)."""
        return self.evaluation_dir(model) / "metrics.json"

    def evaluation_all_metrics(self, model: str) -> Path:
        return self.evaluation_dir(model) / "all_metrics.json"

    def promotion(self, model: str) -> Path:
        return self.model_dir(model) / "promotion.json"

    def tuning_worker_log(self, model: str, index: int) -> Path:
        return self.model_dir(model) / f"tuning-worker-{index}.log"

    # -- monitoring ---------------------------------------------------------------------------------
    @property
    def monitoring(self) -> Path:
        return self.root / "monitoring"

    @property
    def monitoring_runs(self) -> Path:
        return self.monitoring / "runs"

    def monitoring_run(self, as_of: date) -> MonitoringRunFiles:
        """The files of the monitoring run dated ``as_of``."""
        return MonitoringRunFiles(self.monitoring_runs / as_of.isoformat())

    @property
    def alerts_db(self) -> Path:
        """Early-warning alerts across runs (SQLite), read by the console."""
        return self.monitoring / "alerts.db"

    @property
    def backtest_report(self) -> Path:
        return self.monitoring / "backtest.json"

    def run_score_files(self) -> list[Path]:
        """Every monitoring run's ``scores.parquet``, oldest first."""
        return sorted(self.monitoring_runs.glob(f"*/{MonitoringRunFiles.SCORES}"))

    def score_history(self) -> pl.DataFrame:
        """Every monitoring run's scores, oldest first (each row carries its model version)."""
        files = self.run_score_files()
        if not files:
            raise MissingArtefact(f"no monitoring runs in {self.monitoring_runs}: run `tradecredit monitor --as-of DATE`")
        return pl.concat([pl.read_parquet(f) for f in files]).sort("as_of_ts", "buyer_id")

    def previous_run_scores(self, as_of: date) -> pl.DataFrame | None:
        """The scores of the latest monitoring run dated before ``as_of`` (None if there is none)."""
        earlier = [f for f in self.run_score_files() if f.parent.name < as_of.isoformat()]
        return pl.read_parquet(earlier[-1]) if earlier else None

    def late_score_history(self, upto: date) -> pl.DataFrame | None:
        """Every run's late-payment scores up to ``upto`` (invoice_id, run_as_of, p_late, model_version)."""
        files = [f for f in sorted(self.monitoring_runs.glob(f"*/{MonitoringRunFiles.LATE_SCORES}")) if f.parent.name <= upto.isoformat()]
        return pl.concat([pl.read_parquet(f) for f in files]) if files else None

    # -- serving and the console ---------------------------------------------------------------------
    @property
    def serving(self) -> Path:
        """The scoring service's decision log and server log."""
        return self.root / "serving"

    @property
    def decision_log(self) -> Path:
        return self.serving / "decisions.db"

    @property
    def portfolio_table_file(self) -> Path:
        """The console's portfolio table, built by the first service worker and read by the others."""
        return self.serving / "portfolio_table.parquet"

    @property
    def portfolio_table_meta(self) -> Path:
        """What the shared portfolio table was built from (models, clock, stores) and when."""
        return self.serving / "portfolio_table.json"

    @property
    def portfolio_table_lock(self) -> Path:
        return self.serving / "portfolio_table.lock"

    @property
    def server_log(self) -> Path:
        """What a service started by ``running_server`` (the demo, the tests) printed."""
        return self.serving / "server.log"

    @property
    def credit(self) -> Path:
        return self.root / "credit"

    @property
    def register_db(self) -> Path:
        """The limit register (SQLite) when ``backends.register_url`` names no server."""
        return self.credit / "register.db"

    @property
    def insurance(self) -> Path:
        return self.root / "insurance"

    def policy_quote(self, seller_id: str) -> Path:
        """A seller's latest policy quote (``tradecredit insurance quote``); the service prices
        that seller's orders at its rate."""
        from urllib.parse import quote

        return self.insurance / "quotes" / f"{quote(seller_id, safe='')}.json"

    def policy_quotes(self) -> list[Path]:
        return sorted((self.insurance / "quotes").glob("*.json"))

    @property
    def console(self) -> Path:
        return self.root / "console"

    @property
    def users_db(self) -> Path:
        """The console's reviewers and sessions (SQLite; Argon2id password hashes)."""
        return self.console / "users.db"

    @property
    def demo_login(self) -> Path:
        """The demo reviewer's password, readable by its owner only."""
        return self.console / "demo-login.txt"

    @property
    def bento_build(self) -> Path:
        """The build context ``package`` assembles for ``bentoml build``."""
        return self.root / "bento" / "build"

