"""Simulate 10,000 buyers over 36 months (goal: under 2 minutes on 2 cores).

    .venv/bin/python benchmarks/bench_simulate.py [--buyers 10000] [--months 36]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from measure import TRADECREDIT, measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buyers", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=36)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("parquet", "csv"):
            out = Path(tmp) / fmt
            m = measure([TRADECREDIT, "simulate", "--out", str(out), "--buyers", str(args.buyers),
                         "--months", str(args.months), "--format", fmt])
            summary = json.loads((out / "truth" / "summary.json").read_text())
            print(
                f"simulate {args.buyers:,} buyers x {args.months} months ({fmt}): {m.seconds:.1f} s, "
                f"peak memory {m.peak_rss_mb:,.0f} MB; {summary['invoices']:,} invoices, "
                f"{summary['payments']:,} payments, {summary['registry_events']:,} registry events"
            )


if __name__ == "__main__":
    main()
