"""Labels against hand-computed answers, censored and excluded rows included."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from tradecredit.simulator_config import SimulatorConfig
from tradecredit.features.labels import default_spells, label_default_12m, label_late
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


def _ledger(rows: list[tuple[str, str, str, float, str | None, str | None]], credit_events=()) -> dict[str, pl.DataFrame]:
    """(invoice_id, buyer_id, due_on, amount, paid_on, disputed_on): issued 30 days before due, paid in full."""
    invoices = pl.DataFrame(
        {
            "invoice_id": [r[0] for r in rows], "buyer_id": [r[1] for r in rows], "due_on": [D(r[2]) for r in rows],
            "amount": [float(r[3]) for r in rows],
            "disputed_on": pl.Series([D(r[5]) if r[5] else None for r in rows], dtype=pl.Date),
        }
    ).with_columns(issued_on=pl.col("due_on") - pl.duration(days=30))
    payments = pl.DataFrame(
        {"invoice_id": [r[0] for r in rows if r[4]], "paid_on": [D(r[4]) for r in rows if r[4]],
         "amount": [float(r[3]) for r in rows if r[4]]},
        schema={"invoice_id": pl.String, "paid_on": pl.Date, "amount": pl.Float64},
    )
    tables = {"invoices": invoices, "payments": payments}
    if credit_events:
        tables["credit_events"] = pl.DataFrame(
            {"buyer_id": [e[0] for e in credit_events], "event_on": [D(e[1]) for e in credit_events],
             "event_type": [e[2] for e in credit_events]}
        )
    return tables


def _spells(tables: dict[str, pl.DataFrame], config, **changes) -> dict[str, list[tuple[date, date | None]]]:
    definition = config.labels.default.model_copy(update=changes)
    spells = default_spells(tables, definition, DATA_END).spells
    out: dict[str, list] = {}
    for buyer, start, cured, _ in spells.iter_rows():
        out.setdefault(buyer, []).append((start, cured))
    return out


DERIVED = [
    ("a", "B1", "2024-01-31", 1000, None, None),                # unpaid: 90 days past due on 2024-04-30
    ("b", "B2", "2024-01-31", 1000, "2024-04-30", None),        # paid on day 90: not a default
    ("c", "B3", "2024-01-31", 1000, "2024-05-01", None),        # paid on day 91: default, then cured after 90 quiet days
    ("c2", "B3", "2024-10-01", 1000, None, None),                # ... and a new default 90 days after this one's due date
    ("d", "B4", "2024-01-31", 100, None, None),                 # below the absolute threshold (500): never material
    ("d2", "B4", "2024-01-31", 5000, "2024-01-31", None),
    ("e", "B5", "2024-01-31", 600, None, None),                 # 600 past due, but under 1% of 100,600 open ...
    ("e2", "B5", "2024-05-20", 100000, "2024-05-20", None),     # ... until this one is paid: material from 2024-05-20
    ("f", "B6", "2024-01-31", 1000, "2024-08-01", "2024-02-10"),  # disputed: its arrears do not count
    ("g", "B7", "2024-01-31", 1000, None, None),                # derived 2024-04-30, but a credit event came first
    ("h", "B8", "2025-05-15", 1000, None, None),                # day 90 falls after the data: not (yet) a default
]


def test_derived_defaults_by_hand(config):
    got = _spells(_ledger(DERIVED, [("B7", "2024-03-01", "payment_default")]), config, source="days_past_due")
    assert got == {
        "B1": [(D("2024-04-30"), None)],
        "B3": [(D("2024-04-30"), D("2024-07-30")), (D("2024-12-30"), None)],
        "B5": [(D("2024-05-20"), None)],
        "B7": [(D("2024-04-30"), None)],  # days_past_due alone ignores credit events
    }
    # Disputes counted and no materiality: the old rule's false defaults come back.
    naive = _spells(_ledger(DERIVED), config, source="days_past_due", exclude_disputed=False,
                    materiality=config.labels.default.materiality.model_copy(update={"absolute": 0.0, "relative": 0.0, "small_balance": 0.0}))
    assert naive["B4"] == [(D("2024-04-30"), None)] and naive["B6"] == [(D("2024-04-30"), D("2024-10-30"))]
    assert naive["B5"][0][0] == D("2024-04-30")


def test_a_slow_payer_cures_and_a_short_payment_is_not_arrears(config):
    monthly = [f"2024-{m:02d}-01" for m in range(2, 13)]
    slow = [(f"s{i}", "B1", due, 1000, (D(due) + timedelta(days=95 if i == 0 else 60)).isoformat(), None)
            for i, due in enumerate(monthly)]
    short = [(f"r{i}", "B2", due, 20000, due, None) for i, due in enumerate(monthly)]
    tables = _ledger([*slow, *short])
    # B2's payments each leave 2% (400) unpaid: 4,400 in all, above 500 and 1%, but each a short payment.
    paid = tables["payments"]
    tables["payments"] = paid.with_columns(amount=pl.when(pl.col("invoice_id").str.starts_with("r")).then(pl.col("amount") * 0.98)
                                           .otherwise(pl.col("amount")))
    got = _spells(tables, config, source="days_past_due")
    # One invoice 95 days late: in default on its 90th day, then 90 days with nothing 90 days
    # past due (it still pays 60 days late) and it performs again.
    assert got == {"B1": [(D("2024-05-01"), D("2024-08-04"))]}
    no_forgiveness = _spells(tables, config, source="days_past_due", residual_share=0.0)
    assert no_forgiveness["B2"][0][1] is None  # the residues add up to a default that never cures


def test_disputes_shield_an_invoice_only_before_the_threshold_and_for_a_while(config):
    rows = [
        ("a", "B1", "2024-01-31", 1000, None, "2024-05-15"),  # disputed after it is 90 days past due: still a default
        ("b", "B2", "2024-01-31", 1000, None, "2024-02-05"),  # disputed in time, never paid: counts once 270 days disputed
        ("c", "B3", "2024-01-31", 1000, "2024-01-31", None),
    ]
    got = _spells(_ledger(rows), config, source="days_past_due")
    assert got == {"B1": [(D("2024-04-30"), None)], "B2": [(D("2024-11-01"), None)]}


def test_a_ledger_without_payment_information_cannot_derive_a_default(config):
    import pytest

    from tradecredit.errors import StageError

    tables = _ledger([("a", "B1", "2024-01-31", 1000, None, None)])
    with pytest.raises(StageError, match="no payment information"):
        _spells(tables, config, source="days_past_due")


def test_credit_events_first_and_cure_only_after_trading_again(config):
    events = [("B7", "2024-03-01", "payment_default"), ("B9", "2024-03-01", "payment_default"), ("B10", "2024-03-01", "insolvency")]
    rows = [*DERIVED, ("i", "B9", "2024-06-30", 1000, "2024-06-30", None), ("j", "B10", "2024-06-30", 1000, "2024-06-30", None)]
    tables = _ledger(rows, events)
    both = _spells(tables, config, source="both")
    assert both["B7"] == [(D("2024-03-01"), None)]  # the credit event is first; the unpaid invoice keeps it in default
    assert both["B1"] == [(D("2024-04-30"), None)]
    events_only = _spells(tables, config, source="auto")  # auto: the ledger has credit events
    assert set(events_only) == {"B7", "B9", "B10"}
    # B9 trades again from 2024-05-31 (its next invoice) with nothing past due: cured 90 days on.
    assert events_only["B9"] == [(D("2024-03-01"), D("2024-08-29"))]
    assert events_only["B10"] == [(D("2024-03-01"), None)]  # insolvency is terminal


def test_default_12m_by_hand():
    spells = pl.DataFrame(
        {"buyer_id": ["B1", "B2", "B3", "B3"], "default_on": [D("2024-04-30"), D("2024-06-15"), D("2023-01-10"), D("2024-12-30")],
         "cured_on": [None, None, D("2023-06-01"), None]},
        schema={"buyer_id": pl.String, "default_on": pl.Date, "cured_on": pl.Date},
    )
    entities = pl.DataFrame(
        {
            "buyer_id": ["B1", "B1", "B1", "B2", "B5", "B5", "B9", "B3", "B3", "B3"],
            "as_of_date": [D(x) for x in ("2023-05-01", "2023-04-30", "2024-04-30", "2024-01-01", "2024-07-01", "2024-06-30",
                                          "2024-01-01", "2023-05-01", "2023-06-01", "2024-01-01")],
        }
    )
    got = label_default_12m(entities, spells, DATA_END)
    assert got.height == entities.height  # every row asked for comes back
    assert got["default_12m"].to_list() == [
        True,   # 2023-05-01 + 365 days = 2024-04-30: the default is on the window's last day
        False,  # 2023-04-30 + 365 days = 2024-04-29 (leap year): one day short
        None,   # defaulted on the as-of date itself: already in default, not scored
        True,
        None,   # 2024-07-01 + 365 = 2025-07-01, past the data: censored
        False,  # 2024-06-30 + 365 = 2025-06-30, the last day of data: labelled
        False,  # never defaulted
        None,   # in its first spell
        False,  # cured that day: scored again, and the next default is more than a year away
        True,   # the second default is within the year
    ]
    assert got["in_default"].to_list() == [False, False, True, False, False, False, False, True, False, False]
    assert got["censored"].to_list() == [False, False, False, False, True, False, False, False, False, False]


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
    got = default_spells(loaded.tables, config.labels.default, end)
    expected = (
        portfolio.ledger["credit_events"]
        .filter(pl.col("event_type").is_in(["insolvency", "payment_default"]))
        .select("buyer_id", default_on="event_on")
        .sort("buyer_id")
    )
    assert got.source == "credit_events"
    assert got.spells.select("buyer_id", "default_on").equals(expected)
    assert got.spells["cured_on"].is_null().all()  # a failed buyer stops trading: it never cures
    labelled = label_default_12m(portfolio.buyer_month_truth.select("buyer_id", "as_of_date"), got.spells, end)
    rows = labelled.join(portfolio.buyer_month_truth, on=["buyer_id", "as_of_date"]).drop_nulls("default_12m")
    assert rows.height > 0 and not labelled["in_default"].any()
    assert abs(rows["default_12m"].mean() - rows["pd_12m"].mean()) < 0.01
