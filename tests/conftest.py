"""Shared fixtures: the repository's config tree and a tiny, valid ledger folder builder."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tradecredit.config import PlatformConfig, load_config

REPO = Path(__file__).resolve().parent.parent

# A small ledger that passes every rule: each table's good rows.
GOOD_LEDGER: dict[str, list[dict[str, str]]] = {
    "buyers": [
        {"buyer_id": "B1", "country": "DE", "industry": "C", "legal_form": "LLC", "founded_on": "2010-05-01",
         "registered_capital": "50000", "paid_in_capital": "25000", "employees": "12"},
        {"buyer_id": "B2", "country": "fr", "industry": "G", "legal_form": "JSC", "founded_on": "",
         "registered_capital": "", "paid_in_capital": "", "employees": ""},
        {"buyer_id": "B3", "country": "IT", "industry": "F", "legal_form": "sole_proprietor", "founded_on": "2021-01-15",
         "registered_capital": "1000", "paid_in_capital": "1000", "employees": "0"},
    ],
    "invoices": [
        {"invoice_id": "I1", "buyer_id": "B1", "seller_id": "S1", "issued_on": "2024-01-10", "due_on": "2024-02-09",
         "amount": "1000", "disputed_on": "", "paid_on": ""},
        {"invoice_id": "I2", "buyer_id": "B2", "seller_id": "S2", "issued_on": "2024-01-15", "due_on": "2024-02-14",
         "amount": "500", "disputed_on": "", "paid_on": ""},
        {"invoice_id": "I3", "buyer_id": "B3", "seller_id": "", "issued_on": "2024-02-01", "due_on": "2024-03-02",
         "amount": "250", "disputed_on": "", "paid_on": "2024-03-01"},
        {"invoice_id": "I4", "buyer_id": "B1", "seller_id": "S2", "issued_on": "2024-03-01", "due_on": "2024-03-31",
         "amount": "800", "disputed_on": "2024-03-10", "paid_on": ""},
    ],
    "payments": [
        {"invoice_id": "I1", "paid_on": "2024-02-09", "amount": "1000"},
        {"invoice_id": "I2", "paid_on": "2024-02-20", "amount": "200"},
        {"invoice_id": "I2", "paid_on": "2024-03-20", "amount": "300"},
        {"invoice_id": "I4", "paid_on": "2024-04-15", "amount": "400"},
    ],
    "registry_events": [
        {"buyer_id": "B1", "event_on": "2024-01-05", "event_type": "lawsuit_filed", "detail": "supplier claim"},
        {"buyer_id": "B2", "event_on": "2024-02-01", "event_type": "executive_change", "detail": ""},
    ],
    "financials": [
        {"buyer_id": "B1", "period_end": "2023-12-31", "published_on": "2024-04-30", "revenue": "1000000",
         "total_assets": "800000", "total_liabilities": "500000", "equity": "300000"},
        {"buyer_id": "B2", "period_end": "2023-12-31", "published_on": "", "revenue": "250000",
         "total_assets": "", "total_liabilities": "", "equity": ""},
    ],
    "credit_events": [
        {"buyer_id": "B3", "event_on": "2024-06-01", "event_type": "payment_default"},
    ],
}


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    return path


def write_ledger(folder: Path, tables: dict[str, list[dict[str, str]]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        write_csv(folder / f"{name}.csv", rows)
    return folder


@pytest.fixture(scope="session")
def config() -> PlatformConfig:
    return load_config(REPO / "configs")


@pytest.fixture
def good_tables() -> dict[str, list[dict[str, str]]]:
    return {name: [dict(r) for r in rows] for name, rows in GOOD_LEDGER.items()}


def quick_config_dir(folder: Path, trials: int = 3, origins: int = 2) -> Path:
    """A copy of configs/ whose model searches are short: commands run as users run them,
    without minutes of tuning (the search itself is tested in tests/model). ``origins``: 1 for
    a test of the stages' wiring, which needs no spread over origins."""
    import shutil

    import yaml

    shutil.copytree(REPO / "configs", folder)
    training = yaml.safe_load((folder / "training.yaml").read_text(encoding="utf-8"))
    for model in ("default", "late"):
        training[model]["tuning"].update({"trials": trials, "timeout_seconds": 60, "max_rounds": 150})
        # A few hundred buyers leave a few dozen test events: ECE there is mostly noise, and the
        # demo's service step needs champions. The gate's ECE rule is tested in tests/integration/training.
        training[model]["max_ece"] = 0.05
        # Two origins and two cross-fitting folds: the procedure's shape, at half its fits (three
        # origins and three folds are trained in tests/model and the unit tests).
        training[model]["split"]["origins"] = origins
        training[model]["crossfit_folds"] = 2
        training[model]["gate"]["bootstrap_samples"] = 200
    (folder / "training.yaml").write_text(yaml.safe_dump(training), encoding="utf-8")
    return folder


# `make test` runs the suite on every core (pytest-xdist, --dist loadgroup). Tests that share a
# session fixture run in one worker, so the demo and the production servers start once; every
# other test runs with the rest of its module, so a module's fixtures are built once too (and the
# layer test's planted source file is never seen by another test).
XDIST_GROUPS = (("demo_run", "demo"), ("production_servers", "production"))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        group = next((name for fixture, name in XDIST_GROUPS if fixture in item.fixturenames), None)
        item.add_marker(pytest.mark.xdist_group(group or item.nodeid.split("::", 1)[0]))
