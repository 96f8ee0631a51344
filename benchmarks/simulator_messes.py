"""What the simulator's messes (long disputes, slow payers, small invoices left unpaid) do to the
labels: the figures of docs/simulator.md#what-the-default-configuration-gives.

    .venv/bin/python benchmarks/simulator_messes.py [--buyers 5000] [--seeds 7 1 2 3 4 5]

Prints, for the shipped configs/simulator.yaml: each seed's summary figures; for the first seed
each mess alone; and for the first seed, with and without the messes, the labels derived
through the data contract (load, then features/labels.py) against the truth, under the shipped
default definition (configs/labels.yaml: credit events, which the simulator writes), under its
days-past-due derivation alone (what a ledger without credit events gets), and under that
derivation made naive (no materiality, disputes counted, no cure).
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import date
from pathlib import Path

from sklearn.metrics import roc_auc_score

from tradecredit.config import load_config
from tradecredit.features.config import DefaultDefinition
from tradecredit.features.labels import default_spells, label_default_12m, label_late
from tradecredit.ledger import load_ledger
from tradecredit.simulator import simulate_portfolio, write_portfolio
from tradecredit.simulator_config import SimulatorConfig

REPO = Path(__file__).resolve().parent.parent
MESSES = ("long_disputes", "slow_payers", "small_invoices_unpaid")
SHOWN = (
    ("true_default_12m_rate", "true 12m default rate", "{:.2%}"),
    ("naive_dpd90_default_12m_rate", "naive 90 DPD label rate", "{:.2%}"),
    ("nondefaulting_buyers_90dpd_share", "non-defaulting buyers 90+ DPD", "{:.1%}"),
    ("late_30d_share", "late_30d", "{:.2%}"),
    ("mean_true_p_late_30d", "mean true p_late_30d", "{:.2%}"),
    ("slow_payers", "slow payers", "{:,}"),
    ("slow_payers_defaulted", "of them defaulted", "{:,}"),
    ("defaults", "defaults", "{:,}"),
    ("long_disputes", "long disputes", "{:,}"),
    ("small_invoices_unpaid", "small invoices unpaid", "{:,}"),
)


def _with_messes(cfg: SimulatorConfig, keep: tuple[str, ...]) -> SimulatorConfig:
    payments = cfg.payments.model_dump() | {m: None for m in MESSES if m not in keep}
    return SimulatorConfig.model_validate(cfg.model_dump() | {"payments": payments})


def _definitions(shipped: DefaultDefinition) -> dict[str, DefaultDefinition]:
    derived = shipped.model_copy(update={"source": "days_past_due"})
    naive = derived.model_copy(
        update={"materiality": shipped.materiality.model_copy(update={"absolute": 0.0, "relative": 0.0, "small_balance": 0.0}),
                "exclude_disputed": False, "probation_days": 100_000}
    )
    return {"shipped (source auto)": shipped, "days past due, shipped rules": derived, "days past due, naive": naive}


def _line(name: str, summary: dict) -> str:
    return f"{name:32s} " + "; ".join(f"{label} {fmt.format(summary[key])}" for key, label, fmt in SHOWN)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buyers", type=int, default=5000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 1, 2, 3, 4, 5])
    args = parser.parse_args()
    cfg = load_config(REPO / "configs")
    base = SimulatorConfig.model_validate(cfg.simulator.model_dump() | {"buyers": args.buyers})

    print("== the shipped configuration, by seed")
    for seed in args.seeds:
        print(_line(f"seed {seed}", simulate_portfolio(base.model_copy(update={"seed": seed})).summary))

    first = base.model_copy(update={"seed": args.seeds[0]})
    print(f"\n== seed {args.seeds[0]}, one mess at a time")
    for keep in ((), *((m,) for m in MESSES), MESSES):
        name = "all three (shipped)" if keep == MESSES else (keep[0] if keep else "none")
        print(_line(name, simulate_portfolio(_with_messes(first, keep)).summary))

    print(f"\n== seed {args.seeds[0]}, labels through the contract (tradecredit load, features/labels.py)")
    for keep in (MESSES, ()):
        portfolio = simulate_portfolio(_with_messes(first, keep))
        with tempfile.TemporaryDirectory() as tmp:
            loaded = load_ledger(write_portfolio(portfolio, Path(tmp), "parquet").ledger_dir, cfg.ledger)
        end = date.fromisoformat(loaded.summary.data_end)
        mess = "with the messes" if keep else "without"
        late = label_late(loaded.tables["invoices"], 30, end).drop_nulls("late_30d").join(portfolio.invoice_truth, on="invoice_id")
        print(
            f"{mess}: true 12m default rate {portfolio.summary['true_default_12m_rate']:.2%}; late_30d "
            f"{late['late_30d'].mean():.2%} (mean truth {late['p_late_30d'].mean():.2%}), "
            f"oracle AUC {roc_auc_score(late['late_30d'], late['p_late_30d']):.3f}"
        )
        for name, definition in _definitions(cfg.labels.default).items():
            spells = default_spells(loaded.tables, definition, end)
            labelled = label_default_12m(portfolio.buyer_month_truth.select("buyer_id", "as_of_date"), spells.spells, end)
            rows = labelled.join(portfolio.buyer_month_truth, on=["buyer_id", "as_of_date"]).drop_nulls("default_12m")
            print(
                f"  {name:30s} default_12m label rate {rows['default_12m'].mean():.2%}, "
                f"{int(labelled['in_default'].sum()):,} buyer-months in default, "
                f"oracle AUC {roc_auc_score(rows['default_12m'], rows['pd_12m']):.3f}, {spells.counts()}"
            )


if __name__ == "__main__":
    main()
