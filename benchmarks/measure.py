"""Run a command in a child process and report its wall time and peak memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TRADECREDIT = str(Path(sys.executable).parent / "tradecredit")


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_rss_mb: float


def measure(args: list[str]) -> Measurement:
    """Wall time and peak resident memory of one child process (each call forks a fresh one)."""
    start = time.perf_counter()
    # A wrapper child per measurement, so RUSAGE_CHILDREN's maximum belongs to this command alone.
    wrapper = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)"
    )
    result = subprocess.run(
        [sys.executable, "-c", wrapper, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=os.environ | {"POLARS_MAX_THREADS": os.environ.get("POLARS_MAX_THREADS", "2")},
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stderr}")
    peak_kb = int(result.stderr.strip().splitlines()[-1])
    return Measurement(seconds=seconds, peak_rss_mb=peak_kb / 1024)
