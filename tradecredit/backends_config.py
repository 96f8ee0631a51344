"""Where the platform keeps its state and where training runs (``configs/backends.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tradecredit.config_base import PositiveInt, StrictModel


class DaskConfig(StrictModel):
    scheduler: str | None = Field(description="address of a running Dask scheduler (tcp://host:8786); null: a LocalCluster on this machine")
    workers: PositiveInt = Field(description="LocalCluster worker processes (ignored with a scheduler)")
    threads_per_worker: PositiveInt


class TuningStorageConfig(StrictModel):
    url: str | None = Field(description="SQLAlchemy URL of the Optuna storage shared by tuning workers; null: each tuning keeps its study in memory")
    workers: PositiveInt = Field(description="tuning processes `train` runs on one shared study (more than 1 needs a url)")
    heartbeat_seconds: PositiveInt = Field(description="a running trial proves it is alive this often")
    grace_seconds: PositiveInt = Field(description="a running trial silent this long is failed (its worker died) and retried")

    @model_validator(mode="after")
    def _check(self) -> TuningStorageConfig:
        if self.workers > 1 and not self.url:
            raise ValueError("tuning.workers above 1 needs a shared tuning.url (PostgreSQL): in-memory studies are per process")
        if self.grace_seconds <= self.heartbeat_seconds:
            raise ValueError("tuning.grace_seconds must be longer than heartbeat_seconds")
        return self


class BackendsConfig(StrictModel):
    """Where the platform keeps its state and where training runs. The shipped file is the
    embedded profile (SQLite and files in the workspace); configs/profiles/production.yaml
    points each at a server."""

    mlflow_tracking_uri: str | None = Field(description="MLflow tracking and registry (http://host:port of an `mlflow server`); null: WORKSPACE/mlflow/mlflow.db")
    feast_registry: str | None = Field(description="SQLAlchemy URL of Feast's SQL registry; null: WORKSPACE/feature_repo/registry.db")
    redis_address: str | None = Field(description="host:port of the Redis online store (features.online_store: redis); null: $TRADECREDIT_REDIS_URL")
    register_url: str | None = Field(description="SQLAlchemy URL of the limit register (postgresql+psycopg://...); null: WORKSPACE/credit/register.db")
    decision_log_url: str | None = Field(description="SQLAlchemy URL of the decision log (every answer and reviewer action); null: WORKSPACE/serving/decisions.db")
    users_url: str | None = Field(description="SQLAlchemy URL of the console users store (users, roles, sessions, API keys); null: WORKSPACE/console/users.db")
    tuning: TuningStorageConfig
    training_engine: Literal["local", "dask"] = Field(description="local: LightGBM in the training process; dask: LightGBM's Dask estimator")
    feature_build_engine: Literal["local", "dask"] = Field(
        description="local: the feature build's partitions one after another in the command; dask: mapped over the Dask cluster"
    )
    dask: DaskConfig
