"""The Feast feature repo, defined in Python and applied programmatically.

Objects: the entity ``buyer``; one batch source and one feature view per catalogue view (the
Parquet files the build writes, with ``snapshot_ts`` as event time and ``known_at_ts`` as the
created, known-at time); one versioned feature service per model. The repo lives in
``<workspace>/feature_repo`` (registry and SQLite online store); nothing is scanned from disk,
so ``feast apply`` never imports our package.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.infra.offline_stores.duckdb import DuckDBOfflineStoreConfig
from feast.infra.online_stores.redis import RedisOnlineStoreConfig
from feast.infra.registry.sql import SqlRegistryConfig
from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
from feast.repo_config import RegistryConfig, RepoConfig
from feast.types import Float64, Int64, String

from tradecredit.backends_config import BackendsConfig
from tradecredit.features.config import FeaturesConfig
from tradecredit.features.build import KNOWN_AT_TS, SNAPSHOT_TS
from tradecredit.features.paths import FeaturePaths, FeatureStoreError
from tradecredit.features.catalog import (
    FEATURE_SERVICES,
    FEATURE_TYPES,
    FEATURES_BY_VIEW,
    POLARS_TYPES,
    VIEWS,
    features_of_model,
)

REDIS_URL_ENV = "TRADECREDIT_REDIS_URL"
_FEAST_TYPES = {"float": Float64, "int": Int64, "string": String}
# Feast's DuckDB store reads timestamps as microseconds; pandas' default nanoseconds fail its casts.
_TS_TYPE = pl.Datetime("us", "UTC")


def repo_config(paths: FeaturePaths, cfg: FeaturesConfig, backends: BackendsConfig | None = None) -> RepoConfig:
    """The store's settings: the embedded profile's file registry and SQLite online store in
    the workspace, or the servers ``backends`` names (a SQL registry, Redis)."""
    # Feast resolves relative paths against repo_path: keep every path absolute.
    paths = FeaturePaths(paths.offline_dir.resolve(), paths.repo_dir.resolve())
    if cfg.online_store == "redis":
        address = (backends.redis_address if backends else None) or os.environ.get(REDIS_URL_ENV)
        if not address:
            raise FeatureStoreError(
                f"configs/features.yaml selects the Redis online store: set backends.redis_address or {REDIS_URL_ENV} to host:port"
            )
        online: Any = RedisOnlineStoreConfig(connection_string=address)
    else:
        online = SqliteOnlineStoreConfig(path=str(paths.online_store_db))
    paths.repo_dir.mkdir(parents=True, exist_ok=True)
    if backends and backends.feast_registry:
        # Feast's SQL registry: every process and machine sees one registry, with row-level
        # updates instead of rewriting one protobuf file. pool_pre_ping survives a server restart.
        registry: RegistryConfig = SqlRegistryConfig(
            path=backends.feast_registry, cache_ttl_seconds=60, sqlalchemy_config_kwargs={"echo": False, "pool_pre_ping": True}
        )
    else:
        registry = RegistryConfig(path=str(paths.registry_db), cache_ttl_seconds=60)
    return RepoConfig(
        project=cfg.project,
        provider="local",
        registry=registry,
        # The DuckDB offline store returns every entity row asked for (the dask default drops
        # rows with no feature row in time) and is several times faster.
        offline_store=DuckDBOfflineStoreConfig(),
        online_store=online,
        repo_path=paths.repo_dir,
        entity_key_serialization_version=3,
    )


def open_store(paths: FeaturePaths, cfg: FeaturesConfig, backends: BackendsConfig | None = None) -> FeatureStore:
    """The Feast store. The process runs in UTC from here on: Feast's SQLite online store writes
    and reads event times through *local* time, so a store materialized in one time zone and
    read in another would shift every feature's age by the offset. Every path to Feast comes
    through here (commands, the service's workers, tests), so writer and reader always agree."""
    if os.environ.get("TZ") != "UTC":
        os.environ["TZ"] = "UTC"
        time.tzset()
    return FeatureStore(config=repo_config(paths, cfg, backends))


BUYER = Entity(name="buyer", join_keys=["buyer_id"], value_type=ValueType.STRING, description="a company that buys on credit")


def repo_objects(paths: FeaturePaths, cfg: FeaturesConfig) -> list[Any]:
    """The entity, one source and feature view per catalogue view, and the models' services."""
    views: dict[str, FeatureView] = {}
    ttl_days = cfg.ttl_days.model_dump()
    for view in VIEWS:
        source = FileSource(
            name=f"{view.name}_snapshots",
            path=str(paths.view_dataset(view.name)),
            timestamp_field=SNAPSHOT_TS,
            created_timestamp_column=KNOWN_AT_TS,
            description=f"snapshots built from {view.source}",
        )
        views[view.name] = FeatureView(
            name=view.name,
            entities=[BUYER],
            ttl=timedelta(days=ttl_days[view.name]),
            schema=[Field(name=f.name, dtype=_FEAST_TYPES[f.dtype], description=f.meaning) for f in FEATURES_BY_VIEW[view.name]],
            source=source,
            online=True,
            description=view.description,
            tags={"source": view.source},
        )
    services = [
        FeatureService(
            name=service,
            features=[views[v] for v in view_names],
            description=f"feature contract of the {model} model",
            tags={"model": model, "version": service.rsplit("_v", 1)[1]},
        )
        for model, (service, view_names) in FEATURE_SERVICES.items()
    ]
    return [BUYER, *views.values(), *services]


def apply_repo(paths: FeaturePaths, cfg: FeaturesConfig, backends: BackendsConfig | None = None) -> FeatureStore:
    """Register (or update) every repo object; fails if the feature build has not run."""
    missing = [v.name for v in VIEWS if not paths.view_built(v.name)]
    if missing:
        raise FeatureStoreError(f"no feature build in {paths.offline_dir} (missing {', '.join(missing)}): run 'tradecredit features build'")
    store = open_store(paths, cfg, backends)
    with _quiet():
        store.apply(repo_objects(paths, cfg))
    return store


def materialize(store: FeatureStore, as_of_end: date, cfg: FeaturesConfig) -> datetime:
    """Load each buyer's latest snapshot at or before ``as_of_end`` into the online store."""
    end = datetime.combine(as_of_end, datetime.min.time(), UTC) + timedelta(seconds=1)
    start = end - timedelta(days=max(cfg.ttl_days.model_dump().values()) + 1)
    with _quiet():
        store.materialize(start_date=start, end_date=end)
    return end


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Feast prints coloured progress to stdout (our CLI prints its own summary), and the ibis
    version it pins warns about a DuckDB method it still calls."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ibis\.")
        yield


