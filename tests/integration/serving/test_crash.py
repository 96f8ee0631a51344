"""Durability: kill -9 the server in the middle of a load; afterwards every decision a caller
was told about is in the log, and the log takes new decisions."""

from __future__ import annotations

import http.client
import signal
import threading
import uuid
from datetime import UTC, datetime

from tests.integration.serving.conftest import data_end
from tradecredit.serving.decision_log import DecisionLog, DecisionRecord, read_decisions
from tradecredit.serving.process import post_json, start_server
from tradecredit.workspace import Workspace
from tradecredit.sql_stores import sqlite_url


def test_kill_9_mid_load_loses_no_acknowledged_decision(demo_run):
    ws = Workspace(demo_run.workspace)
    server = start_server(ws, demo_run.configs, as_of=data_end(demo_run.workspace))
    acknowledged: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(worker: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            body = {"buyer_id": f"B{(worker * 50 + i) % 400 + 1:06d}", "order": {"amount": 1000 + i, "terms_days": 30}}
            try:
                status, answer = post_json(server.url + "/assess", body, timeout=10, headers=server.headers)
            except (OSError, http.client.HTTPException) as exc:  # the server is gone (mid-answer too): expected once killed
                failures.append(type(exc).__name__)
                continue
            if status == 200:
                with lock:
                    acknowledged.append(answer["decision_id"])

    threads = [threading.Thread(target=load, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    try:
        while len(acknowledged) < 150:
            threads[0].join(0.05)
        server.stop(signal.SIGKILL)  # the whole process group, no chance to flush anything
        threads[0].join(1.0)  # the load goes on against the dead server for a moment
    finally:
        stop.set()
        for t in threads:
            t.join()
        server.stop(signal.SIGKILL)
    assert len(acknowledged) >= 150 and failures, "the load must still be running when the server dies"

    # What a restarted worker does first: open the log (SQLite recovers its write-ahead log) and
    # append to it. (Restarting the whole service to see it answer is the server tests' job.)
    logged = {row["decision_id"] for row in read_decisions(sqlite_url(ws.decision_log))}
    missing = set(acknowledged) - logged
    assert not missing, f"{len(missing)} acknowledged decisions are not in the log"
    after = DecisionRecord(
        decision_id=uuid.uuid4().hex, logged_at=datetime.now(UTC).isoformat(), assessed_at=datetime.now(UTC).isoformat(), request_id="after-crash",
        endpoint="assess", buyer_id="AFTER-CRASH", request={"buyer_id": "AFTER-CRASH"}, features={}, features_as_of=None, stale=False,
        default_model="m:1", late_model=None, pd_12m=0.01, grade=3, decision="approve", response_json="{}",
    )
    log = DecisionLog(sqlite_url(ws.decision_log))
    try:
        log.append([after])
    finally:
        log.close()
    assert after.decision_id in {row["decision_id"] for row in read_decisions(sqlite_url(ws.decision_log))}, "the log takes new decisions after the crash"
