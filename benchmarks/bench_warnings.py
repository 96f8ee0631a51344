"""Early warnings measured on history: monthly monitoring runs over a year whose 12 months have
matured, then the cases' and signals' precision, recall and lead time (the table
``tradecredit backtest`` prints), and the issue's goals against it.

    cd benchmarks && ../.venv/bin/python bench_warnings.py --workspace WS [--config-dir DIR] [--runs 13]
    cd benchmarks && ../.venv/bin/python bench_warnings.py --foreign disputed|invoice-only --workspace WS
        [--buyers 1500] [--months 44] [--seed 1]

WS is a trained workspace (the demo's, or a foreign ledger's after the README's recipe). With
``--foreign``, WS is made first: a ledger from the tests' own generators (tests/foreign_ledgers.py,
not the simulator) taken through the README's recipe up to ``promote`` (``--override`` when the
gate refuses a small book), with the labels the foreign-ledger tests use. Its own
monitoring and limit register are left alone: the runs go to WS/../NAME-warnings, a workspace
that links to WS's ledger, features, models and tracking and has its own monitoring/ and credit/.
The champion was trained on labels up to about a year before the data end, so these runs score
months it has seen: PD-driven flags look better here than they would live.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl
import yaml
from measure import TRADECREDIT

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' foreign-ledger generators

from tests.foreign_ledgers import write_disputed_ledger, write_invoice_only_export  # noqa: E402
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


def foreign_workspace(kind: str, ws: Path, buyers: int, months: int, seed: int) -> Path:
    """A trained workspace on a foreign ledger: the README's recipe up to ``promote``. Returns its config dir."""
    if ws.exists() and any(ws.iterdir()):
        raise SystemExit(f"--foreign makes {ws} from scratch: give a directory that does not exist or is empty")
    ws.mkdir(parents=True, exist_ok=True)
    configs = ws.parent / f"{ws.name}-configs"
    shutil.rmtree(configs, ignore_errors=True)
    shutil.copytree(default_config_dir(), configs)
    labels = yaml.safe_load((configs / "labels.yaml").read_text(encoding="utf-8"))
    if kind == "invoice-only":  # as the foreign-ledger tests: paid dates only, late means paid after due at all
        ledger = write_invoice_only_export(ws / "export", buyers=buyers, months=months, seed=seed)
        labels["late_days"] = 0
    else:  # disputes, slow payers, small unpaid items; the default derived from days past due
        ledger = write_disputed_ledger(ws / "export", buyers=buyers, months=months, seed=seed)
        labels["default"]["source"] = "days_past_due"
    (configs / "labels.yaml").write_text(yaml.safe_dump(labels), encoding="utf-8")
    base = [TRADECREDIT, "--workspace", str(ws / "ws"), "--config-dir", str(configs)]
    steps = [["load", str(ledger.folder), *(["--mapping", str(ledger.mapping)] if ledger.mapping else [])],
             ["features", "build"], ["features", "apply"], ["features", "materialize"],
             ["features", "training-set", "default"], ["features", "training-set", "late"]]
    for model in ("default", "late"):
        steps += [["train", model], ["promote", model]]
    for step in steps:
        done = subprocess.run([*base, *step], capture_output=True, text=True)
        if done.returncode == 1 and step[0] == "promote":  # a small book's refusal, stated and overridden
            said = (done.stdout + done.stderr).strip().splitlines()
            print(f"{' '.join(step)}: refused; promoted with --override" + (f"\n  {said[-1]}" if said else ""))
            done = subprocess.run([*base, *step, "--override", "benchmark: a foreign ledger's warnings"], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"tradecredit {' '.join(step)} failed:\n{done.stdout}{done.stderr}")
        if step[0] == "train":
            print(done.stdout.strip().splitlines()[0])
    return configs


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
    parser.add_argument("--foreign", choices=["disputed", "invoice-only"], default=None,
                        help="make WS first from the tests' foreign-ledger generator of that kind")
    parser.add_argument("--buyers", type=int, default=1500)
    parser.add_argument("--months", type=int, default=44)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    source = args.workspace.resolve()
    config_dir = args.config_dir
    if args.foreign and config_dir:
        parser.error("--foreign writes its own config dir (the foreign-ledger tests' labels): leave out --config-dir")
    if args.foreign:
        config_dir = foreign_workspace(args.foreign, source, args.buyers, args.months, args.seed)
        source = source / "ws"
    cfg = load_config(config_dir or default_config_dir())
    ws = Workspace(scratch_workspace(source))
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
        print(f"  buyers that defaulted flagged (any colour) at least {found.lead_days} days before: "
              f"{any_case['buyer_recall_at_lead']:.0%} of {found.defaulted_buyers_at_lead} (goal 60%); "
              f"in buyer-runs {any_case['recall_at_lead']:.0%}")
    print(f"  red list / expected defaults: mean {mean_ratio:.2f}x over the runs (goal at most 2x in a calm year); "
          f"excluding buyers already in default {(red_list['red'] - red_list['red_in_default']).sum() / red_list['expected_defaults'].sum():.2f}x")
    new_red = pl.DataFrame(opened_red, schema=["as_of", "red", "yellow", "listed", "opened", "active"], orient="row")
    print(f"  open red cases per 1,000 active buyers: mean {(new_red['red'] / new_red['active']).mean() * 1000:.1f}")


if __name__ == "__main__":
    main()
