"""Ledger loader: every contract rule rejects its bad row and keeps every good one."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import GOOD_LEDGER, write_csv, write_ledger
from tradecredit.ledger import LedgerError, LedgerMapping, TableMapping, load_ledger, load_mapping, write_loaded_ledger

GOOD_COUNTS = {name: len(rows) for name, rows in GOOD_LEDGER.items()}


def _row(table: str, **changes: str) -> dict[str, str]:
    """A copy of the table's first good row with some values changed."""
    return GOOD_LEDGER[table][0] | changes


# (table, bad row appended after the good ones, reason code it must be rejected with)
RULE_CASES = [
    ("buyers", _row("buyers", buyer_id=""), "missing:buyer_id"),
    ("buyers", _row("buyers"), "duplicate_key:buyer_id"),
    ("buyers", _row("buyers", buyer_id="B9", country="Germany"), "bad_country"),
    ("buyers", _row("buyers", buyer_id="B9", registered_capital="-5"), "negative:registered_capital"),
    ("buyers", _row("buyers", buyer_id="B9", paid_in_capital="-1"), "negative:paid_in_capital"),
    ("buyers", _row("buyers", buyer_id="B9", employees="-2"), "negative:employees"),
    ("buyers", _row("buyers", buyer_id="B9", employees="2.5"), "not_an_integer:employees"),
    ("buyers", _row("buyers", buyer_id="B9", employees="many"), "not_a_number:employees"),
    ("buyers", _row("buyers", buyer_id="B9", registered_capital="inf"), "not_a_number:registered_capital"),
    ("buyers", _row("buyers", buyer_id="B9", founded_on="2020-13-01"), "bad_date:founded_on"),
    ("invoices", _row("invoices", invoice_id=""), "missing:invoice_id"),
    ("invoices", _row("invoices", invoice_id="I9", buyer_id=""), "missing:buyer_id"),
    ("invoices", _row("invoices"), "duplicate_key:invoice_id"),
    ("invoices", _row("invoices", invoice_id="I9", issued_on="yesterday"), "bad_date:issued_on"),
    ("invoices", _row("invoices", invoice_id="I9", issued_on="2024-02-30"), "bad_date:issued_on"),
    ("invoices", _row("invoices", invoice_id="I9", due_on=""), "missing:due_on"),
    ("invoices", _row("invoices", invoice_id="I9", amount="0"), "non_positive:amount"),
    ("invoices", _row("invoices", invoice_id="I9", amount="-10"), "non_positive:amount"),
    ("invoices", _row("invoices", invoice_id="I9", amount="abc"), "not_a_number:amount"),
    ("invoices", _row("invoices", invoice_id="I9", due_on="2024-01-01"), "due_before_issue"),
    ("invoices", _row("invoices", invoice_id="I9", buyer_id="B404"), "unknown_buyer:buyer_id"),
    ("invoices", _row("invoices", invoice_id="I9", disputed_on="2024-01-01"), "disputed_before_issue"),
    ("invoices", _row("invoices", invoice_id="I9", paid_on="2024-01-01"), "payment_before_issue:paid_on"),
    ("payments", _row("payments", invoice_id="I404"), "unknown_invoice:invoice_id"),
    ("payments", _row("payments", paid_on="2024-01-01"), "payment_before_issue"),
    ("payments", _row("payments", amount="0"), "non_positive:amount"),
    ("payments", _row("payments", paid_on="2024/02/01"), "bad_date:paid_on"),
    ("payments", _row("payments", paid_on=""), "missing:paid_on"),
    ("registry_events", _row("registry_events", buyer_id="B404"), "unknown_buyer:buyer_id"),
    ("registry_events", _row("registry_events", event_type=""), "missing:event_type"),
    ("registry_events", _row("registry_events", event_on="soon"), "bad_date:event_on"),
    ("financials", _row("financials", buyer_id="B404"), "unknown_buyer:buyer_id"),
    ("financials", _row("financials", period_end="2024-12-31"), "published_before_period_end"),
    ("financials", _row("financials", period_end="2022-12-31", revenue="lots"), "not_a_number:revenue"),
    ("financials", _row("financials"), "duplicate_key:buyer_id+period_end+published_on"),
    ("credit_events", _row("credit_events", event_type="bankrupt"), "unknown_credit_event_type"),
    ("credit_events", _row("credit_events", buyer_id="B404"), "unknown_buyer:buyer_id"),
    ("credit_events", _row("credit_events"), "duplicate_key:buyer_id+event_on+event_type"),
]


