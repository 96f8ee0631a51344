"""The portfolio view on hand-made portfolios: concentration, customer mix, aging history
(point in time), and limits and prices that agree with the scoring service's policy."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from tradecredit.features.build import KNOWN_AT_TS, SNAPSHOT_TS
from tradecredit.features.catalog import AGING_COLUMNS
from tradecredit.monitoring.portfolio_view import aging_history, concentration, portfolio_view
from tradecredit.policy import buyer_facts, decide

AS_OF = date(2026, 3, 1)


def book(exposures: list[float], days: list[int | None], tiers: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    ids = [f"B{i}" for i in range(len(exposures))]
    scores = pl.DataFrame({"buyer_id": ids, "pd_12m": [0.004 if t == "low" else 0.04 for t in tiers], "grade": [3 if t == "low" else 7 for t in tiers], "tier": tiers})
    features = pl.DataFrame({
        "buyer_id": ids, "industry": ["C"] * len(ids), "country": ["DE", "FR"] * (len(ids) // 2) + ["DE"] * (len(ids) % 2),
        "open_balance": exposures, "amount_issued_365d": [e * 4 for e in exposures], "revenue": [1e6] * len(ids),
        "equity": [None] * len(ids), "days_since_first_invoice": days,
    }, schema_overrides={"equity": pl.Float64, "days_since_first_invoice": pl.Int64})
    return scores, features


def snapshots(tmp_path, rows: list[tuple[datetime, datetime, float]]):
    path = tmp_path / "payment_behaviour.parquet"
    frame = pl.DataFrame({
        "buyer_id": [f"B{i}" for i in range(len(rows))],
        SNAPSHOT_TS: [r[0] for r in rows], KNOWN_AT_TS: [r[1] for r in rows],
        **{c: [r[2] if c == "open_current" else 0.0 for r in rows] for c in AGING_COLUMNS},
        "open_balance": [r[2] for r in rows], "amount_issued_90d": [r[2] * 2 for r in rows],
    })
    frame.write_parquet(path)
    return path


def test_concentration_by_hand():
    scores, features = book([50.0, 30.0, 20.0, 0.0], [800, 800, 800, 800], ["low"] * 4)
    c = concentration(features.rename({"open_balance": "exposure"}).join(scores, on="buyer_id"), top_n=2)
    assert c.total_exposure == 100.0 and c.largest_buyer == "B0" and c.largest_share == 0.5
    assert c.top_n_share == pytest.approx(0.8) and c.hhi == pytest.approx(0.25 + 0.09 + 0.04) and c.effective_buyers == pytest.approx(1 / 0.38)


def test_view_segments_exposure_and_prices(tmp_path, config):
    # B0: core (2+ years, low tier); B1: growth (2+ years, medium tier); B2: growth (1-2 years); B3: new; B4: no invoice yet.
    scores, features = book([500.0, 300.0, 150.0, 50.0, 0.0], [800, 900, 500, 100, None], ["low", "medium", "low", "low", "low"])
    path = snapshots(tmp_path, [(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC), 10.0)])
    view = portfolio_view(scores, features, path, AS_OF, config.policy, config.monitoring.portfolio)
    mix = {r["segment"]: r for r in view.customer_mix.to_dicts()}
    assert (mix["core"]["buyers"], mix["growth"]["buyers"], mix["new"]["buyers"]) == (1, 2, 2)
    assert mix["core"]["share"] == pytest.approx(0.5) and mix["growth"]["share"] == pytest.approx(0.45) and mix["new"]["share"] == pytest.approx(0.05)
    # Targets 30 / 50 / 20 with a tolerance of 10 points: core and new are off target, growth is not.
    assert [mix[s]["gap"] for s in ("core", "growth", "new")] == pytest.approx([0.2, -0.05, -0.15])
    assert [mix[s]["off_target"] for s in ("core", "growth", "new")] == [True, False, True]
    assert view.by_tier.filter(pl.col("tier") == "medium")["exposure"].to_list() == [300.0]
    assert view.by_country["share"].sum() == pytest.approx(1.0)
    # Every buyer's limit, expected loss and premium are the service's own decision with nothing requested.
    for row in view.positions.iter_rows(named=True):
        expected = decide(row["pd_12m"], buyer_facts(features.filter(pl.col("buyer_id") == row["buyer_id"]).row(0, named=True)), None, config.policy)
        assert (row["recommended_limit"], row["expected_loss"], row["premium"]) == (expected.recommended_limit, expected.expected_loss, expected.premium)
    assert view.expected_loss == pytest.approx(sum(r["expected_loss"] for r in view.positions.to_dicts()))


def test_aging_history_never_sees_a_later_snapshot_or_a_later_known_fact(tmp_path):
    month = lambda m: datetime(2026, m, 1, tzinfo=UTC)  # noqa: E731
    path = snapshots(tmp_path, [
        (month(1), month(1), 100.0),
        (month(2), month(2), 200.0),
        (month(3), month(3), 300.0),  # the run date itself: known that day
        (month(4), month(4), 1e9),  # after the run date: must not appear
        (month(2), datetime(2026, 3, 2, tzinfo=UTC), 1e9),  # a February row known only after the run: must not appear
        (datetime(2026, 2, 15, tzinfo=UTC), datetime(2026, 2, 15, tzinfo=UTC), 5e8),  # not a month start (a before-invoice snapshot)
    ])
    history = aging_history(path, AS_OF, months=12)
    assert history["month"].to_list() == [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]
    assert history["open_balance"].to_list() == [100.0, 200.0, 300.0]
    assert history["dso_days"].to_list() == [45.0, 45.0, 45.0]
    assert aging_history(path, AS_OF, months=2)["month"].to_list() == [date(2026, 2, 1), date(2026, 3, 1)]
