"""What the limit register costs a request: filing, approving and reading a line, on a register
of many lines (SQLite in a temporary folder, as the workspace keeps it).

    cd benchmarks && ../.venv/bin/python bench_register.py [--lines 10000] [--reads 2000]

Prints the time per operation (median and p99) and the file's size.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from tradecredit.config import load_config
from tradecredit.credit.desk import PolicyView, Reviewer, decide_request, file_request
from tradecredit.sql_stores import sqlite_url
from tradecredit.credit.register import LimitRegister

DAY = date(2026, 6, 30)


def timed(fn, n: int) -> tuple[float, float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.median(samples) * 1000, samples[int(len(samples) * 0.99)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--reads", type=int, default=2_000)
    args = parser.parse_args()
    cfg = load_config().credit
    low = PolicyView(0.002, 2, "low", 400_000.0, 500_000.0, "approve", "within_limit", "within the recommended limit")
    medium = PolicyView(0.02, 6, "medium", 400_000.0, 500_000.0, "approve", "within_limit", "within the recommended limit")
    anna = Reviewer("anna", frozenset({"approver"}))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "register.db"
        register = LimitRegister(sqlite_url(path))
        started = time.perf_counter()
        file_ms = timed(lambda i: file_request(register, cfg, low, f"S{i % 20:03d}", f"B{i:06d}", 10_000.0, 30, "key:bench", DAY), args.lines)
        filling = time.perf_counter() - started
        pending = [file_request(register, cfg, medium, "S900", f"B{i:06d}", 20_000.0, 30, "key:bench", DAY).request.request_id for i in range(200)]
        approve_ms = timed(lambda i: decide_request(register, cfg, pending[i], anna, "approve", "reviewed", DAY), len(pending))
        read_ms = timed(lambda i: register.state(f"S{i % 20:03d}", f"B{(i * 7919) % args.lines:06d}", DAY), args.reads)
        started = time.perf_counter()
        lines = register.states(DAY, seller_id="S001")
        listing = time.perf_counter() - started
        register.close()
        size = path.stat().st_size / 1e6
    print(f"register of {args.lines:,} lines ({args.lines // 20:,} per seller), SQLite {size:.1f} MB; filled in {filling:.1f} s")
    print(f"  file a request (automatic approval):  median {file_ms[0]:.2f} ms, p99 {file_ms[1]:.2f} ms")
    print(f"  one approval completing a request:    median {approve_ms[0]:.2f} ms, p99 {approve_ms[1]:.2f} ms")
    print(f"  read a line (what /assess does):      median {read_ms[0]:.3f} ms, p99 {read_ms[1]:.3f} ms")
    print(f"  list one seller's {len(lines):,} lines:       {listing * 1000:.0f} ms")


if __name__ == "__main__":
    main()
