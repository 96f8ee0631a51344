"""The Feast store: online/offline parity (SQLite and a real Redis), staleness, training sets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from tests.conftest import REPO
from tests.integration.features.conftest import build_into
from tests.oracles.features_oracle import mismatches
from tradecredit.config import load_config
from tradecredit.features.config import SnapshotConfig
from tradecredit.features.build import calendar_dates
from tradecredit.features.catalog import FEATURE_SERVICES, ORDER_FEATURES, VIEWS, features_of_model
from tradecredit.features.paths import FeaturePaths
from tradecredit.features.labels import default_spells, label_default_12m, label_late
from tradecredit.features.store import (
    REDIS_URL_ENV,
    OnlineFeatureReader,
    SqliteOnlineRows,
    apply_repo,
    historical_features,
    materialize,
    online_features,
    scalar_columns,
)
from tradecredit.features.training_sets import default_training_set, late_training_set


@pytest.fixture(scope="module")
def monthly_built(small_portfolio, config, tmp_path_factory):
    """The shipped config's grid: monthly calendar plus the day before each invoice."""
    _, loaded = small_portfolio
    return build_into(tmp_path_factory.mktemp("monthly"), loaded, config, config.features, partition_buyers=8)


def _parity(built, features_cfg, model, backends=None):
    store = apply_repo(built.paths, features_cfg, backends)
    materialize(store, built.data_end, features_cfg)
    buyers = built.tables["buyers"]["buyer_id"].to_list()
    online = online_features(store, model, buyers, features_cfg, read_at=datetime.combine(built.data_end, datetime.min.time(), UTC))
    offline = historical_features(store, model, pl.DataFrame({"buyer_id": buyers, "as_of_ts": [built.data_end] * len(buyers)}))
    names = [f.name for f in features_of_model(model)]
    assert online.values.columns == ["buyer_id", *names] and offline.columns == ["buyer_id", "as_of_ts", *names]
    problems = []
    for on, off in zip(online.values.iter_rows(named=True), offline.iter_rows(named=True), strict=True):
        assert on["buyer_id"] == off["buyer_id"]
        problems += [f"{on['buyer_id']}: {m}" for m in mismatches(off, on, names)]
    assert problems == []
    # Non-trivial: most buyers have payment history online.
    assert online.values["invoices_issued_365d"].drop_nulls().sum() > 100
    return store, online


@pytest.mark.parametrize("model", list(FEATURE_SERVICES))
def test_online_equals_offline_on_sqlite(monthly_built, config, model):
    _parity(monthly_built, config.features, model)


def test_the_lean_response_reader_equals_feasts_to_dict(monthly_built, config):
    store, _ = _parity(monthly_built, config.features, "default")
    buyers = [*monthly_built.tables["buyers"]["buyer_id"].to_list()[:20], "NOT_A_BUYER"]
    response = store.get_online_features(features=store.get_feature_service(FEATURE_SERVICES["default"][0]), entity_rows=[{"buyer_id": b} for b in buyers])
    assert scalar_columns(response.proto) == response.to_dict(include_event_timestamps=True)


@pytest.mark.parametrize("model", list(FEATURE_SERVICES))
def test_the_direct_sqlite_read_equals_feasts_get_online_features(monthly_built, config, model):
    store, _ = _parity(monthly_built, config.features, model)
    service = store.get_feature_service(FEATURE_SERVICES[model][0])
    known = monthly_built.tables["buyers"]["buyer_id"].to_list()
    # Unknown buyers, a repeated one, and more buyers than one query takes.
    buyers = ["NOT_A_BUYER", *known, known[0], *[f"GHOST{i}" for i in range(SqliteOnlineRows._CHUNK)]]
    expected = store.get_online_features(features=service, entity_rows=[{"buyer_id": b} for b in buyers]).to_dict(include_event_timestamps=True)
    expected.pop("buyer_id"), expected.pop("buyer_id__ts")  # the entity key, not a feature
    rows = SqliteOnlineRows.of(store, service)
    assert rows is not None and rows.columns(buyers) == expected
    assert rows.columns(buyers) == expected, "again, with every value remembered from the first read"
    rows._values.clear()
    rows._VALUES_KEPT = 7  # every few values a clearing, the reads still exact
    assert rows.columns(buyers) == expected and len(rows._values) <= 7, "the remembered values are bounded"
    assert max(sum(v is not None for v in column) for name, column in expected.items() if not name.endswith("__ts")) >= len(known) // 2, "non-trivial"
    assert OnlineFeatureReader(store, model, config.features).sqlite is not None, "the service's reader takes the direct path"


