"""Feast's point-in-time retrieval against a brute-force oracle that shares no code with the build."""

from __future__ import annotations

import random
from datetime import date, timedelta

import polars as pl
import pytest

from tests.oracles.features_oracle import Oracle, mismatches
from tradecredit.contract import REGISTRY_EVENT_TYPES
from tradecredit.features.build import KNOWN_AT_TS, SNAPSHOT_TS
from tradecredit.features.catalog import FEATURES, VIEW_NAMES
from tradecredit.features.paths import FeaturePaths
from tradecredit.features.store import apply_repo, historical_features

NAMES = [f.name for f in FEATURES]
TYPES = [*REGISTRY_EVENT_TYPES, "other"]


def _utc_variants(d: date) -> list[str]:
    """Ways to write a moment whose UTC date is d."""
    prev, nxt = d - timedelta(days=1), d + timedelta(days=1)
    return [
        d.isoformat(),  # a date: its midnight UTC
        f"{d}T00:00:00Z",  # exactly the snapshot time
        f"{d}T23:59:59.999999+00:00",  # the last instant of the day
        f"{prev}T23:30:00-05:00",  # 04:30 UTC on d
        f"{nxt}T01:00:00+02:00",  # 23:00 UTC on d
        f"{d}T12:00:00",  # no zone: UTC
    ]


def _entity_rows(pairs: list[tuple[str, date]]) -> tuple[pl.DataFrame, list[tuple[str, date]]]:
    rows, expected = [], []
    for i, (buyer, d) in enumerate(pairs):
        variants = _utc_variants(d)
        rows.append({"buyer_id": buyer, "as_of_ts": variants[i % len(variants)]})
        expected.append((buyer, d))
    return pl.DataFrame(rows), expected


def _compare(built, pairs) -> list[str]:
    store = apply_repo(built.paths, built.features_cfg)
    entities, expected = _entity_rows(pairs)
    result = historical_features(store, "default", entities)
    assert result.height == len(pairs), "every entity row must come back"
    oracle = Oracle({k: v.to_dicts() for k, v in built.tables.items()}, 0.01, built.features_cfg.paydex_knots)
    problems = []
    for (buyer, d), row in zip(expected, result.iter_rows(named=True), strict=True):
        assert row["buyer_id"] == buyer
        problems += [f"{buyer} @ {d}: {m}" for m in mismatches(oracle.features(buyer, d, TYPES, built.features_cfg.market.industry_prior_invoices), row, NAMES)]
    return problems


TRICKY_DATES = [
    date(2024, 1, 2), date(2024, 1, 20), date(2024, 2, 1), date(2024, 3, 1), date(2024, 3, 5), date(2024, 3, 15),
    date(2024, 3, 16), date(2024, 3, 20), date(2024, 3, 31), date(2024, 4, 1), date(2024, 4, 10), date(2024, 4, 19),
    date(2024, 4, 20), date(2024, 4, 30), date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 15), date(2024, 7, 1),
    date(2024, 7, 31),
]


def test_tricky_ledger_matches_the_oracle(tricky_built):
    pairs = [(b, d) for b in ("T1", "B1", "B2", "B3") for d in TRICKY_DATES]
    assert _compare(tricky_built, pairs) == []


def test_the_market_view_without_shrinkage_matches_the_oracle(config, tmp_path):
    """industry_prior_invoices 0: each industry's own figure, null where it settled nothing."""
    from tests.conftest import write_ledger
    from tests.integration.features.conftest import TRICKY_LEDGER, build_into, daily, load_folder
    from tradecredit.features.config import MarketConfig

    features_cfg = daily(config.features).model_copy(update={"market": MarketConfig(industry_prior_invoices=0)})
    loaded = load_folder(write_ledger(tmp_path / "ledger", TRICKY_LEDGER), config)
    built = build_into(tmp_path, loaded, config, features_cfg, as_of_end=date(2024, 7, 31))
    assert _compare(built, [(b, d) for b in ("T1", "B1", "B2", "B3") for d in TRICKY_DATES]) == []
    g = pl.read_parquet(built.paths.view_dataset("market_conditions")).filter(pl.col("buyer_id") == "B2")
    assert g["industry_late_share_90d"].null_count() > 0 and g["industry_late_share_90d"].drop_nulls().len() > 0


def test_simulated_portfolio_matches_the_oracle(small_built):
    rng = random.Random(5)
    buyers = small_built.tables["buyers"]["buyer_id"].to_list()
    span = (small_built.data_end - small_built.data_start).days
    pairs = [(rng.choice(buyers), small_built.data_start + timedelta(days=rng.randrange(span + 1))) for _ in range(120)]
    assert _compare(small_built, pairs) == []


def test_the_oracle_comparison_fails_when_snapshots_are_shifted_a_day(tricky_built, tmp_path):
    """Mutation check: claim every snapshot one day earlier than it was (a one-day leak)."""
    shifted = FeaturePaths(offline_dir=tmp_path / "features", repo_dir=tmp_path / "feature_repo")
    for view in VIEW_NAMES:
        shifted.view_dir(view).mkdir(parents=True)
        for part in sorted(tricky_built.paths.view_dir(view).glob("*.parquet")):
            frame = pl.read_parquet(part)
            frame.with_columns(pl.col(SNAPSHOT_TS) - pl.duration(days=1), pl.col(KNOWN_AT_TS) - pl.duration(days=1)).write_parquet(
                shifted.view_dir(view) / part.name
            )
    mutated = type(tricky_built)(tricky_built.tables, tricky_built.data_start, tricky_built.data_end, shifted, tricky_built.features_cfg)
    problems = _compare(mutated, [("T1", d) for d in TRICKY_DATES])
    assert len(problems) > 10, problems


def test_every_row_comes_back_and_out_of_range_rows_are_null(tricky_built):
    store = apply_repo(tricky_built.paths, tricky_built.features_cfg)
    ttl = tricky_built.features_cfg.ttl_days.payment_behaviour
    entities = pl.DataFrame(
        {
            "buyer_id": ["T1", "NOBODY", "T1", "T1"],
            "as_of_ts": [
                "2024-04-01",
                "2024-04-01",
                "2023-01-01",  # before the first snapshot
                (tricky_built.data_end + timedelta(days=ttl + 1)).isoformat(),  # past the last snapshot's TTL
            ],
        }
    )
    result = historical_features(store, "default", entities)
    assert result["buyer_id"].to_list() == entities["buyer_id"].to_list()
    assert result.row(0, named=True)["invoices_issued_90d"] == 4
    for i in (1, 2, 3):
        assert all(v is None for k, v in result.row(i, named=True).items() if k in NAMES), i


def test_bad_entity_rows_are_named(tricky_built):
    from tradecredit.features.paths import FeatureStoreError

    store = apply_repo(tricky_built.paths, tricky_built.features_cfg)
    with pytest.raises(FeatureStoreError, match="rows 2, 3"):
        historical_features(store, "default", pl.DataFrame({"buyer_id": ["T1", "T1", ""], "as_of_ts": ["2024-04-01", "yesterday", "2024-04-01"]}))
    with pytest.raises(FeatureStoreError, match="missing as_of_ts"):
        historical_features(store, "default", pl.DataFrame({"buyer_id": ["T1"], "when": ["2024-04-01"]}))
