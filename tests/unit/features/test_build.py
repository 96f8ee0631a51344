"""The feature build: planted future facts never change a snapshot, the grid, the catalogue."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from tests.conftest import REPO, write_ledger
from tests.integration.features.conftest import TRICKY_LEDGER, daily
from tradecredit.features.config import SnapshotConfig
from tradecredit.features.build import SNAPSHOT_TS, build_features, calendar_dates, snapshot_grid
from tradecredit.features.catalog import FEATURES, FEATURES_BY_VIEW, feature_table_markdown
from tradecredit.ledger import load_ledger

AS_OF = date(2024, 4, 10)
LATER = date(2024, 4, 11)


def _build(config, tables, tmp_path, name):
    loaded = load_ledger(write_ledger(tmp_path / name, tables), config.ledger)
    assert loaded.summary.rows_rejected == 0
    return build_features(loaded.tables, daily(config.features), config.ledger.settlement_tolerance, date(2023, 11, 1), date(2024, 6, 30))


def _at(views, d: date) -> dict[str, pl.DataFrame]:
    return {name: frame.filter(pl.col(SNAPSHOT_TS).dt.date() <= d) for name, frame in views.items()}


def _planted() -> dict[str, list[dict[str, str]]]:
    tables = {k: [dict(r) for r in v] for k, v in TRICKY_LEDGER.items()}
    day = LATER.isoformat()
    # A payment that settles an open invoice, a new invoice, a dispute, a registry event, and a
    # statement for an old period, all dated the day after the as-of date.
    tables["payments"].append({"invoice_id": "TD", "paid_on": day, "amount": "75.5"})
    tables["invoices"].append({"invoice_id": "TZ", "buyer_id": "T1", "seller_id": "S9", "issued_on": day, "due_on": day, "amount": "999"})
    for inv in tables["invoices"]:
        if inv["invoice_id"] == "TE":
            inv["disputed_on"] = day
    tables["registry_events"].append({"buyer_id": "T1", "event_on": day, "event_type": "negative_news"})
    tables["financials"].append(
        {"buyer_id": "T1", "period_end": "2023-12-31", "published_on": day, "revenue": "5", "total_assets": "5", "equity": "1"}
    )
    return tables


def test_planted_future_facts_change_nothing_up_to_the_as_of_date(config, tmp_path):
    clean = _build(config, TRICKY_LEDGER, tmp_path, "clean")
    planted = _build(config, _planted(), tmp_path, "planted")
    before, after = _at(clean.views, AS_OF), _at(planted.views, AS_OF)
    for view in before:
        assert before[view].equals(after[view]), view
    # ...and the planted facts do show from their own date on, so this test can fail.
    t1 = {v: planted.views[v].filter((pl.col("buyer_id") == "T1") & (pl.col(SNAPSHOT_TS).dt.date() == LATER)).row(0, named=True) for v in planted.views}
    c1 = {v: clean.views[v].filter((pl.col("buyer_id") == "T1") & (pl.col(SNAPSHOT_TS).dt.date() == LATER)).row(0, named=True) for v in clean.views}
    assert t1["payment_behaviour"]["open_61_90"] == 0 and c1["payment_behaviour"]["open_61_90"] == 75.5
    assert t1["payment_behaviour"]["invoices_issued_90d"] == c1["payment_behaviour"]["invoices_issued_90d"] + 1
    assert t1["payment_behaviour"]["disputes_90d"] == c1["payment_behaviour"]["disputes_90d"] + 1
    assert t1["payment_behaviour"]["sellers_90d"] == c1["payment_behaviour"]["sellers_90d"] + 1
    assert t1["registry_signals"]["days_since_negative_news"] == 0 and c1["registry_signals"]["days_since_negative_news"] is None
    assert t1["financials"]["days_since_statement"] == 0
    # T1's late settlement of TD reaches every buyer's market view from its day, B1's too (same industry).
    b1 = {name: v.views["market_conditions"].filter((pl.col("buyer_id") == "B1") & (pl.col(SNAPSHOT_TS).dt.date() == LATER)).row(0, named=True)
          for name, v in (("planted", planted), ("clean", clean))}
    for feature in ("market_late_share_90d", "market_dbt_weighted_365d", "industry_late_share_90d", "industry_dbt_weighted_365d"):
        assert b1["planted"][feature] > b1["clean"][feature], feature


def test_facts_after_the_last_snapshot_are_never_read(config, tmp_path):
    loaded = load_ledger(write_ledger(tmp_path / "l", _planted()), config.ledger)
    cut = build_features(loaded.tables, daily(config.features), config.ledger.settlement_tolerance, date(2023, 11, 1), AS_OF)
    full = _build(config, TRICKY_LEDGER, tmp_path, "clean")
    assert cut.as_of_end == AS_OF
    for view, frame in _at(full.views, AS_OF).items():
        assert cut.views[view].equals(frame), view


def test_calendars():
    assert calendar_dates(date(2024, 1, 15), date(2024, 4, 1), "monthly") == [date(2024, 2, 1), date(2024, 3, 1), date(2024, 4, 1)]
    assert calendar_dates(date(2024, 1, 1), date(2024, 1, 20), "weekly") == [date(2024, 1, 1), date(2024, 1, 8), date(2024, 1, 15)]
    assert len(calendar_dates(date(2024, 2, 1), date(2024, 3, 1), "daily")) == 30  # leap year


def test_grid_adds_the_day_before_each_invoice_and_the_last_date():
    buyers = pl.DataFrame({"buyer_id": ["A", "B"]})
    invoices = pl.DataFrame({"buyer_id": ["A", "A"], "issued_on": [date(2024, 1, 10), date(2024, 3, 31)]})
    grid = snapshot_grid(buyers, invoices, date(2024, 1, 1), date(2024, 2, 20), SnapshotConfig(calendar="monthly", before_invoice_dates=True))
    assert grid.filter(pl.col("buyer_id") == "A")["as_of"].to_list() == [date(2024, 1, 1), date(2024, 1, 9), date(2024, 2, 1), date(2024, 2, 20)]
    assert grid.filter(pl.col("buyer_id") == "B")["as_of"].to_list() == [date(2024, 1, 1), date(2024, 2, 1), date(2024, 2, 20)]


def test_every_catalogue_feature_is_built_with_its_type(config, tmp_path):
    built = _build(config, TRICKY_LEDGER, tmp_path, "clean")
    # Spelled out here, not read from the catalogue's own mapping, so a change to that mapping fails.
    declared = {"float": pl.Float64, "int": pl.Int64, "string": pl.String}
    for view, features in FEATURES_BY_VIEW.items():
        frame = built.views[view]
        assert frame.columns[3:] == [f.name for f in features]
        assert frame.height == built.snapshots
        assert frame.schema["buyer_id"] == pl.String, view
        wrong = {f.name: (f.dtype, frame.schema[f.name]) for f in features if frame.schema[f.name] != declared[f.dtype]}
        assert not wrong, f"{view}: built with a type other than the catalogue's: {wrong}"
    assert len({f.name for f in FEATURES}) == len(FEATURES), "feature names must be unique"


def test_readme_feature_table_is_the_generated_one():
    readme = (REPO / "docs" / "features.md").read_text(encoding="utf-8")
    assert feature_table_markdown() in readme, "run: tradecredit features docs --write docs/features.md"


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"ttl_days": {"payment_behaviour": 20, "registry_signals": 35, "firmographics": 35, "financials": 35, "market_conditions": 35}}, "shorter than the monthly"),
        ({"paydex_knots": [[0, 80], [-5, 90]]}, "strictly increasing"),
        ({"paydex_knots": [[0, 80], [10, 90]]}, "must not rise"),
    ],
)
def test_features_config_rejects_inconsistent_values(config, update, message):
    from pydantic import ValidationError

    from tradecredit.features.config import FeaturesConfig

    with pytest.raises(ValidationError, match=message):
        FeaturesConfig.model_validate(config.features.model_dump() | update)


def _without(tables: dict[str, list[dict[str, str]]], source: str) -> dict[str, list[dict[str, str]]]:
    """``tables`` with one optional source gone: a table left out, a table with a header only,
    or a column blanked everywhere."""
    out = {k: [dict(r) for r in v] for k, v in tables.items()}
    if source in out:
        del out[source]
        return out
    table = "invoices" if source in ("seller_id", "disputed_on") else "buyers"
    for row in out[table]:
        row[source] = ""
    return out


@pytest.mark.parametrize(
    "source",
    ["registry_events", "registry_events (empty file)", "financials", "payments", "seller_id", "disputed_on", "country", "founded_on"],
)
def test_an_absent_source_leaves_its_features_null_and_the_others_unchanged(config, tmp_path, source):
    from tradecredit.features.catalog import feature_sources
    from tradecredit.ledger import ledger_sources

    def build(tables, name):
        folder = write_ledger(tmp_path / name, tables)
        if name == "without" and source == "registry_events (empty file)":
            (folder / "registry_events.csv").write_text("buyer_id,event_on,event_type\n", encoding="utf-8")
        loaded = load_ledger(folder, config.ledger)
        assert loaded.summary.rows_rejected == 0
        sources = ledger_sources(loaded.tables)
        return sources, build_features(loaded.tables, daily(config.features), config.ledger.settlement_tolerance,
                                       date(2023, 11, 1), date(2024, 6, 30), sources)

    full_sources, full = build(TRICKY_LEDGER, "full")
    key = source.split(" ")[0]
    sources, without = build(_without(TRICKY_LEDGER, key) if key == source else TRICKY_LEDGER, "without")
    assert full_sources[key] and not sources[key]
    gone = set(without.without_source)
    assert gone == {f.name for f in FEATURES if key in feature_sources(f)}
    # Without payment rows, settlements come from the invoices' paid_on alone: those features change.
    changed = {f.name for f in FEATURES if "settlements" in feature_sources(f)} if key == "payments" else set()
    for view, frame in without.views.items():
        for f in FEATURES_BY_VIEW[view]:
            if f.name in gone:
                assert frame[f.name].null_count() == frame.height, f.name
            elif f.name not in changed:  # what does not need the source is what the full ledger gives
                assert frame[f.name].equals(full.views[view][f.name]), f.name