def test_materialize_by_partition_writes_what_feasts_materialize_writes(monthly_built, config, tmp_path):
    """Ours reads one partition file at a time; Feast's reads each view whole. Both stores hold
    the same rows afterwards, for every buyer and both services."""
    ours = apply_repo(FeaturePaths(monthly_built.paths.offline_dir, tmp_path / "ours"), config.features)
    written = materialize(ours, monthly_built.data_end, config.features)
    files = sum(len(list(monthly_built.paths.view_dir(v.name).glob("part-*.parquet"))) for v in VIEWS)
    assert written.partitions == files > len(VIEWS), "several partitions per view"
    assert written.workers == 1, "SQLite takes one writer"
    feasts = apply_repo(FeaturePaths(monthly_built.paths.offline_dir, tmp_path / "feasts"), config.features)
    feasts.materialize(start_date=written.end - timedelta(days=max(config.features.ttl_days.model_dump().values()) + 1), end_date=written.end)
    buyers = [*monthly_built.tables["buyers"]["buyer_id"].to_list(), "NOT_A_BUYER"]
    for service, _ in FEATURE_SERVICES.values():
        ours_rows = SqliteOnlineRows.of(ours, ours.get_feature_service(service))
        feasts_rows = SqliteOnlineRows.of(feasts, feasts.get_feature_service(service))
        assert ours_rows is not None and feasts_rows is not None
        assert ours_rows.columns(buyers) == feasts_rows.columns(buyers)
    assert written.rows == _online_rows(tmp_path / "ours"), "each buyer's row in each view written once"
    # Feast's record of the window, as its own materialize keeps it.
    assert all(v.materialization_intervals for v in ours.list_feature_views())


def _online_rows(repo) -> int:
    import sqlite3

    with sqlite3.connect(repo / "online_store.db") as con:
        tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return sum(con.execute(f'SELECT COUNT(DISTINCT entity_key) FROM "{t}"').fetchone()[0] for t in tables)


def _redis(address: str):
    import redis

    host, port = address.split(":")
    return redis.Redis(host=host, port=int(port))


def _project_keys(client, project: str) -> int:
    """Feast's Redis keys of one project: each is an entity key followed by the project's name."""
    return sum(1 for _ in client.scan_iter(match=b"*" + project.encode(), count=1000))


def _drop_project_keys(client, project: str) -> None:
    for key in list(client.scan_iter(match=b"*" + project.encode(), count=1000)):
        client.delete(key)
    assert _project_keys(client, project) == 0


def _buyers(built) -> int:
    return built.tables["buyers"]["buyer_id"].n_unique()


def test_online_equals_offline_on_a_real_redis(monthly_built, config, redis_url, monkeypatch, tmp_path):
    monkeypatch.setenv(REDIS_URL_ENV, redis_url)
    redis_cfg = config.features.model_copy(update={"online_store": "redis", "project": "tc_redis_test"})
    paths = type(monthly_built.paths)(monthly_built.paths.offline_dir, tmp_path / "repo")
    built = type(monthly_built)(monthly_built.tables, monthly_built.data_start, monthly_built.data_end, paths, redis_cfg)
    client = _redis(redis_url)
    _drop_project_keys(client, redis_cfg.project)
    _parity(built, redis_cfg, "default")
    # Counted by this test's project only: the server is shared by the session.
    assert _project_keys(client, redis_cfg.project) == _buyers(monthly_built), "one Redis hash per buyer, written by this test"


