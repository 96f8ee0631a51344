"""Small, quick training configs and one trained model per session for the behaviour tests."""

from __future__ import annotations

import pytest

from tests.conftest import REPO
from tests.model.synthetic import synthetic_training_set
from tradecredit.config import PlatformConfig, load_config
from tradecredit.training.config import ModelTrainingConfig
from tradecredit.training.train import TrainedModel, train


def quick(cfg: ModelTrainingConfig, trials: int = 3) -> ModelTrainingConfig:
    """The repository's model config with a short search (the search itself is not under test)."""
    tuning = cfg.tuning.model_copy(update={"trials": trials, "timeout_seconds": 60, "max_rounds": 120})
    return cfg.model_copy(update={"tuning": tuning, "sweep_rows": 80})


@pytest.fixture(scope="session")
def platform() -> PlatformConfig:
    return load_config(REPO / "configs")


@pytest.fixture(scope="session")
def trained_default(platform: PlatformConfig) -> TrainedModel:
    frame, data_end = synthetic_training_set("default")
    return train(frame, "default", data_end, quick(platform.training.default), platform.training.lightgbm,
                 platform.policy, platform.labels.late_days)
