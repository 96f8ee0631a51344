"""Labels against hand-computed answers, censored and excluded rows included."""

from __future__ import annotations

from datetime import date

import polars as pl

from tradecredit.simulator_config import SimulatorConfig
from tradecredit.features.labels import default_dates, label_default_12m, label_late
from tradecredit.ledger import load_ledger
from tradecredit.simulator import simulate_portfolio, write_portfolio

DATA_END = date(2025, 6, 30)
D = date.fromisoformat


def _invoices(rows: list[tuple[str, str, str, str | None]]) -> pl.DataFrame:
    """(invoice_id, buyer_id, due_on, settled_on) with issue 30 days before due."""
    frame = pl.DataFrame(
        {
            "invoice_id": [r[0] for r in rows],
            "buyer_id": [r[1] for r in rows],
            "due_on": [D(r[2]) for r in rows],
            "settled_on": pl.Series([D(r[3]) if r[3] else None for r in rows], dtype=pl.Date),
        }
    )
    return frame.with_columns(issued_on=pl.col("due_on") - pl.duration(days=30))


def test_default_dates_by_hand():
    invoices = _invoices(
        [
            ("a", "B1", "2024-01-31", None),          # unpaid: derived default on due + 90 = 2024-04-30
            ("b", "B2", "2024-01-31", "2024-04-30"),  # paid on day 90: not a default
            ("c", "B3", "2024-01-31", "2024-05-01"),  # paid on day 91: default on 2024-04-30
            ("d", "B4", "2025-05-15", None),          # day 90 falls after the data: not (yet) a default
            ("e", "B5", "2024-01-31", "2024-02-10"),
            ("f", "B6", "2024-01-31", None),          # derived 2024-04-30, but a credit event came first
        ]
    )
    credit_events = pl.DataFrame(
        {"buyer_id": ["B2", "B6", "B6"], "event_on": [D("2024-06-15"), D("2024-03-01"), D("2024-09-01")]}
    )
    got = dict(default_dates({"invoices": invoices, "credit_events": credit_events}, 90, DATA_END).iter_rows())
    assert got == {"B1": D("2024-04-30"), "B2": D("2024-06-15"), "B3": D("2024-04-30"), "B6": D("2024-03-01")}


def test_default_12m_by_hand():
    defaults = pl.DataFrame({"buyer_id": ["B1", "B2"], "default_on": [D("2024-04-30"), D("2024-06-15")]})
    entities = pl.DataFrame(
        {
            "buyer_id": ["B1", "B1", "B1", "B2", "B5", "B5", "B9"],
            "as_of_date": [D(x) for x in ("2023-05-01", "2023-04-30", "2024-04-30", "2024-01-01", "2024-07-01", "2024-06-30", "2024-01-01")],
        }
    )
    got = label_default_12m(entities, defaults, DATA_END)
    assert got.height == entities.height  # every row asked for comes back
    assert got["default_12m"].to_list() == [
        True,   # 2023-05-01 + 365 days = 2024-04-30: the default is on the window's last day
        False,  # 2023-04-30 + 365 days = 2024-04-29 (leap year): one day short
        None,   # defaulted on the as-of date itself: already in default, not scored
        True,
        None,   # 2024-07-01 + 365 = 2025-07-01, past the data: censored
        False,  # 2024-06-30 + 365 = 2025-06-30, the last day of data: labelled
        False,  # never defaulted
    ]
    assert got["in_default"].to_list() == [False, False, True, False, False, False, False]
    assert got["censored"].to_list() == [False, False, False, False, True, False, False]


def test_late_30d_by_hand():
    invoices = _invoices(
        [
            ("I1", "B1", "2025-01-31", "2025-03-02"),  # settled on due + 30: on time
            ("I2", "B1", "2025-01-31", "2025-03-03"),  # due + 31: late
            ("I3", "B1", "2025-01-31", None),          # unsettled at due + 30: late
            ("I4", "B1", "2025-06-15", "2025-06-20"),  # known on time before the data ends
            ("I5", "B1", "2025-06-15", None),          # due + 30 after the data: censored
            ("I6", "B1", "2025-05-31", None),          # due + 30 is the last day of data: late
        ]
    )
    got = label_late(invoices, 30, DATA_END)
    assert got["late_30d"].to_list() == [False, True, True, False, None, True]
    assert got["censored"].to_list() == [False, False, False, False, True, False]


def test_simulated_labels_agree_with_the_simulators_defaults(tmp_path, config):
    """Loaded through the contract, the derived default dates are the simulator's own, on a
    ledger without the messes (long disputes, slow payers, small invoices left unpaid) that put
    buyers that never default 90 days past due."""
    clean = config.simulator.payments.model_dump() | {"long_disputes": None, "slow_payers": None, "small_invoices_unpaid": None}
    sim_cfg = SimulatorConfig.model_validate(
        config.simulator.model_dump() | {"buyers": 1500, "months": 24, "payments": clean}
    )
    portfolio = simulate_portfolio(sim_cfg)
    paths = write_portfolio(portfolio, tmp_path / "sim", "parquet")
    loaded = load_ledger(paths.ledger_dir, config.ledger)
    end = date.fromisoformat(loaded.summary.data_end)
    got = default_dates(loaded.tables, config.labels.default_days_past_due, end)
    expected = (
        portfolio.ledger["credit_events"]
        .filter(pl.col("event_type").is_in(["insolvency", "payment_default"]))
        .select("buyer_id", default_on="event_on")
        .sort("buyer_id")
    )
    assert got.equals(expected)
    labelled = label_default_12m(portfolio.buyer_month_truth.select("buyer_id", "as_of_date"), got, end)
    rows = labelled.join(portfolio.buyer_month_truth, on=["buyer_id", "as_of_date"]).drop_nulls("default_12m")
    assert rows.height > 0 and not labelled["in_default"].any()
    assert abs(rows["default_12m"].mean() - rows["pd_12m"].mean()) < 0.01