@pytest.mark.parametrize(("table", "bad_row", "code"), RULE_CASES, ids=[f"{t}-{c}" for t, _, c in RULE_CASES])
def test_rule_rejects_bad_row_and_keeps_good_ones(tmp_path, config, good_tables, table, bad_row, code):
    good_tables[table].append(bad_row)
    loaded = load_ledger(write_ledger(tmp_path / "ledger", good_tables), config.ledger)

    rejects = loaded.rejects
    assert rejects.height == 1, rejects
    reject = rejects.row(0, named=True)
    assert reject["table"] == table
    assert reject["source_file"] == f"{table}.csv"
    assert reject["row_number"] == GOOD_COUNTS[table] + 1
    assert code in reject["reason_codes"].split(";")
    assert reject["reasons"]  # a sentence a person can act on
    for name, count in GOOD_COUNTS.items():
        assert loaded.summary.tables[name].accepted == count, name
    assert loaded.summary.tables[table].reasons == {code: 1}


def test_clean_ledger_has_no_rejects(tmp_path, config, good_tables):
    loaded = load_ledger(write_ledger(tmp_path / "ledger", good_tables), config.ledger)
    assert loaded.rejects.height == 0
    assert {n: t.accepted for n, t in loaded.summary.tables.items()} == GOOD_COUNTS
    assert loaded.summary.data_start == "2024-01-05"
    assert loaded.summary.data_end == "2024-06-01"


def test_settlement_and_outstanding_are_derived_from_payments(tmp_path, config, good_tables):
    loaded = load_ledger(write_ledger(tmp_path / "ledger", good_tables), config.ledger)
    inv = {r["invoice_id"]: r for r in loaded.tables["invoices"].iter_rows(named=True)}
    assert inv["I1"]["settled_on"] == date(2024, 2, 9)
    # Partial payments: settled when the second instalment reaches the amount.
    assert inv["I2"]["settled_on"] == date(2024, 3, 20)
    # The paid_on shorthand is one payment of the full amount.
    assert inv["I3"]["settled_on"] == date(2024, 3, 1)
    assert inv["I4"]["settled_on"] is None
    assert inv["I4"]["outstanding_amount"] == pytest.approx(400.0)
    assert inv["I1"]["terms_days"] == 30
    assert inv["I3"]["seller_id"] == config.ledger.default_seller_id
    payments = loaded.tables["payments"]
    assert payments.filter(pl.col("invoice_id") == "I3")["source"].to_list() == ["invoice_paid_on"]
    assert payments.height == GOOD_COUNTS["payments"] + 1
    assert loaded.tables["buyers"].filter(pl.col("buyer_id") == "B2")["country"].item() == "FR"


def test_paid_on_with_payment_rows_rejects_invoice_and_its_payments(tmp_path, config, good_tables):
    good_tables["invoices"][0]["paid_on"] = "2024-02-09"  # I1 also has a payment row
    loaded = load_ledger(write_ledger(tmp_path / "ledger", good_tables), config.ledger)
    by_table = {r["table"]: r for r in loaded.rejects.iter_rows(named=True)}
    assert by_table["invoices"]["reason_codes"] == "paid_on_and_payments"
    assert by_table["payments"]["reason_codes"] == "rejected_invoice:invoice_id"
    assert loaded.rejects.height == 2
    assert "I1" not in loaded.tables["invoices"]["invoice_id"].to_list()


