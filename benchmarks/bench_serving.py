"""Scoring-service figures over HTTP on loopback, with the load from a second process, and the
in-process floor beside them (goals: one buyer p99 under 15 ms at concurrency 1 from the first
request after ready; at concurrency 16 at least 80% of the throughput of BentoML's own constant
endpoint (constant_service.py, measured first), no errors; a 1,000-buyer batch under 1 s; an
online read of 100 buyers under 20 ms; all on 2 cores).

Without --workspace it runs `tradecredit demo` (5,000 buyers) first. Requests carry an order,
so both models score and explain; buyers rotate through the portfolio.

    .venv/bin/python benchmarks/bench_serving.py [--workspace DIR] [--seconds 15] [--synchronous full|normal]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml
from measure import TRADECREDIT

from tradecredit.config import CONFIG_DIR_ENV, default_config_dir, load_config
from tradecredit.ledger import read_normalised_table
from tradecredit.serving.credit import WorkerCredit
from tradecredit.serving.engine import Clock, open_assessor, order_rows
from tradecredit.serving.process import RunningServer, free_port, parse_as_of, running_server, wait_ready
from tradecredit.serving.schemas import AssessRequest
from tradecredit.workspace import Workspace


def body_for(i: int, buyers: list[str]) -> bytes:
    return json.dumps({"buyer_id": buyers[i % len(buyers)], "order": {"amount": 10_000 + i % 5_000, "terms_days": 60}}).encode()


def client_loop(url: str, buyers: list[str], seconds: float, keep_alive: bool, offset: int, out: list, lock: threading.Lock, auth: dict[str, str]) -> None:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    latencies, statuses, i = [], [], offset
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        i += 1
        headers = {"Content-Type": "application/json", **auth} | ({} if keep_alive else {"Connection": "close"})
        started = time.perf_counter()
        try:
            connection.request("POST", "/assess", body=body_for(i, buyers), headers=headers)
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
        except OSError:
            statuses.append(0)
        latencies.append(time.perf_counter() - started)
        if not keep_alive or statuses[-1] == 0:
            connection.close()
            connection = http.client.HTTPConnection(host, int(port), timeout=30)
    with lock:
        out.append((latencies, statuses))


def load(url: str, buyers: list[str], concurrency: int, seconds: float, keep_alive: bool, queue: multiprocessing.Queue, auth: dict[str, str]) -> None:
    """Runs in its own process: ``concurrency`` closed-loop clients for ``seconds``."""
    out: list = []
    lock = threading.Lock()
    threads = [threading.Thread(target=client_loop, args=(url, buyers, seconds, keep_alive, k * 100_000, out, lock, auth)) for k in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    queue.put(([x for lat, _ in out for x in lat], [s for _, st in out for s in st], elapsed))


def from_second_process(url: str, buyers: list[str], concurrency: int, seconds: float, keep_alive: bool, auth: dict[str, str]) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")  # a clean interpreter, not a fork of this one
    queue = context.Queue()
    process = context.Process(target=load, args=(url, buyers, concurrency, seconds, keep_alive, queue, auth))
    process.start()
    latencies, statuses, elapsed = queue.get()
    process.join()
    latencies.sort()
    return {
        "requests": len(latencies), "per_second": len(latencies) / elapsed, "errors": sum(s != 200 for s in statuses),
        "p50_ms": latencies[len(latencies) // 2] * 1000, "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "max_ms": latencies[-1] * 1000,
    }


def constant_floor(config_dir: Path, seconds: float) -> dict[str, float]:
    """What BentoML itself costs: ``constant_service.py`` (the same workers, threads and request
    model, a constant answer) under the same load."""
    port = free_port()
    log_path = Path(tempfile.mkdtemp()) / "constant.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", "constant_service:ConstantService", "--working-dir", str(Path(__file__).parent),
             "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, CONFIG_DIR_ENV: str(config_dir), "BENTOML_DO_NOT_TRACK": "True"}, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    server = RunningServer(process, f"http://127.0.0.1:{port}", log_path)
    wait_ready(server, 120)
    try:
        from_second_process(server.url, ["B0"], 4, 3, True, {})
        one = from_second_process(server.url, ["B0"], 1, seconds, True, {})
        many = from_second_process(server.url, ["B0"], 16, seconds, True, {})
    finally:
        server.stop()
    assert many["errors"] == 0 and one["errors"] == 0, (one, many)
    return many | {"c1_p50_ms": one["p50_ms"]}


def percentiles(samples: list[float]) -> str:
    samples = sorted(samples)
    return f"p50 {samples[len(samples) // 2] * 1000:6.2f} ms   p99 {samples[int(len(samples) * 0.99)] * 1000:6.2f} ms"


def in_process_floor(ws: Workspace, config_dir: Path, as_of: str, buyers: list[str]) -> dict[str, float]:
    cfg = load_config(config_dir)
    assessor = open_assessor(ws, cfg, Clock(parse_as_of(as_of)), with_log=True)
    assessor.credit = WorkerCredit(cfg, ws, assessor)  # as the service's worker: register, positions, policy rates
    default, late = assessor.models["default"].model, assessor.models["late"].model
    n = 500
    requests = [AssessRequest.model_validate_json(body_for(i, buyers)) for i in range(n)]
    for r in requests[:30]:
        assessor.assess([r], "assess")
    timings: dict[str, list[float]] = {k: [] for k in ("feature lookup (online store)", "score both models", "TreeSHAP both models", "full assessment + log")}
    for r in requests:
        t = time.perf_counter()
        online = assessor.reader.read([r.buyer_id], assessor.clock.now())
        timings["feature lookup (online store)"].append(time.perf_counter() - t)
        row = online.rows()[0]
        x_default = default.rows_array([row])
        x_late = late.rows_array(order_rows([r], [row], assessor.clock.now()))
        t = time.perf_counter()
        default.raw_score(x_default)
        late.raw_score(x_late)
        timings["score both models"].append(time.perf_counter() - t)
        t = time.perf_counter()
        default.contributions(x_default)
        late.contributions(x_late)
        timings["TreeSHAP both models"].append(time.perf_counter() - t)
        t = time.perf_counter()
        assessor.assess([r], "assess")
        timings["full assessment + log"].append(time.perf_counter() - t)
    print("\nIn process (one thread, no HTTP, the service's credit view), one buyer with an order:")
    for name, samples in timings.items():
        print(f"  {name:<26} {percentiles(samples)}")
    batch = [AssessRequest(buyer_id=b) for b in buyers[:1000]]
    assessor.assess(batch, "assess_batch")
    t = time.perf_counter()
    assessor.assess(batch, "assess_batch")
    batch_s = time.perf_counter() - t
    t = time.perf_counter()
    assessor.reader.read([b.buyer_id for b in batch], assessor.clock.now())
    read_s = time.perf_counter() - t
    reads = []
    for k in range(200):
        hundred = [buyers[(k * 7919 + j * 104_729) % len(buyers)] for j in range(100)]
        t = time.perf_counter()
        assessor.reader.read(hundred, assessor.clock.now())
        reads.append(time.perf_counter() - t)
    print(f"  online read of 100 buyers (both models' features, 200 reads): {percentiles(reads)}")
    x = default.rows_array(assessor.reader.read([b.buyer_id for b in batch], assessor.clock.now()).rows())
    t = time.perf_counter()
    default.explain(x)
    explain_s = time.perf_counter() - t
    print(f"  batch of {len(batch):,} (no orders): {batch_s:.2f} s, of which the Feast read {read_s:.2f} s, score + TreeSHAP {explain_s:.3f} s")
    assessor.log.close()  # type: ignore[union-attr]
    assessor.credit.close()
    return {"floor_p50_ms": statistics.median(timings["full assessment + log"]) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="a workspace with champions and materialized features")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--synchronous", choices=("full", "normal"), help="override the decision log's synchronous mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace((args.workspace or Path(tmp) / "ws").resolve())
        if not ws.mlflow_db.exists():
            print("Building a 5,000-buyer demo workspace first (tradecredit demo) ...")
            subprocess.run([TRADECREDIT, "--workspace", str(ws.root), "demo"], check=True, stdout=subprocess.DEVNULL)
        config_dir = Path(tmp) / "configs"
        shutil.copytree(default_config_dir(), config_dir)
        if args.synchronous:
            serving = yaml.safe_load((config_dir / "serving.yaml").read_text())
            serving["decision_log"]["synchronous"] = args.synchronous
            (config_dir / "serving.yaml").write_text(yaml.safe_dump(serving))
        cfg = load_config(config_dir)
        as_of = ws.built_as_of().isoformat()
        buyers = read_normalised_table(ws.ledger, "buyers", ["buyer_id"])["buyer_id"].to_list()
        print(f"{len(buyers):,} buyers; clock {as_of}; {cfg.serving.workers} workers x {cfg.serving.threads_per_worker} threads; "
              f"decision log synchronous={cfg.serving.decision_log.synchronous}; {datetime.now(UTC):%Y-%m-%d}")
        floor = in_process_floor(ws, config_dir, as_of, buyers)
        constant = constant_floor(config_dir, args.seconds)
        ws.portfolio_table_file.unlink(missing_ok=True)  # the service builds it as after a new model or materialize
        with running_server(ws, config_dir, as_of=as_of) as server:
            print("\nOver HTTP on loopback (load from a second process, closed loop):")
            first = from_second_process(server.url, buyers, 1, args.seconds, True, server.headers)
            print(f"  concurrency 1, from the first request after ready: p50 {first['p50_ms']:6.2f} ms   p99 {first['p99_ms']:6.2f} ms   "
                  f"max {first['max_ms']:6.1f} ms   errors {first['errors']}")
            from_second_process(server.url, buyers, 4, 3, True, server.headers)  # warm both workers
            one = from_second_process(server.url, buyers, 1, args.seconds, True, server.headers)
            print(f"  concurrency 1, keep-alive:   p50 {one['p50_ms']:6.2f} ms   p99 {one['p99_ms']:6.2f} ms   "
                  f"{one['per_second']:6.1f} req/s   errors {one['errors']}   (service overhead over the floor: {one['p50_ms'] - floor['floor_p50_ms']:.2f} ms at p50)")
            for keep_alive in (False, True):
                many = from_second_process(server.url, buyers, 16, args.seconds, keep_alive, server.headers)
                label = "keep-alive" if keep_alive else "new connection per request"
                print(f"  concurrency 16, {label + ':':<27} {many['per_second']:6.1f} req/s   p50 {many['p50_ms']:6.1f} ms   "
                      f"p99 {many['p99_ms']:6.1f} ms   errors {many['errors']} of {many['requests']:,}")
                if keep_alive:
                    print(f"    {many['per_second'] / constant['per_second']:.0%} of BentoML's constant endpoint "
                          f"({constant['per_second']:.1f} req/s at concurrency 16, keep-alive, p50 {constant['p50_ms']:.1f} ms; "
                          f"concurrency 1: p50 {constant['c1_p50_ms']:.2f} ms)")
            for with_orders in (False, True):
                items = [{"buyer_id": b} | ({"order": {"amount": 5000, "terms_days": 30}} if with_orders else {}) for b in buyers[:1000]]
                seconds = []
                for _ in range(5):
                    t = time.perf_counter()
                    status, answer = server.post("/assess_batch", {"requests": items}, timeout=120)
                    seconds.append(time.perf_counter() - t)
                    assert status == 200 and answer["assessed"] == len(items), (status, answer.get("error"))
                print(f"  batch of {len(items):,} buyers{' with orders' if with_orders else ''}: median {statistics.median(seconds):.2f} s over 5 calls")


if __name__ == "__main__":
    main()
