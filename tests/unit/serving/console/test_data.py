"""What the console reads: server-side paging of the portfolio, and the buyer page's history
readers, each with a planted future fact that must not show at the service clock."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from tradecredit.features.build import KNOWN_AT_TS, SNAPSHOT_TS
from tradecredit.features.catalog import AGING_COLUMNS
from tradecredit.monitoring.alerts import AlertStore, FiredAlert
from tradecredit.serving.console.data import (
    QueryError,
    alerts_by_buyer,
    parse_portfolio_query,
    payment_history,
    pd_history,
    portfolio_page,
    PortfolioTable,
    read_alerts,
    read_portfolio_table,
    registry_timeline,
    statements,
    with_acknowledgements,
    write_portfolio_table,
)

NOW = datetime(2026, 6, 15, 23, 59, 59, tzinfo=UTC)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def table() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "buyer_id": ["B1", "B2", "B3", "B4", "B5", "B6", "B7"],
            "industry": ["C", "C", "F", "G", None, "F", "C"],
            "country": ["DE", "FR", "DE", "IT", "DE", "FR", "DE"],
            "pd_12m": [0.01, 0.05, 0.05, 0.20, 0.002, 0.03, 0.05],
            "grade": [3, 6, 6, 9, 1, 5, 6],
            "tier": ["low", "medium", "medium", "high", "low", "medium", "medium"],
            "recommended_limit": [100.0, 50.0, 40.0, 0.0, 300.0, 60.0, 45.0],
            "exposure": [10.0, 20.0, 30.0, 40.0, 0.0, 5.0, 1.0],
            "available_limit": [90.0, 30.0, 10.0, 0.0, 300.0, 55.0, 44.0],
            "premium_rate": [0.003, 0.01, 0.01, 0.05, 0.002, 0.008, 0.01],
            "stale": [False] * 7,
            "open_alerts": [0, 2, 1, 1, 0, 0, 0],
            "alert_colour": [None, "red", "yellow", "red", None, None, None],
        }
    )


def query(config, **params: str | list[str]):
    return parse_portfolio_query({k: v if isinstance(v, list) else [v] for k, v in params.items()}, config.console, 10)


def test_sorting_breaks_ties_by_buyer_and_pages_never_repeat(table, config):
    q = query(config, sort="pd_12m", desc="1", size="2")
    seen = []
    for page in (1, 2, 3, 4):
        result = portfolio_page(table, query(config, sort="pd_12m", desc="1", size="2", page=str(page)))
        seen += [r["buyer_id"] for r in result.rows]
        assert result.pages == 4 and result.matched == 7 and result.total == 7
    assert seen == ["B4", "B2", "B3", "B7", "B6", "B1", "B5"]
    assert portfolio_page(table, q).rows[0]["buyer_id"] == "B4"
    # A page past the end shows the last page rather than nothing.
    assert [r["buyer_id"] for r in portfolio_page(table, query(config, size="2", page="99")).rows] == ["B5"]


def test_filters_combine(table, config):
    result = portfolio_page(table, query(config, grade=["6", "9"], country="DE"))
    assert {r["buyer_id"] for r in result.rows} == {"B3", "B7"}
    assert result.sums == {"exposure": 31.0, "recommended_limit": 85.0}
    assert {r["buyer_id"] for r in portfolio_page(table, query(config, tier="low")).rows} == {"B1", "B5"}
    assert {r["buyer_id"] for r in portfolio_page(table, query(config, industry=["F", "G"])).rows} == {"B3", "B4", "B6"}
    assert {r["buyer_id"] for r in portfolio_page(table, query(config, alert="red")).rows} == {"B2", "B4"}
    assert {r["buyer_id"] for r in portfolio_page(table, query(config, alert="any")).rows} == {"B2", "B3", "B4"}
    assert len(portfolio_page(table, query(config, alert="none")).rows) == 4
    assert [r["buyer_id"] for r in portfolio_page(table, query(config, q="b7")).rows] == ["B7"]
    assert portfolio_page(table, query(config, q="nobody")).rows == []


@pytest.mark.parametrize(
    ("params", "parameter"),
    [({"sort": "password"}, "sort"), ({"grade": "11"}, "grade"), ({"grade": "x"}, "grade"), ({"tier": "extreme"}, "tier"),
     ({"alert": "green"}, "alert"), ({"page": "0"}, "page"), ({"size": "-5"}, "size"), ({"size": "100000"}, "size"),
     ({"desc": "yes"}, "desc"), ({"sort": ["pd_12m", "grade"]}, "sort"), ({"grde": "9"}, "grde")],
)
def test_bad_queries_name_their_parameter(config, params, parameter):
    with pytest.raises(QueryError) as caught:
        query(config, **params)
    assert caught.value.parameter == parameter


def test_alerts_by_buyer_keeps_the_worst_colour():
    frame = pl.DataFrame({"buyer_id": ["B1", "B1", "B2"], "colour": ["yellow", "red", "yellow"]})
    got = {r["buyer_id"]: (r["open_alerts"], r["alert_colour"]) for r in alerts_by_buyer(frame).to_dicts()}
    assert got == {"B1": (2, "red"), "B2": (1, "yellow")}


# --------------------------------------------------------------------------- point in time


def test_pd_history_leaves_out_runs_after_the_clock(tmp_path):
    files = []
    for day, pd_12m in (("2026-01-01", 0.01), ("2026-06-01", 0.02), ("2026-07-01", 0.90)):
        path = tmp_path / f"{day}.parquet"
        pl.DataFrame({"buyer_id": ["B1", "B2"], "as_of_ts": [ts(day)] * 2, "pd_12m": [pd_12m, 0.5], "grade": [3, 9], "tier": ["low", "high"],
                      "model_version": ["1", "1"]}).write_parquet(path)
        files.append(path)
    history = pd_history(files, "B1", NOW)
    assert history["pd_12m"].to_list() == [0.01, 0.02]


def test_payment_history_uses_month_starts_known_by_the_clock(tmp_path):
    rows = []
    for snapshot, known, dbt in (
        ("2026-05-01", "2026-05-01", 5.0), ("2026-05-20", "2026-05-20", 6.0), ("2026-06-01", "2026-06-01", 7.0),
        ("2026-06-01", "2026-06-20", 70.0),  # a restatement known only after the clock
        ("2026-07-01", "2026-07-01", 99.0),  # a snapshot after the clock
    ):
        rows.append({"buyer_id": "B1", SNAPSHOT_TS: ts(snapshot), KNOWN_AT_TS: ts(known), "dbt_weighted_90d": dbt, "dbt_max_90d": 1,
                     "paydex_90d": 80.0, "late_share_90d": 0.1, "dso_90d": 40.0, "open_balance": 10.0, **{c: 1.0 for c in AGING_COLUMNS}})
    path = tmp_path / "payment_behaviour.parquet"
    pl.DataFrame(rows).write_parquet(path)
    history = payment_history(path, "B1", NOW, months=24)
    assert history["dbt_weighted_90d"].to_list() == [5.0, 7.0]
    assert history["month"].to_list() == [date(2026, 5, 1), date(2026, 6, 1)]
    assert payment_history(path, "B1", NOW, months=1)["dbt_weighted_90d"].to_list() == [7.0]


def test_statements_are_those_published_by_the_clock(tmp_path):
    rows = []
    for snapshot, days_since, revenue in (("2026-04-01", 1, 100.0), ("2026-05-01", 31, 100.0), ("2026-06-10", 9, 120.0), ("2026-06-20", 1, 999.0)):
        rows.append({"buyer_id": "B1", SNAPSHOT_TS: ts(snapshot), KNOWN_AT_TS: ts(snapshot), "has_statement": 1, "days_since_statement": days_since,
                     "revenue": revenue, "equity": 1.0, "debt_ratio": 0.5, "current_ratio": 1.2, "cash_ratio": 0.3, "net_margin": 0.05,
                     "roa": 0.02, "revenue_growth": None})
    path = tmp_path / "financials.parquet"
    pl.DataFrame(rows).write_parquet(path)
    found = statements(path, "B1", NOW)
    assert found["published_on"].to_list() == [date(2026, 6, 1), date(2026, 3, 31)]
    assert found["revenue"].to_list() == [120.0, 100.0]


def test_registry_timeline_shows_only_events_public_by_the_clock(tmp_path):
    path = tmp_path / "registry_events.parquet"
    pl.DataFrame(
        {"buyer_id": ["B1", "B1", "B2", "B1"], "event_on": [date(2026, 1, 5), date(2026, 6, 15), date(2026, 2, 1), date(2026, 6, 16)],
         "event_type": ["lawsuit_filed", "executive_change", "negative_news", "insolvency_filing"], "detail": ["", None, "", "planted"],
         "event_type_raw": [""] * 4}
    ).write_parquet(path)
    events = registry_timeline(path, "B1", NOW)
    assert events["event_type"].to_list() == ["lawsuit_filed", "executive_change"]
    assert registry_timeline(tmp_path / "missing.parquet", "B1", NOW).height == 0


def test_alerts_raised_after_the_clock_are_not_shown_and_acknowledgements_attach(tmp_path):
    store = AlertStore(tmp_path / "alerts.db")
    store.apply(date(2026, 6, 1), [FiredAlert("B1", "lawsuits", "yellow", "2 lawsuits", {})], {"yellow": "review", "red": "stop"}, "1")
    store.apply(date(2026, 7, 1), [FiredAlert("B1", "lawsuits", "yellow", "2 lawsuits", {}), FiredAlert("B2", "insolvency", "red", "filed", {})],
                {"yellow": "review", "red": "stop"}, "1")
    store.close()
    shown = read_alerts(tmp_path / "alerts.db", NOW.date())
    assert shown["buyer_id"].to_list() == ["B1"]
    assert read_alerts(tmp_path / "missing.db", NOW.date()).height == 0
    alert_id = shown["alert_id"][0]
    reviews = [
        {"action": "acknowledge", "alert_id": alert_id, "alert_signal": "lawsuits", "alert_raised_on": "2026-06-01", "reviewer": "alice",
         "logged_at": "2026-06-02T10:00:00", "reason": "called them"},
        # The same id from a rebuilt store (another signal, another day) is not this alert.
        {"action": "acknowledge", "alert_id": alert_id, "alert_signal": "insolvency", "alert_raised_on": "2025-01-01", "reviewer": "mallory",
         "logged_at": "2026-06-03T10:00:00", "reason": ""},
        {"action": "override", "alert_id": None, "alert_signal": None, "alert_raised_on": None, "reviewer": "bob", "logged_at": "x", "reason": "r"},
    ]
    joined = with_acknowledgements(shown, reviews).row(0, named=True)
    assert (joined["acknowledged_by"], joined["acknowledged_note"]) == ("alice", "called them")


def test_a_shared_portfolio_table_is_read_back_only_with_its_key_and_while_fresh(table, tmp_path):
    built = PortfolioTable(table, NOW, 0.0, 3.5, "7", 2)
    file, meta = tmp_path / "table.parquet", tmp_path / "table.json"
    key = {"models": {"default": "7"}, "clock": NOW.isoformat()}
    assert read_portfolio_table(file, meta, key, 600) is None, "nothing shared yet"
    write_portfolio_table(built, file, meta, key)
    shared = read_portfolio_table(file, meta, key, 600)
    assert shared is not None and shared.frame.equals(table)
    assert (shared.clock, shared.model_version, shared.unscored, shared.build_seconds) == (NOW, "7", 2, 3.5)
    assert read_portfolio_table(file, meta, key | {"models": {"default": "8"}}, 600) is None, "another model: build anew"
    assert read_portfolio_table(file, meta, key, 0) is None, "older than the refresh interval: build anew"