def test_rows_of_a_rejected_buyer_say_so(tmp_path, config, good_tables):
    good_tables["buyers"][2]["country"] = "Italy"  # B3 rejected
    loaded = load_ledger(write_ledger(tmp_path / "ledger", good_tables), config.ledger)
    reasons = {(r["table"], r["reason_codes"]) for r in loaded.rejects.iter_rows(named=True)}
    assert reasons == {
        ("buyers", "bad_country"),
        ("invoices", "rejected_buyer:buyer_id"),
        ("credit_events", "rejected_buyer:buyer_id"),
    }
    # The payment-less shorthand invoice went with its buyer; nothing else was lost.
    assert loaded.summary.tables["payments"].rejected == 0


def test_row_with_several_faults_lists_them_all(tmp_path, config, good_tables):
    good_tables["invoices"].append(_row("invoices", invoice_id="I9", amount="-1", buyer_id="B404"))
    loaded = load_ledger(write_ledger(tmp_path / "ledger", good_tables), config.ledger)
    codes = set(loaded.rejects["reason_codes"].item().split(";"))
    assert codes == {"non_positive:amount", "unknown_buyer:buyer_id"}
    record = json.loads(loaded.rejects["record"].item())
    assert record["invoice_id"] == "I9" and record["amount"] == "-1"


def test_unknown_registry_type_is_kept_as_other_and_counted(tmp_path, config, good_tables):
    good_tables["registry_events"].append(_row("registry_events", event_type="ceo_arrested"))
    good_tables["registry_events"].append(_row("registry_events", event_type="Negative_News"))
    loaded = load_ledger(write_ledger(tmp_path / "ledger", good_tables), config.ledger)
    events = loaded.tables["registry_events"]
    assert events.height == GOOD_COUNTS["registry_events"] + 2
    assert loaded.rejects.height == 0
    other = events.filter(pl.col("event_type") == "other")
    assert other["event_type_raw"].to_list() == ["ceo_arrested"]
    assert "negative_news" in events["event_type"].to_list()
    assert loaded.summary.other_event_types == {"ceo_arrested": 1}


def test_missing_publication_date_uses_configured_lag(tmp_path, config, good_tables):
    loaded = load_ledger(write_ledger(tmp_path / "ledger", good_tables), config.ledger)
    b2 = loaded.tables["financials"].filter(pl.col("buyer_id") == "B2").row(0, named=True)
    lag = config.ledger.financials_publication_lag_days
    assert (b2["published_on"] - b2["period_end"]).days == lag
    assert b2["published_on_assumed"] is True


def test_missing_required_column_names_file_and_column(tmp_path, config, good_tables):
    folder = write_ledger(tmp_path / "ledger", good_tables)
    rows = [{k: v for k, v in r.items() if k != "amount"} for r in good_tables["invoices"]]
    write_csv(folder / "invoices.csv", rows)
    with pytest.raises(LedgerError, match=r"invoices\.csv: missing required column\(s\) amount"):
        load_ledger(folder, config.ledger)


def test_missing_required_file_is_named(tmp_path, config, good_tables):
    folder = write_ledger(tmp_path / "ledger", good_tables)
    (folder / "invoices.csv").unlink()
    with pytest.raises(LedgerError, match=r"required file invoices\.csv or invoices\.parquet is missing"):
        load_ledger(folder, config.ledger)


def test_optional_tables_may_be_absent(tmp_path, config, good_tables):
    folder = write_ledger(tmp_path / "ledger", {k: good_tables[k] for k in ("buyers", "invoices")})
    loaded = load_ledger(folder, config.ledger)
    assert set(loaded.tables) == {"buyers", "invoices", "payments"}
    assert loaded.tables["payments"].height == 1  # the paid_on shorthand of I3


