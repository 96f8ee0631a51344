"""The installed ``tradecredit`` program, run as a user would, in a temporary workspace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl

from tests.conftest import GOOD_LEDGER, REPO, write_ledger

TRADECREDIT = str(Path(sys.executable).parent / "tradecredit")


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRADECREDIT_")} | (env or {})
    return subprocess.run([TRADECREDIT, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=300)


def test_demo_simulates_and_loads_with_zero_rejects(tmp_path):
    ws = tmp_path / "ws"
    result = run("--workspace", str(ws), "demo", "--buyers", "300", "--months", "18")
    assert result.returncode == 0, result.stderr
    assert "rows rejected in all: 0" in result.stdout
    assert "Demo complete." in result.stdout
    summary = json.loads((ws / "ledger" / "load_summary.json").read_text())
    assert summary["rows_rejected"] == 0
    assert summary["tables"]["buyers"]["accepted"] == 300
    assert (ws / "simulated" / "truth" / "buyer_month_pd.parquet").exists()
    assert pl.read_parquet(ws / "ledger" / "invoices.parquet").height == summary["tables"]["invoices"]["accepted"]


def test_simulate_csv_then_load_it(tmp_path):
    out, ws = tmp_path / "sim", tmp_path / "ws"
    sim = run("simulate", "--out", str(out), "--buyers", "200", "--months", "12", "--seed", "3", "--format", "csv")
    assert sim.returncode == 0, sim.stderr
    assert (out / "ledger" / "invoices.csv").exists() and (out / "truth" / "summary.json").exists()
    loaded = run("--workspace", str(ws), "load", str(out / "ledger"))
    assert loaded.returncode == 0, loaded.stderr
    assert "rows rejected in all: 0" in loaded.stdout
    assert {p.name for p in (ws / "ledger").glob("*.parquet")} >= {"buyers.parquet", "invoices.parquet", "payments.parquet"}


def test_workspace_comes_from_the_environment(tmp_path):
    ledger = write_ledger(tmp_path / "ledger", GOOD_LEDGER)
    ws = tmp_path / "env_ws"
    result = run("load", str(ledger), env={"TRADECREDIT_WORKSPACE": str(ws)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (ws / "ledger" / "load_summary.json").exists()
    assert not (tmp_path / "workspace").exists()


def test_default_workspace_is_under_the_current_folder(tmp_path):
    ledger = write_ledger(tmp_path / "ledger", GOOD_LEDGER)
    result = run("load", str(ledger), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "workspace" / "ledger" / "rejects.csv").exists()


def test_rejects_are_reported_and_strict_fails(tmp_path):
    tables = {k: list(v) for k, v in GOOD_LEDGER.items()}
    tables["invoices"] = tables["invoices"] + [GOOD_LEDGER["invoices"][0] | {"invoice_id": "I9", "amount": "-5"}]
    ledger = write_ledger(tmp_path / "ledger", tables)
    ws = tmp_path / "ws"
    lenient = run("--workspace", str(ws), "load", str(ledger))
    assert lenient.returncode == 0 and "non_positive:amount: 1" in lenient.stdout
    strict = run("--workspace", str(ws), "load", str(ledger), "--strict")
    assert strict.returncode == 1 and "rejects.csv" in strict.stderr
    rejects = pl.read_csv(ws / "ledger" / "rejects.csv")
    assert rejects["row_number"].to_list() == [len(GOOD_LEDGER["invoices"]) + 1]


def test_mapping_option(tmp_path):
    tables = {k: list(v) for k, v in GOOD_LEDGER.items()}
    tables["buyers"] = [{("customerID" if k == "buyer_id" else k): v for k, v in r.items()} for r in tables["buyers"]]
    ledger = write_ledger(tmp_path / "ledger", tables)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("tables:\n  buyers:\n    columns: {customerID: buyer_id}\n")
    result = run("--workspace", str(tmp_path / "ws"), "load", str(ledger), "--mapping", str(mapping))
    assert result.returncode == 0, result.stderr
    assert "rows rejected in all: 0" in result.stdout


def test_errors_are_messages_not_tracebacks(tmp_path):
    missing = run("--workspace", str(tmp_path / "ws"), "load", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: ledger folder") and "Traceback" not in missing.stderr

    ledger = write_ledger(tmp_path / "ledger", {"buyers": GOOD_LEDGER["buyers"]})
    no_invoices = run("--workspace", str(tmp_path / "ws"), "load", str(ledger))
    assert no_invoices.returncode == 2 and "invoices.csv or invoices.parquet is missing" in no_invoices.stderr

    configs = tmp_path / "configs"
    shutil.copytree(REPO / "configs", configs)
    text = (configs / "ledger.yaml").read_text().replace("settlement_tolerance", "settlement_tolerence")
    (configs / "ledger.yaml").write_text(text)
    bad_config = run("--config-dir", str(configs), "simulate", "--out", str(tmp_path / "x"))
    assert bad_config.returncode == 2 and "unknown key 'settlement_tolerence'" in bad_config.stderr
    assert "Traceback" not in bad_config.stderr

    bad_option = run("simulate", "--out", str(tmp_path / "x"), "--buyers", "0")
    assert bad_option.returncode == 2 and "key 'buyers'" in bad_option.stderr