def test_a_materialize_at_an_earlier_date_leaves_redis_as_it_leaves_sqlite(monthly_built, config, redis_url, monkeypatch, tmp_path):
    """A replay materializes an earlier as-of after a later one: both stores then hold what the
    earlier materialize wrote (Feast's SQLite writer overwrites; Redis is written without
    Feast's check that keeps a newer event time), so the service reads the same on either."""
    monkeypatch.setenv(REDIS_URL_ENV, redis_url)
    earlier = monthly_built.data_end - timedelta(days=120)
    redis_cfg = config.features.model_copy(update={"online_store": "redis", "project": "tc_redis_replay"})
    _drop_project_keys(_redis(redis_url), redis_cfg.project)
    buyers = monthly_built.tables["buyers"]["buyer_id"].to_list()
    read_at = datetime.combine(earlier, datetime.min.time(), UTC)
    answers = []
    for cfg, repo in ((config.features, "sqlite"), (redis_cfg, "redis")):
        store = apply_repo(FeaturePaths(monthly_built.paths.offline_dir, tmp_path / repo), cfg)
        materialize(store, monthly_built.data_end, cfg)
        latest = online_features(store, "default", buyers, cfg, read_at=read_at)  # the Redis one is compared below
        materialize(store, earlier, cfg)
        answers.append(online_features(store, "default", buyers, cfg, read_at=read_at))
    on_sqlite, on_redis = answers
    assert on_redis.values.equals(on_sqlite.values) and on_redis.feature_ts.equals(on_sqlite.feature_ts)
    assert not on_redis.values.equals(latest.values), "the earlier materialize changed what is served"


def test_online_equals_offline_in_the_production_profile(monthly_built, production_servers, monkeypatch, tmp_path):
    """The production profile's own file: Feast's SQL registry on a real PostgreSQL and the
    online store on a real Redis; online answers equal point-in-time offline ones."""
    for name, value in production_servers.environment().items():
        monkeypatch.setenv(name, value)
    production = load_config(REPO / "configs", "production")
    assert production.features.online_store == "redis" and production.backends.feast_registry.startswith("postgresql+psycopg://")
    features_cfg = production.features.model_copy(update={"project": "tc_parity_production"})
    paths = FeaturePaths(monthly_built.paths.offline_dir, tmp_path / "feature_repo")
    built = type(monthly_built)(monthly_built.tables, monthly_built.data_start, monthly_built.data_end, paths, features_cfg)
    client = _redis(production.backends.redis_address)
    _drop_project_keys(client, features_cfg.project)
    for model in FEATURE_SERVICES:
        store, _ = _parity(built, features_cfg, model, production.backends)
    assert type(store.registry).__name__ == "SqlRegistry" and not (tmp_path / "feature_repo" / "registry.db").exists()
    assert store.list_feature_views() and {v.name for v in store.list_feature_views()} == {v.name for v in VIEWS}
    # Counted by this test's project only: the production servers are shared by the session.
    assert _project_keys(client, features_cfg.project) == _buyers(monthly_built), "one Redis hash per buyer, written by this test"


def test_stale_online_features_are_flagged(monthly_built, config):
    store, fresh = _parity(monthly_built, config.features, "default")
    assert not any(fresh.stale_features()[b] for b in ("B000001", "B000002"))
    late_read = datetime.combine(monthly_built.data_end, datetime.min.time(), UTC) + timedelta(days=config.features.max_online_age_days + 1)
    old = online_features(store, "default", ["B000001", "NOT_A_BUYER"], config.features, read_at=late_read)
    stale = old.stale_features()
    names = [f.name for f in features_of_model("default")]
    assert stale["B000001"] == names, "every feature is older than the limit"
    assert stale["NOT_A_BUYER"] == names, "a buyer with no online row is stale, not fresh"
    ages = old.age_days().row(0, named=True)
    assert ages["open_balance"] == pytest.approx(config.features.max_online_age_days + 1)
    early_read = datetime.combine(monthly_built.data_end, datetime.min.time(), UTC) - timedelta(days=1)
    future = online_features(store, "default", ["B000001"], config.features, read_at=early_read)
    assert future.stale_features()["B000001"] == names, "a snapshot dated after the read time is not fresh"


def test_default_training_set_rows_labels_and_features(monthly_built, config):
    store = apply_repo(monthly_built.paths, config.features)
    ts = default_training_set(store, monthly_built.tables, config.labels, monthly_built.data_start, monthly_built.data_end)
    frame = ts.frame
    # Labels: recomputed here from the contract functions, censored and in-default rows excluded.
    months = sorted({d.date() for d in frame["as_of_ts"].to_list()})
    assert all(m.day == 1 for m in months)
    defaults = default_spells(monthly_built.tables, config.labels.default, monthly_built.data_end).spells
    entities = frame.select("buyer_id", as_of_date=pl.col("as_of_ts").dt.date())
    expected = label_default_12m(entities, defaults, monthly_built.data_end)
    assert not expected["censored"].any() and not expected["in_default"].any()
    assert frame["default_12m"].to_list() == expected["default_12m"].cast(pl.Int8).to_list()
    assert ts.candidates == frame.height + sum(ts.excluded.values())
    assert ts.excluded["censored_window_past_data_end"] > 0
    # Features are Feast's point-in-time values for those rows.
    again = historical_features(store, "default", frame.select("buyer_id", "as_of_ts"))
    assert frame.select(again.columns).equals(again)