def test_empty_file_is_an_error_naming_it(tmp_path, config, good_tables):
    folder = write_ledger(tmp_path / "ledger", good_tables)
    (folder / "payments.csv").write_text("")
    with pytest.raises(LedgerError, match=r"payments\.csv is empty"):
        load_ledger(folder, config.ledger)


def test_header_only_file_loads_zero_rows(tmp_path, config, good_tables):
    folder = write_ledger(tmp_path / "ledger", good_tables)
    (folder / "registry_events.csv").write_text("buyer_id,event_on,event_type,detail\n")
    loaded = load_ledger(folder, config.ledger)
    assert loaded.summary.tables["registry_events"].rows_read == 0


def test_wrong_extension_is_an_error_naming_it(tmp_path, config, good_tables):
    folder = write_ledger(tmp_path / "ledger", good_tables)
    (folder / "invoices.csv").rename(folder / "invoices.xlsx")
    with pytest.raises(LedgerError, match=r"invoices\.xlsx: unsupported file type '\.xlsx'"):
        load_ledger(folder, config.ledger)


def test_csv_and_parquet_of_one_table_is_ambiguous(tmp_path, config, good_tables):
    folder = write_ledger(tmp_path / "ledger", good_tables)
    pl.read_csv(folder / "buyers.csv").write_parquet(folder / "buyers.parquet")
    with pytest.raises(LedgerError, match="both buyers.csv and buyers.parquet"):
        load_ledger(folder, config.ledger)


def test_other_files_are_ignored_and_listed(tmp_path, config, good_tables):
    folder = write_ledger(tmp_path / "ledger", good_tables)
    (folder / "README.txt").write_text("export notes")
    loaded = load_ledger(folder, config.ledger)
    assert loaded.summary.ignored_files == ["README.txt"]


def test_mapping_renames_columns_and_parses_custom_dates(tmp_path, config, good_tables):
    folder = tmp_path / "export"
    write_ledger(folder, good_tables)
    buyers = [{("customerID" if k == "buyer_id" else k): v for k, v in r.items()} for r in good_tables["buyers"]]
    write_csv(folder / "buyers.csv", buyers)
    invoices = []
    for r in good_tables["invoices"]:
        r = dict(r)
        for col in ("issued_on", "due_on", "disputed_on", "paid_on"):
            if r[col]:
                y, m, d = r[col].split("-")
                r[col] = f"{d}/{m}/{y}"
        invoices.append({("customerID" if k == "buyer_id" else k): v for k, v in r.items()})
    write_csv(folder / "invoices.csv", invoices)
    mapping_file = tmp_path / "mapping.yaml"
    mapping_file.write_text(
        "tables:\n"
        "  buyers:\n    columns: {customerID: buyer_id}\n"
        "  invoices:\n    columns: {customerID: buyer_id}\n    date_format: '%d/%m/%Y'\n"
    )
    loaded = load_ledger(folder, config.ledger, load_mapping(mapping_file))
    assert loaded.rejects.height == 0
    i1 = loaded.tables["invoices"].filter(pl.col("invoice_id") == "I1").row(0, named=True)
    assert i1["issued_on"] == date(2024, 1, 10) and i1["buyer_id"] == "B1"


def test_mapping_with_unknown_target_column_is_refused(tmp_path):
    mapping_file = tmp_path / "mapping.yaml"
    mapping_file.write_text("tables:\n  buyers:\n    columns: {customerID: buyer_key}\n")
    with pytest.raises(LedgerError, match="buyer_key"):
        load_mapping(mapping_file)


def test_mapping_with_unknown_key_is_refused(tmp_path):
    mapping_file = tmp_path / "mapping.yaml"
    mapping_file.write_text("tabels:\n  buyers: {}\n")
    with pytest.raises(LedgerError, match="tabels"):
        load_mapping(mapping_file)


