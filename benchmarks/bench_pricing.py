"""Insurance pricing on a workspace that has monitoring runs (the demo's, or a foreign ledger's
after the README's recipe): every seller's policy quote, the premium against the insured
expected loss, and the pricing backtest when a run is a year old.

    cd benchmarks && ../.venv/bin/python bench_pricing.py --workspace WS [--config-dir DIR]

Prints, over the sellers: premium / expected loss (median, range, share within the goal's
1.4-2.2x), the book's premium / expected loss, the loss ratio, the stress's loss ratio if not
repriced, the quote's time; then the backtest's realised loss ratio against its interval.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from tradecredit.config import default_config_dir, load_config
from tradecredit.errors import StageError
from tradecredit.insurance.pipeline import WhatIf, backtest_with_register, describe_backtest, quote_seller
from tradecredit.workspace import Workspace


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--config-dir", type=Path, default=None)
    args = parser.parse_args()
    cfg = load_config(args.config_dir or default_config_dir())
    ws = Workspace(args.workspace)
    tables = ws.read_ledger().tables
    sellers = sorted(tables["invoices"]["seller_id"].unique().to_list())
    ratios, premium, expected, stressed, seconds = [], 0.0, 0.0, 0.0, []
    for seller in sellers:
        started = time.perf_counter()
        try:
            q = quote_seller(cfg, ws, seller, None, WhatIf(), tables=tables)
        except StageError as exc:
            print(f"  {seller}: {exc}")
            continue
        seconds.append(time.perf_counter() - started)
        premium += q.quote.premium
        expected += q.quote.expected_loss
        stressed += q.stressed.expected_loss
        if q.quote.expected_loss > 0:
            ratios.append(q.quote.premium / q.quote.expected_loss)
    within = sum(1.4 <= r <= 2.2 for r in ratios)
    print(f"{len(ratios)} sellers quoted: premium / expected loss median {statistics.median(ratios):.2f}x, "
          f"range {min(ratios):.2f}-{max(ratios):.2f}x, {within} of {len(ratios)} within 1.4-2.2x")
    print(f"book: premium {premium:,.0f}, insured expected loss {expected:,.0f} ({premium / expected:.2f}x; loss ratio {expected / premium:.0%}); "
          f"stressed loss ratio if not repriced {stressed / premium:.0%}")
    print(f"one quote: median {statistics.median(seconds) * 1000:.0f} ms")
    try:
        for line in describe_backtest(backtest_with_register(cfg, ws, None)):
            print(line)
    except StageError as exc:
        print(f"no backtest: {exc}")


if __name__ == "__main__":
    main()
