"""The default label on the tests' hand-made foreign ledgers (tests/foreign_ledgers.py), for
several seeds: the share of buyer-months labelled ``default_12m`` by the shipped definition's
days-past-due derivation, by the ledger's own yardstick (its credit events, or for the
invoice-only export the generator's recorded failures), and by the naive rule this replaced
(disputes counted, no materiality); and the derived defaulters against the yardstick's: the
share of them it has (precision) and the share of its defaulters found (recall; a failure too
close to the data's end to be 90 days past due counts as missed).

    .venv/bin/python benchmarks/foreign_ledger_labels.py [--seeds 1 2 3 4 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import date
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' generators

from tests.foreign_ledgers import agreement, write_disputed_ledger, write_invoice_only_export  # noqa: E402
from tradecredit.config import load_config  # noqa: E402
from tradecredit.features.build import calendar_dates  # noqa: E402
from tradecredit.features.labels import default_spells, label_default_12m  # noqa: E402
from tradecredit.ledger import load_ledger, load_mapping  # noqa: E402


def rate(tables: dict[str, pl.DataFrame], spells: pl.DataFrame, start: date, end: date) -> float:
    months = pl.DataFrame({"as_of_date": calendar_dates(start, end, "monthly")})
    rows = tables["buyers"].select("buyer_id").join(months, how="cross")
    return float(label_default_12m(rows, spells, end)["default_12m"].drop_nulls().cast(pl.Float64).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    args = parser.parse_args()
    cfg = load_config()
    shipped = cfg.labels.default.model_copy(update={"source": "days_past_due"})
    naive = shipped.model_copy(update={"exclude_disputed": False,
                                       "materiality": shipped.materiality.model_copy(update={"absolute": 0.0, "relative": 0.0, "small_balance": 0.0})})
    print(f"{'ledger':<34}{'seed':>5}{'derived':>10}{'yardstick':>11}{'naive':>9}{'precision':>11}{'recall':>8}")
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            for name, make in (("invoice-only export, 300 x 48", write_invoice_only_export),
                               ("disputes and slow payers, 300 x 44", write_disputed_ledger)):
                months = 48 if make is write_invoice_only_export else 44
                ledger = make(Path(tmp) / name.split(",")[0].replace(" ", "-"), buyers=300, months=months, seed=seed)
                mapping = load_mapping(ledger.mapping) if ledger.mapping else None
                loaded = load_ledger(ledger.folder, cfg.ledger, mapping)
                tables, start = loaded.tables, date.fromisoformat(loaded.summary.data_start)
                end = date.fromisoformat(loaded.summary.data_end)
                if "credit_events" in tables:
                    yardstick = default_spells(tables, shipped.model_copy(update={"source": "credit_events"}), end).spells
                else:
                    failures = ledger.failures
                    yardstick = pl.DataFrame({"buyer_id": list(failures), "default_on": list(failures.values()),
                                              "cured_on": [None] * len(failures)},
                                             schema={"buyer_id": pl.String, "default_on": pl.Date, "cured_on": pl.Date})
                derived = default_spells(tables, shipped, end).spells
                naive_spells = default_spells(tables, naive, end).spells
                precision, recall = agreement(set(derived["buyer_id"]), set(yardstick["buyer_id"]))
                print(f"{name:<34}{seed:>5}{rate(tables, derived, start, end):>10.2%}{rate(tables, yardstick, start, end):>11.2%}"
                      f"{rate(tables, naive_spells, start, end):>9.2%}{precision:>11.0%}{recall:>8.0%}")


if __name__ == "__main__":
    main()
