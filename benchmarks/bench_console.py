"""Console figures on a real `bentoml serve` of a workspace: how long the portfolio table takes
to build (every buyer scored on the online features at start), and the latency of the
portfolio, buyer and alerts pages for a logged-in reviewer once it is built. Goal: pages stay
fast with 10,000 buyers (server-side paging).

    .venv/bin/python benchmarks/bench_console.py --workspace DIR [--requests 60]

DIR is a workspace with champions, features online and (for alerts) monitoring runs, such as
the demo's (`tradecredit demo --buyers 10000`).
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import time
from pathlib import Path

from tradecredit.config import default_config_dir, load_config
from tradecredit.ledger import read_normalised_table
from tradecredit.serving.console.auth import ConsoleAuth
from tradecredit.serving.console.client import ConsoleClient
from tradecredit.serving.process import running_server
from tradecredit.workspace import Workspace

QUERIES = [
    "/", "/?sort=exposure", "/?sort=buyer_id&desc=0", "/?grade=8&grade=9&grade=10", "/?tier=high&alert=red", "/?alert=any&sort=open_alerts",
    "/?q=B0001", "/?size=200", "/?page=40", "/?industry=C&country=DE&sort=premium_rate",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(client: ConsoleClient, path: str) -> tuple[float, int]:
    start = time.perf_counter()
    answer = client.get(path)
    if answer.status != 200:
        raise SystemExit(f"{path}: {answer.status} {answer.body[:300]}")
    return (time.perf_counter() - start) * 1000, len(answer.body)


def report(name: str, samples: list[tuple[float, int]]) -> None:
    ms = [s[0] for s in samples]
    print(f"{name:<16} n={len(ms):>3}  p50 {statistics.median(ms):7.1f} ms  p95 {percentile(ms, 0.95):7.1f} ms  "
          f"max {max(ms):7.1f} ms  page {statistics.median([s[1] for s in samples]) / 1024:6.1f} kB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    ws = Workspace(args.workspace.resolve())
    cfg = load_config(default_config_dir())
    auth = ConsoleAuth(users_url(cfg.backends, ws), cfg.console)
    auth.add_user("bench", "benchmark-password", replace=True)
    auth.close()
    buyers = read_normalised_table(ws.ledger, "buyers", ["buyer_id"])["buyer_id"].to_list()
    rng = random.Random(7)
    started = time.perf_counter()
    with running_server(ws, default_config_dir(), as_of=ws.built_as_of().isoformat()) as server:
        ready = time.perf_counter() - started
        client = ConsoleClient(server.url)
        assert client.login("bench", "benchmark-password").status == 303
        first_ms, _ = timed(client, "/")
        # Each worker builds its own table: wait until both answer fast.
        for _ in range(20):
            if timed(client, "/")[0] < 1000 and timed(client, "/")[0] < 1000:
                break
        page = client.get("/").body
        built = re.search(r"in ([\d.]+) s", page)
        count = re.search(r"<strong>([\d,]+)</strong> of ([\d,]+) buyers", page)
        print(f"{count.group(2) if count else '?'} buyers; service ready in {ready:.1f} s; portfolio table built in "
              f"{built.group(1) if built else '?'} s per worker; first portfolio page after ready {first_ms:.0f} ms")
        report("portfolio page", [timed(client, QUERIES[i % len(QUERIES)]) for i in range(args.requests)])
        report("buyer page", [timed(client, f"/buyers/{rng.choice(buyers)}") for _ in range(max(10, args.requests // 2))])
        report("alerts page", [timed(client, f"/alerts?page={1 + i % 3}") for i in range(max(10, args.requests // 3))])
        whatif = []
        for _ in range(max(10, args.requests // 2)):
            start = time.perf_counter()
            answer = client.post_json("/api/whatif", {"buyer_id": rng.choice(buyers), "order": {"amount": 25000, "terms_days": 60}})
            whatif.append(((time.perf_counter() - start) * 1000, len(answer.body)))
        report("what-if", whatif)


if __name__ == "__main__":
    main()