def test_late_training_set_uses_the_day_before_issue(monthly_built, config):
    store = apply_repo(monthly_built.paths, config.features)
    ts = late_training_set(store, monthly_built.tables, config.labels, monthly_built.data_end)
    frame = ts.frame
    assert (frame["as_of_ts"].dt.date() == frame["issued_on"] - timedelta(days=1)).all()
    labels = label_late(monthly_built.tables["invoices"], config.labels.late_days, monthly_built.data_end)
    assert ts.excluded["censored_outcome_unknown_at_data_end"] == labels["censored"].sum()
    joined = frame.join(labels, on="invoice_id", suffix="_truth")
    assert (joined["late_30d"] == joined["late_30d_truth"].cast(pl.Int8)).all()
    # The invoice itself is not in the buyer's features: it was issued after the snapshot.
    first = frame.sort("issued_on").group_by("buyer_id", maintain_order=True).first()
    assert (first["invoices_issued_365d"].fill_null(0) == 0).all()
    for f in ORDER_FEATURES:
        assert f.name in frame.columns
    row = frame.filter(pl.col("invoices_issued_365d") > 0).row(0, named=True)
    assert row["amount_vs_usual_invoice"] == pytest.approx(row["order_amount"] / (row["amount_issued_365d"] / row["invoices_issued_365d"]))


def test_monthly_grid_serves_the_latest_snapshot_at_or_before(monthly_built, config):
    """Between snapshots, Feast answers with the latest one (a month start or an invoice eve)."""
    store = apply_repo(monthly_built.paths, config.features)
    buyer = "B000003"
    invoices = monthly_built.tables["invoices"].filter(pl.col("buyer_id") == buyer)
    eves = {d - timedelta(days=1) for d in invoices["issued_on"].to_list()}
    months = set(calendar_dates(monthly_built.data_start, monthly_built.data_end, "monthly"))
    grid = sorted(eves | months)
    # A date strictly between two snapshots, so Feast must fall back to the earlier one.
    latest, following = next((a, b) for a, b in zip(grid, grid[1:]) if (b - a).days > 1)
    when = latest + timedelta(days=1)
    got = historical_features(store, "default", pl.DataFrame({"buyer_id": [buyer, buyer], "as_of_ts": [when, latest]}))
    a, b = got.row(0, named=True), got.row(1, named=True)
    names = [f.name for f in features_of_model("default")]
    assert {n: a[n] for n in names} == {n: b[n] for n in names}
    assert when < following
    # ...and they are the snapshot of that earlier date as the build wrote it, not two empty rows.
    written: dict[str, object] = {}
    for view in FEATURE_SERVICES["default"][1]:
        frame = pl.read_parquet(monthly_built.paths.view_dataset(view))
        [row] = frame.filter((pl.col("buyer_id") == buyer) & (pl.col("snapshot_ts").dt.date() == latest)).iter_rows(named=True)
        written |= {n: row[n] for n in names if n in row}
    assert set(written) == set(names)
    assert mismatches(written, a, names) == []
    filled = [n for n in names if a[n] is not None]
    assert len(filled) > len(names) / 2, f"most features have a value between snapshots, got only {filled}"


def test_weekly_calendar_snapshots_mondays(small_portfolio, config, tmp_path):
    _, loaded = small_portfolio
    weekly = config.features.model_copy(update={"snapshots": SnapshotConfig(calendar="weekly", before_invoice_dates=False)})
    built = build_into(tmp_path, loaded, config, weekly)
    days = pl.read_parquet(built.paths.view_dataset("firmographics"))["snapshot_ts"].dt.date().unique().to_list()
    assert all(d.weekday() == 0 or d == built.data_end for d in days)
