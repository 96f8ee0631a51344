"""Early warnings measured on history: monthly monitoring runs over a year whose 12 months have
matured, then the cases' and signals' precision, recall and lead time (the table
``tradecredit backtest`` prints), and the issue's goals against it.

    cd benchmarks && ../.venv/bin/python bench_warnings.py --workspace WS [--config-dir DIR] [--runs 13]

WS is a trained workspace (the demo's, or a foreign ledger's after the README's recipe). Its own
monitoring and limit register are left alone: the runs go to WS/../NAME-warnings, a workspace
that links to WS's ledger, features, models and tracking and has its own monitoring/ and credit/.
The champion was trained on labels up to about a year before the data end, so these runs score
months it has seen: PD-driven flags look better here than they would live.
"""

from __future__ import annotations

import argparse
import shutil
import time
from datetime import date
from pathlib import Path

import polars as pl

from tradecredit.config import default_config_dir, load_config
from tradecredit.features.labels import DEFAULT_HORIZON_DAYS
from tradecredit.monitoring.pipeline import compute_backtests, monitor
from tradecredit.workspace import Workspace

OWN = {"monitoring", "credit", "insurance", "serving", "console"}  # what a monitoring run writes


def scratch_workspace(source: Path) -> Path:
    """A workspace sharing ``source``'s inputs (links) with empty monitoring and register."""
    target = source.parent / f"{source.name}-warnings"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for entry in source.iterdir():
        if entry.name not in OWN:
            (target / entry.name).symlink_to(entry.resolve())
    return target


def month_starts(first: date, count: int) -> list[date]:
    out, y, m = [], first.year, first.month
    for _ in range(count):
        out.append(date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--config-dir", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=13, help="monthly runs ending a year before the data end")
    args = parser.parse_args()
    cfg = load_config(args.config_dir or default_config_dir())
    ws = Workspace(scratch_workspace(args.workspace.resolve()))
    end = ws.built_as_of()
    last = date.fromordinal(end.toordinal() - DEFAULT_HORIZON_DAYS)
    first_year, first_month = divmod(last.year * 12 + last.month - 1 - (args.runs - 1), 12)
    dates = month_starts(date(first_year, first_month + 1, 1), args.runs)
    started = time.perf_counter()
    opened_red = []
    for day in dates:
        result = monitor(cfg, ws, day)
        c = result.cases
        opened_red.append((day, c.open_red, c.open_yellow, c.open_listed, c.opened, result.summary["active_buyers"]))
    seconds = time.perf_counter() - started
    print(f"{len(dates)} monthly runs {dates[0]} .. {dates[-1]} in {seconds:.0f} s (data end {end}); workspace {ws.root}")
    for day, red, yellow, listed, opened, active in opened_red:
        print(f"  {day}: open cases red {red}, yellow {yellow}, listed {listed} ({opened} opened this run) of {active:,} active buyers")
    found = compute_backtests(cfg, ws, ws.read_ledger().tables, end).cases
    for line in found.describe():
        print(line)
    table = {r["flag"]: r for r in found.table.to_dicts()}
    red, any_case = table.get("case red"), table.get("case (any colour)")
    red_list = found.red_list
    mean_ratio = red_list["red_over_expected"].mean()
    print("Goals:")
    if red and found.base_rate:
        print(f"  red precision {red['precision']:.1%} = {red['precision'] / found.base_rate:.1f}x the base rate {found.base_rate:.2%} (goal 5x)")
    if any_case and any_case["recall_at_lead"] is not None:
        print(f"  defaults flagged (any colour) at least {found.lead_days} days before: {any_case['recall_at_lead']:.0%} (goal 60%)")
    print(f"  red list / expected defaults: mean {mean_ratio:.2f}x over the runs (goal at most 2x in a calm year); "
          f"excluding buyers already in default {(red_list['red'] - red_list['red_in_default']).sum() / red_list['expected_defaults'].sum():.2f}x")
    new_red = pl.DataFrame(opened_red, schema=["as_of", "red", "yellow", "listed", "opened", "active"], orient="row")
    print(f"  open red cases per 1,000 active buyers: mean {(new_red['red'] / new_red['active']).mean() * 1000:.1f}")


if __name__ == "__main__":
    main()
