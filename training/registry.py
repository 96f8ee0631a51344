"""MLflow: where runs, models and aliases live. SQLite in the workspace unless
``TRADECREDIT_MLFLOW_TRACKING_URI`` names a server (MLflow's deprecated file store is never used).

MLflow's own ``MLFLOW_TRACKING_URI`` is not read: ``mlflow.set_tracking_uri`` writes it into
the process environment, so it cannot tell a user's server from the last workspace used.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from tradecredit.config import PlatformConfig
from tradecredit.backends_config import BackendsConfig
from tradecredit.errors import StageError
from tradecredit.model_specs import MODELS, model_spec
from tradecredit.training.model import CreditModel
from tradecredit.workspace import Workspace

TRACKING_URI_ENV = "TRADECREDIT_MLFLOW_TRACKING_URI"
CHALLENGER, CHAMPION = "challenger", "champion"
MODEL_ARTIFACT = "credit_model"
# Loading the pyfunc needs these (and the tradecredit package itself, which defines the wrapper).
PIP_PACKAGES = ("lightgbm", "numpy", "pandas", "polars", "pyarrow", "scikit-learn", "mlflow")


class RegistryError(StageError):
    """No such model, version or alias; the message says which and what to run."""


def tracking_uri(ws: Workspace, backends: BackendsConfig | None = None) -> str:
    """``$TRADECREDIT_MLFLOW_TRACKING_URI``, else the profile's server, else the workspace's SQLite."""
    env = os.environ.get(TRACKING_URI_ENV) or (backends.mlflow_tracking_uri if backends else None)
    if env:
        return env
    ws.mlflow.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{ws.mlflow_db}"


def artifact_root(ws: Workspace) -> str:
    return ws.mlflow_artifacts.resolve().as_uri()


def connect(ws: Workspace, backends: BackendsConfig | None = None) -> MlflowClient:
    # MLflow narrates every step at INFO and draws download progress bars; commands print their own summary.
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow's own SQLAlchemy mappings use a loader SQLAlchemy 2 deprecates; nothing we can act on.
    warnings.filterwarnings("ignore", message="The ``noload`` loader strategy is deprecated")
    uri = tracking_uri(ws, backends)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    _create_tables(client)
    return client


def _create_tables(client: MlflowClient, attempts: int = 8) -> None:
    """Have MLflow create or check its tables now. Two commands that start at once on a new
    database (a scheduler training both models side by side) both find the tables missing and
    both create them; the loser's CREATE fails on a duplicate key, or it finds the schema half
    migrated. Retried, it finds the tables made (MLflow caches no store that failed to open)."""
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
            return
        except (sqlalchemy.exc.SQLAlchemyError, MlflowException):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))


def experiment_id(client: MlflowClient, name: str, ws: Workspace) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    # With a database backend the default artifact root is ./mlruns under whatever folder
    # the command ran in: pin it to the workspace (a server keeps its own artifact root).
    location = artifact_root(ws) if client.tracking_uri.startswith("sqlite:") else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException as error:
        # Several tuning workers start at once on one server: all but the first find it made.
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(name).experiment_id


class CreditPyfunc(mlflow.pyfunc.PythonModel):
    """The registry's portable wrapper: calibrated probability per input row."""

    def load_context(self, context: Any) -> None:
        self.model = CreditModel.load(Path(context.artifacts[MODEL_ARTIFACT]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return pd.DataFrame({"probability": self.model.predict_proba(model_input)})


def pyfunc_input(model: CreditModel, x: pd.DataFrame) -> pd.DataFrame:
    """The pyfunc's input schema: numbers as float64 and text as strings (not categories)."""
    out = x.copy()
    for column in model.categories:
        out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out


@dataclass(frozen=True)
class LoggedVersion:
    name: str
    version: str
    run_id: str


def log_model_version(model: CreditModel, example: pd.DataFrame, registered_model: str) -> LoggedVersion:
    """Inside an active run: log the pyfunc with signature and input example, register a new version."""
    example_input = pyfunc_input(model, example)
    signature = infer_signature(example_input, pd.DataFrame({"probability": model.predict_proba(example)}))
    with tempfile.TemporaryDirectory() as tmp:
        folder = model.save(Path(tmp) / MODEL_ARTIFACT)
        with warnings.catch_warnings():
            # MLflow warns that integer columns with missing values should be float: ours already are.
            warnings.simplefilter("ignore", UserWarning)
            info = mlflow.pyfunc.log_model(
                name="model",
                # Models from code: the wrapper is stored as source, never as a pickle.
                python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                artifacts={MODEL_ARTIFACT: str(folder)},
                signature=signature,
                input_example=example_input,
                pip_requirements=[f"{p}=={metadata.version(p)}" for p in PIP_PACKAGES],
                registered_model_name=registered_model,
            )
    run = mlflow.active_run()
    assert run is not None  # log_model above needs one
    return LoggedVersion(registered_model, str(info.registered_model_version), run.info.run_id)


def version_by(client: MlflowClient, registered_model: str, version: str | None, alias: str) -> ModelVersion:
    """A version by number, else the one the alias points to."""
    try:
        if version is not None:
            return client.get_model_version(registered_model, str(version))
        return client.get_model_version_by_alias(registered_model, alias)
    except MlflowException:
        if version is not None:
            raise RegistryError(f"model {registered_model} has no version {version}") from None
        raise RegistryError(f"model {registered_model} has no '{alias}' version") from None


def load_version(client: MlflowClient, registered_model: str, version: str) -> CreditModel:
    """The native model of a registered version (the booster, not the pyfunc)."""
    with tempfile.TemporaryDirectory() as tmp:
        # connect() set the tracking and registry URIs this resolves models:/ against.
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{registered_model}/{version}", dst_path=tmp)
        return CreditModel.load(Path(local) / "artifacts" / MODEL_ARTIFACT)


def run_metric(client: MlflowClient, run_id: str, name: str) -> float:
    """A metric a training run logged (``test_auc``, ``benchmark_auc``, ...)."""
    return float(client.get_run(run_id).data.metrics[name])


def run_tag(client: MlflowClient, run_id: str, name: str) -> str | None:
    return client.get_run(run_id).data.tags.get(name)


def make_champion(client: MlflowClient, challenger: ModelVersion, replaced: ModelVersion | None) -> None:
    """Point the ``champion`` alias at the challenger; the version it replaced is tagged
    ``superseded_by`` (aliases move, so the history lives in the tags)."""
    client.set_registered_model_alias(challenger.name, CHAMPION, challenger.version)
    if replaced is not None:
        client.set_model_version_tag(replaced.name, replaced.version, "superseded_by", challenger.version)


def run_dict(client: MlflowClient, run_id: str, artifact: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, artifact, tmp)
        return json.loads(Path(path).read_text(encoding="utf-8"))


def json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# -- lookups by model name ---------------------------------------------------------------------


def registered_name(cfg: PlatformConfig, model: str) -> str:
    """The registered model of a model name (``configs/training.yaml``); an unknown name is an error."""
    return cfg.training.model(model_spec(model).name).registered_model


def find_version(cfg: PlatformConfig, ws: Workspace, model: str, version: str | None, alias: str) -> tuple[MlflowClient, ModelVersion]:
    """(client, model version) of a version number or the alias's version; a RegistryError
    naming the command to run if there is none."""
    client = connect(ws, cfg.backends)
    try:
        return client, version_by(client, registered_name(cfg, model), version, alias)
    except RegistryError as exc:
        hint = "" if version else f": run 'tradecredit train {model}'" + (f" and 'tradecredit promote {model}'" if alias == CHAMPION else "")
        raise RegistryError(f"{exc}{hint}") from None


@dataclass(frozen=True)
class RegisteredModel:
    """A registered version with its native model, and the client that found it."""

    client: MlflowClient
    version: ModelVersion
    model: CreditModel

    @property
    def run_id(self) -> str:
        return str(self.version.run_id)

    def run_metric(self, name: str) -> float:
        return run_metric(self.client, self.run_id, name)


def load_registered(cfg: PlatformConfig, ws: Workspace, model: str, version: str | None, alias: str) -> RegisteredModel:
    """A version number or the alias's version, loaded as a native model."""
    client, found = find_version(cfg, ws, model, version, alias)
    return RegisteredModel(client, found, load_version(client, found.name, found.version))


def champion_or_none(cfg: PlatformConfig, ws: Workspace, model: str) -> tuple[MlflowClient, ModelVersion] | None:
    """(client, champion version) of a model, or None when it has no champion."""
    client = connect(ws, cfg.backends)
    try:
        return client, version_by(client, registered_name(cfg, model), None, CHAMPION)
    except RegistryError:
        return None


def champion_versions(client: MlflowClient, cfg: PlatformConfig) -> dict[str, tuple[str, str]]:
    """Model name -> (registered model, champion version) for every model; a missing champion
    is a RegistryError that says which command makes one."""
    found = {}
    for name in MODELS:
        registered = registered_name(cfg, name)
        try:
            found[name] = (registered, str(version_by(client, registered, None, CHAMPION).version))
        except RegistryError:
            raise RegistryError(f"no champion version of {registered}: run `tradecredit train {name}` and `tradecredit promote {name}`") from None
    return found


# A Bento built by `tradecredit package` names the versions it was built for in this file; the
# service then loads exactly those, whatever the champion alias points to later.
PINNED_MODELS_ENV = "TRADECREDIT_PINNED_MODELS"


def pinned_versions(cfg: PlatformConfig) -> dict[str, tuple[str, str]] | None:
    """Model name -> (registered model, version) from ``$TRADECREDIT_PINNED_MODELS``, if set."""
    path = os.environ.get(PINNED_MODELS_ENV)
    if not path:
        return None
    try:
        pinned = json.loads(Path(path).read_text(encoding="utf-8"))
        found = {name: (str(pinned[name]["registered_model"]), str(pinned[name]["version"])) for name in MODELS}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RegistryError(f"{PINNED_MODELS_ENV}={path}: not a pinned-models file of both models ({exc})") from None
    for name, (registered, _) in found.items():
        if registered != registered_name(cfg, name):
            raise RegistryError(f"{path} pins {registered} for the {name} model, but the config names {registered_name(cfg, name)}")
    return found