def test_mapped_source_column_must_exist(tmp_path, config, good_tables):
    folder = write_ledger(tmp_path / "ledger", good_tables)
    mapping = LedgerMapping(tables={"buyers": TableMapping(columns={"customerID": "buyer_id"})})
    with pytest.raises(LedgerError, match="customerID"):
        load_ledger(folder, config.ledger, mapping)


def test_timestamps_are_cut_to_their_utc_date(tmp_path, config, good_tables):
    good_tables["invoices"][0]["issued_on"] = "2024-01-09T23:30:00-05:00"  # 04:30 UTC on the 10th
    good_tables["invoices"][1]["issued_on"] = "2024-01-15T10:00:00Z"
    good_tables["invoices"][3]["issued_on"] = "2024-03-01 08:00:00"
    loaded = load_ledger(write_ledger(tmp_path / "ledger", good_tables), config.ledger)
    issued = dict(loaded.tables["invoices"].select("invoice_id", "issued_on").iter_rows())
    assert issued["I1"] == date(2024, 1, 10)
    assert issued["I2"] == date(2024, 1, 15)
    assert issued["I4"] == date(2024, 3, 1)
    assert loaded.rejects.height == 0


def test_parquet_with_typed_columns(tmp_path, config, good_tables):
    folder = write_ledger(tmp_path / "ledger", good_tables)
    (folder / "invoices.csv").unlink()
    invoices = pl.DataFrame(good_tables["invoices"]).with_columns(
        pl.col("amount").cast(pl.Float64),
        pl.col("due_on").str.to_date(),
        # A zoned timestamp column: cut to its UTC date.
        issued_on=pl.Series(
            [datetime(2024, 1, 10, 1, 0, tzinfo=timezone.utc)] * 4, dtype=pl.Datetime("us", "Europe/Berlin")
        ),
    )
    invoices.write_parquet(folder / "invoices.parquet")
    loaded = load_ledger(folder, config.ledger)
    assert loaded.tables["invoices"]["issued_on"].to_list() == [date(2024, 1, 10)] * 4
    assert loaded.summary.tables["invoices"].file == "invoices.parquet"


def test_written_outputs(tmp_path, config, good_tables):
    good_tables["payments"].append(_row("payments", invoice_id="I404"))
    loaded = load_ledger(write_ledger(tmp_path / "ledger", good_tables), config.ledger)
    out = write_loaded_ledger(loaded, tmp_path / "ws" / "ledger")
    rejects = pl.read_csv(out / "rejects.csv")
    assert rejects.columns == ["table", "source_file", "row_number", "reason_codes", "reasons", "record"]
    assert rejects.height == 1 and rejects["row_number"].item() == GOOD_COUNTS["payments"] + 1
    summary = json.loads((out / "load_summary.json").read_text())
    assert summary["tables"]["payments"] == {
        "file": "payments.csv",
        "rows_read": GOOD_COUNTS["payments"] + 1,
        "accepted": GOOD_COUNTS["payments"],
        "rejected": 1,
        "reasons": {"unknown_invoice:invoice_id": 1},
        "ignored_columns": [],
    }
    assert summary["rows_rejected"] == 1
    invoices = pl.read_parquet(out / "invoices.parquet")
    assert invoices.schema["issued_on"] == pl.Date
    assert {"settled_on", "outstanding_amount", "paid_amount", "terms_days"} <= set(invoices.columns)


def test_invalid_utf8_stops_the_load_naming_the_file(tmp_path, config, good_tables):
    folder = write_ledger(tmp_path / "ledger", good_tables)
    (folder / "buyers.csv").write_bytes(b"buyer_id,country\nB1,DE\nB\xff2,FR\n")
    with pytest.raises(LedgerError, match=r"buyers\.csv cannot be read"):
        load_ledger(folder, config.ledger)


def test_missing_folder_is_an_error(tmp_path, config):
    with pytest.raises(LedgerError, match="does not exist"):
        load_ledger(Path(tmp_path / "nope"), config.ledger)