# --------------------------------------------------------------------------- offline


def normalise_entities(entities: pl.DataFrame) -> pl.DataFrame:
    """``buyer_id, as_of_ts`` with ``as_of_ts`` in UTC: a date means its midnight UTC, a
    timestamp without a zone is UTC, one with an offset is converted. Bad rows are an error
    that names them; nothing is dropped."""
    missing = [c for c in ("buyer_id", "as_of_ts") if c not in entities.columns]
    if missing:
        raise FeatureStoreError(f"entity rows need the columns buyer_id and as_of_ts; missing {', '.join(missing)}")
    ts = entities["as_of_ts"]
    if ts.dtype == pl.Date:
        parsed = ts.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    elif isinstance(ts.dtype, pl.Datetime):
        parsed = ts.dt.replace_time_zone("UTC") if ts.dtype.time_zone is None else ts.dt.convert_time_zone("UTC")
        parsed = parsed.cast(_TS_TYPE)
    else:
        parsed = _parse_timestamps(ts.cast(pl.String))
    frame = entities.select(pl.col("buyer_id").cast(pl.String), as_of_ts=parsed)
    bad = frame.with_row_index("row").filter(pl.col("buyer_id").is_null() | (pl.col("buyer_id") == "") | pl.col("as_of_ts").is_null())
    if bad.height:
        rows = ", ".join(str(r + 1) for r in bad["row"].head(10).to_list())
        raise FeatureStoreError(
            f"{bad.height} entity row(s) without a buyer_id or a readable as_of_ts (ISO date or timestamp), data rows {rows}"
        )
    return frame


def _parse_timestamps(text: pl.Series) -> pl.Series:
    values = []
    for raw in text.to_list():
        try:
            stamp = datetime.fromisoformat(raw.strip().replace("Z", "+00:00")) if raw else None
        except ValueError:
            stamp = None
        if stamp is not None:
            stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
        values.append(stamp)
    return pl.Series("as_of_ts", values, dtype=_TS_TYPE)


def historical_features(store: FeatureStore, model: str, entities: pl.DataFrame) -> pl.DataFrame:
    """Point-in-time features of ``model``'s feature service for each ``buyer_id, as_of_ts``
    row, in the order given: the latest snapshot at or before the time, known by then, within
    the view's TTL (else nulls)."""
    service_name, _ = FEATURE_SERVICES[model]
    frame = normalise_entities(entities).with_row_index("entity_row")
    entity_df = frame.rename({"as_of_ts": "event_timestamp"}).to_pandas()
    with _quiet():
        job = store.get_historical_features(
            entity_df=entity_df,
            features=store.get_feature_service(service_name),
            # Known-at times are filtered, not just used to break ties (a late-known row never leaks).
            filter_by_created_timestamp=True,
        )
        result = pl.from_arrow(job.to_arrow())
    assert isinstance(result, pl.DataFrame)
    if result.height != frame.height:
        raise FeatureStoreError(f"Feast returned {result.height:,} rows for {frame.height:,} entity rows")
    names = [f.name for f in features_of_model(model)]
    return (
        result.sort("entity_row")
        .rename({"event_timestamp": "as_of_ts"})
        .select("buyer_id", pl.col("as_of_ts").cast(_TS_TYPE), *[_typed(n) for n in names])
    )


