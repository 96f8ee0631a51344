"""The ledger stages: simulate a portfolio, and load a ledger folder into the workspace. Plain
functions that raise :class:`StageError`; the command line prints what they return."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tradecredit.config import PlatformConfig, describe_validation_error
from tradecredit.simulator_config import SimulatorConfig
from tradecredit.errors import StageError
from tradecredit.ledger import LedgerError, LoadSummary, format_summary, load_ledger, load_mapping, write_loaded_ledger
from tradecredit.simulator import SimulationPaths, simulate_portfolio, write_portfolio
from tradecredit.workspace import Workspace


def simulator_config(base: SimulatorConfig, **overrides: Any) -> SimulatorConfig:
    """``base`` with the options given (None leaves a value as configured), validated."""
    merged = base.model_dump() | {k: v for k, v in overrides.items() if v is not None}
    try:
        return SimulatorConfig.model_validate(merged)
    except ValidationError as exc:
        raise StageError(f"simulator options: {describe_validation_error(exc)}") from None


@dataclass(frozen=True)
class SimulationResult:
    summary: dict[str, Any]
    paths: SimulationPaths

    def describe(self) -> str:
        s = self.summary
        left_out = [f"tables {s['omitted_tables']}"] * bool(s["omitted_tables"]) + [
            f"columns {s['omitted_columns']}"
        ] * bool(s["omitted_columns"])

        def rate(key: str) -> str:
            return "n/a" if s[key] is None else f"{float(s[key]):.2%}"

        return (
            f"Simulated {s['buyers']:,} buyers, {s['sellers']} sellers, {s['months']} months ({s['start']} .. {s['data_end']}): "
            f"{s['invoices']:,} invoices, {s['payments']:,} payments, {s['registry_events']:,} registry events, "
            f"{s['financial_statements']:,} statements, {s['defaults']:,} defaults "
            f"(annual default rate {float(s['annual_default_rate']):.2%}, "
            f"{float(s['late_30d_share']):.1%} of invoices paid 30+ days late).\n"
            f"True 12-month default rate {rate('true_default_12m_rate')} of buyer-months with a year ahead; "
            f"{float(s['nondefaulting_buyers_90dpd_share']):.1%} of the buyers that never default had an invoice 90+ days "
            f"past due (a naive 90-days-past-due rule labels {rate('naive_dpd90_default_12m_rate')}): "
            f"{s['slow_payers']:,} slow payers, {s['long_disputes']:,} long disputes, "
            f"{s['small_invoices_unpaid']:,} small invoices never paid.\n"
            + (f"Left out of the ledger: {'; '.join(left_out)}.\n" if left_out else "")
            + f"Ledger: {self.paths.ledger_dir}\nTruth (never loaded): {self.paths.truth_dir}"
        )


def simulate(cfg: SimulatorConfig, out: Path) -> SimulationResult:
    """Simulate a portfolio and write its ledger and truth under ``out``."""
    portfolio = simulate_portfolio(cfg)
    return SimulationResult(portfolio.summary, write_portfolio(portfolio, out, cfg.output_format))


@dataclass(frozen=True)
class LoadResult:
    summary: LoadSummary
    folder: Path

    def describe(self) -> str:
        return f"{format_summary(self.summary)}\nNormalised tables, rejects.csv and load_summary.json: {self.folder}"


def load(cfg: PlatformConfig, ledger_dir: Path, ws: Workspace, mapping_file: Path | None = None) -> LoadResult:
    """Validate and normalise a ledger folder into the workspace (rejects and summary beside it)."""
    try:
        mapping = load_mapping(mapping_file) if mapping_file else None
        loaded = load_ledger(ledger_dir, cfg.ledger, mapping)
    except LedgerError as exc:
        raise StageError(str(exc)) from None
    return LoadResult(loaded.summary, write_loaded_ledger(loaded, ws.ledger))


def parse_start(text: str | None) -> date | None:
    if not text:  # an empty --start leaves the configured start, as no --start does
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise StageError(f"--start: '{text}' is not a date (YYYY-MM-01)") from None
