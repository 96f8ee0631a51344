"""Load 2 million invoices with their payments (goal: under 60 s, peak memory under 4 GB, 2 cores).

Simulates a portfolio big enough for the invoice count, writes it as CSV and as Parquet, then
times ``tradecredit load`` on each in a fresh process.

    .venv/bin/python benchmarks/bench_load.py [--invoices 2000000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from measure import TRADECREDIT, measure

# Invoices per buyer over 36 months with the default simulator configuration (measured: about 143).
INVOICES_PER_BUYER = 143


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=2_000_000)
    args = parser.parse_args()
    buyers = args.invoices // INVOICES_PER_BUYER + 1
    print(f"cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("csv", "parquet"):
            sim = Path(tmp) / f"sim_{fmt}"
            measure([TRADECREDIT, "simulate", "--out", str(sim), "--buyers", str(buyers), "--format", fmt])
            ws = Path(tmp) / f"ws_{fmt}"
            m = measure([TRADECREDIT, "--workspace", str(ws), "load", str(sim / "ledger")])
            summary = json.loads((ws / "ledger" / "load_summary.json").read_text())
            tables = summary["tables"]
            size_mb = sum(p.stat().st_size for p in (sim / "ledger").iterdir()) / 2**20
            print(
                f"load {fmt} ({size_mb:,.0f} MB on disk): {tables['invoices']['rows_read']:,} invoices, "
                f"{tables['payments']['rows_read']:,} payments, {summary['rows_rejected']} rejected: "
                f"{m.seconds:.1f} s, peak memory {m.peak_rss_mb:,.0f} MB"
            )


if __name__ == "__main__":
    main()
