"""The scoring service over the session's demo workspace: in process, and as a real
``bentoml serve`` process on a free loopback port."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tradecredit.config import PlatformConfig, load_config
from tradecredit.serving.engine import Assessor, Clock, open_assessor
from tradecredit.serving.process import RunningServer, running_server
from tradecredit.workspace import Workspace


def data_end(ws: Path) -> str:
    return json.loads((ws / "features" / "build_summary.json").read_text())["as_of_end"]


def clock_at_data_end(ws: Path) -> Clock:
    day = datetime.fromisoformat(data_end(ws))
    return Clock(datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC))


@pytest.fixture(scope="session")
def served_config(demo_run) -> PlatformConfig:
    return load_config(demo_run.configs)


@pytest.fixture(scope="session")
def assessor(demo_run, served_config) -> Assessor:
    return open_assessor(Workspace(demo_run.workspace), served_config, clock_at_data_end(demo_run.workspace))


@pytest.fixture(scope="module")
def server(demo_run) -> Iterator[RunningServer]:
    with running_server(Workspace(demo_run.workspace), demo_run.configs, as_of=data_end(demo_run.workspace)) as running:
        yield running