def _typed(name: str) -> pl.Expr:
    target = POLARS_TYPES[FEATURE_TYPES[name]]
    column = pl.col(name).cast(target)
    return column.fill_nan(None) if target == pl.Float64 else column


# --------------------------------------------------------------------------- online


@dataclass(frozen=True)
class OnlineFeatures:
    """Online features of some buyers, with each feature's snapshot time and age.

    Feast does not apply TTLs to online reads, so age is checked here: a feature whose
    snapshot is older than ``max_age_days`` (or absent) is listed as stale.
    """

    buyer_ids: list[str]
    names: list[str]
    response: dict[str, list[Any]]  # Feast's columns: each feature, and "<feature>__ts" in epoch seconds
    read_at: datetime
    max_age_days: int

    def rows(self) -> list[dict[str, Any]]:
        """One dict per buyer, feature name to value: the serving path, no frame building."""
        columns = [self.response[n] for n in self.names]
        return [dict(zip(self.names, values, strict=True)) for values in zip(*columns, strict=True)]

    @property
    def values(self) -> pl.DataFrame:
        """``buyer_id``, then the model's features, typed as in the catalogue."""
        schema = {"buyer_id": pl.String, **{n: POLARS_TYPES[FEATURE_TYPES[n]] for n in self.names}}
        return pl.DataFrame({"buyer_id": self.buyer_ids, **{n: self.response[n] for n in self.names}}, schema=schema)

    @property
    def feature_ts(self) -> pl.DataFrame:
        """``buyer_id``, then each feature's snapshot time (null: never materialized)."""
        # Feast reports 0 (the epoch) for a buyer it has no row for.
        stamps = {n: [datetime.fromtimestamp(s, UTC) if s else None for s in self.response[f"{n}__ts"]] for n in self.names}
        return pl.DataFrame({"buyer_id": self.buyer_ids, **stamps}, schema={"buyer_id": pl.String, **dict.fromkeys(self.names, _TS_TYPE)})

    def age_days(self) -> pl.DataFrame:
        read_at = pl.lit(self.read_at).cast(_TS_TYPE)
        ts = self.feature_ts
        return ts.select("buyer_id", *[((read_at - pl.col(c)).dt.total_seconds() / 86400).alias(c) for c in self.names])

    def stale_features(self) -> dict[str, list[str]]:
        """Per buyer, the features that are missing, older than the limit, or dated after the
        read time (a snapshot from the reader's future holds facts its as-of time cannot know)."""
        now = self.read_at.timestamp()
        limit = now - self.max_age_days * 86400
        stamps = [self.response[f"{n}__ts"] for n in self.names]
        return {
            buyer: [n for n, ts in zip(self.names, row, strict=True) if not ts or ts < limit or ts > now]
            for buyer, row in zip(self.buyer_ids, zip(*stamps, strict=True), strict=True)
        }


class OnlineFeatureReader:
    """Reads one model's features from the online store; holds the feature service so each
    read is one Feast call (looking the service up in the registry costs more than the read)."""

    def __init__(self, store: FeatureStore, model: str, cfg: FeaturesConfig) -> None:
        self.store = store
        self.service = store.get_feature_service(FEATURE_SERVICES[model][0])
        self.names = [f.name for f in features_of_model(model)]
        self.max_age_days = cfg.max_online_age_days

    def read(self, buyer_ids: list[str], read_at: datetime | None = None) -> OnlineFeatures:
        response = self.store.get_online_features(features=self.service, entity_rows=[{"buyer_id": b} for b in buyer_ids])
        return OnlineFeatures(list(buyer_ids), self.names, scalar_columns(response.proto), read_at or datetime.now(UTC), self.max_age_days)


def scalar_columns(proto: Any) -> dict[str, list[Any]]:
    """Feast's ``to_dict(include_event_timestamps=True)`` for scalar features, in a third of its
    time (it dispatches on every value's type; the service reads 100 features per buyer). A test
    holds the two equal."""
    columns: dict[str, list[Any]] = {}
    for name, vector in zip(proto.metadata.feature_names.val, proto.results, strict=True):
        values = []
        for v in vector.values:
            kind = v.WhichOneof("val")
            values.append(None if kind is None else getattr(v, kind))
        columns[name] = values
        columns[name + "__ts"] = [ts.seconds for ts in vector.event_timestamps]
    return columns


def online_features(
    store: FeatureStore, model: str, buyer_ids: list[str], cfg: FeaturesConfig, read_at: datetime | None = None
) -> OnlineFeatures:
    """One-off read; a service keeps an :class:`OnlineFeatureReader` instead."""
    return OnlineFeatureReader(store, model, cfg).read(buyer_ids, read_at)
