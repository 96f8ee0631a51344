"""The training stage's config models (``configs/training.yaml``): out-of-time splits, tuning,
LightGBM, and each model's training settings.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from tradecredit.config_base import NonNegativeFloat, PositiveFloat, PositiveInt, StrictModel
from tradecredit.features.catalog import FEATURE_SERVICES, model_input_features
from tradecredit.model_specs import MODELS, model_spec


class SplitConfig(StrictModel):
    """Out-of-time slices, counted back from the last date whose label is complete:
    test = the last ``test_months`` months; calibration = ``calibration_months`` months ending
    ``gap_days`` before the test starts; train = everything before calibration."""

    label_horizon_days: PositiveInt = Field(description="days after the as-of time (issue date) until the label is known")
    gap_days: PositiveInt = Field(description="days between the last calibration row and the first test row")
    calibration_months: PositiveInt
    test_months: PositiveInt
    holdout_buyer_share: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        description="share of buyers never trained on; calibration, tuning and the headline test use only them"
    )
    holdout_salt: str = Field(description="salt of the buyer hash that picks the held-out buyers")
    origins: PositiveInt = Field(description="walk-forward origins: test windows of test_months each, back from the last complete label")
    min_train_months: PositiveInt = Field(description="an earlier origin is kept only with at least this many months to train on")

    @model_validator(mode="after")
    def _check(self) -> SplitConfig:
        if self.gap_days < self.label_horizon_days:
            raise ValueError(f"gap_days ({self.gap_days}) must be at least label_horizon_days ({self.label_horizon_days})")
        return self


class SearchSpace(StrictModel):
    num_leaves: tuple[Annotated[int, Field(ge=2)], Annotated[int, Field(ge=2)]]
    max_depth: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]]
    learning_rate: tuple[PositiveFloat, PositiveFloat]
    min_child_samples: tuple[PositiveInt, PositiveInt]
    lambda_l2: tuple[PositiveFloat, PositiveFloat]
    feature_fraction: tuple[Annotated[float, Field(gt=0, le=1)], Annotated[float, Field(gt=0, le=1)]]
    bagging_fraction: tuple[Annotated[float, Field(gt=0, le=1)], Annotated[float, Field(gt=0, le=1)]]

    @model_validator(mode="after")
    def _check(self) -> SearchSpace:
        for name, (low, high) in self.model_dump().items():
            if low > high:
                raise ValueError(f"{name}: the low end {low} is above the high end {high}")
        return self


class TrialParams(StrictModel):
    num_leaves: Annotated[int, Field(ge=2)]
    max_depth: Annotated[int, Field(ge=1)]
    learning_rate: PositiveFloat
    min_child_samples: PositiveInt
    lambda_l2: PositiveFloat
    feature_fraction: Annotated[float, Field(gt=0, le=1)]
    bagging_fraction: Annotated[float, Field(gt=0, le=1)]


class TuningConfig(StrictModel):
    trials: PositiveInt
    timeout_seconds: PositiveInt = Field(description="the study stops starting trials after this long")
    seed: int
    max_rounds: PositiveInt = Field(description="boosting rounds at most; early stopping usually ends sooner")
    early_stopping_rounds: PositiveInt
    max_treeshap_cost: PositiveInt = Field(
        description="cap on trees x leaves x depth^2 (TreeSHAP's cost per explained row); caps each trial's rounds"
    )
    search_space: SearchSpace
    first_trial: TrialParams = Field(
        description="a known-good setting tried first: TPE samples at random for its first 10 trials"
    )

    @model_validator(mode="after")
    def _check(self) -> TuningConfig:
        space = self.search_space.model_dump()
        outside = [k for k, v in self.first_trial.model_dump().items() if not space[k][0] <= v <= space[k][1]]
        if outside:
            raise ValueError(f"first_trial is outside the search space for {', '.join(outside)}")
        if self.first_trial.num_leaves > 2**self.first_trial.max_depth:
            raise ValueError("first_trial: num_leaves cannot exceed 2^max_depth")
        return self


class LightGbmConfig(StrictModel):
    seed: int
    num_threads: PositiveInt = Field(description="fixed, so that training is deterministic")


class GateConfig(StrictModel):
    """How the champion gate weighs sampling noise (docs/decisions/0008-production-models.md)."""

    bootstrap_samples: Annotated[int, Field(ge=50)] = Field(
        description="paired bootstrap resamples of buyers for the AUC differences")
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)] = Field(
        description="one-sided level: a challenger is refused when it is worse than a benchmark or the champion at this level")
    calibration_alpha: Annotated[float, Field(gt=0.0, lt=0.5)] = Field(
        description="Spiegelhalter test level: calibration is refused when its p-value is below this and the ECE above max_ece")


class ModelTrainingConfig(StrictModel):
    registered_model: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")]
    split: SplitConfig
    tuning: TuningConfig
    monotone: dict[str, Literal[-1, 1]] = Field(
        description="feature -> 1 if a higher value never lowers risk, -1 if it never raises it"
    )
    max_train_rows: PositiveInt | None = Field(
        description="train on a seeded sample of at most this many training rows (null: all of them)"
    )
    calibration_folds: Annotated[int, Field(ge=2)] = Field(description="folds (by buyer) to choose isotonic or Platt")
    crossfit_folds: Annotated[int, Field(ge=2)] = Field(
        description="folds (by buyer) whose out-of-fold scores on the latest months calibrate a model trained on every row")
    ece_bins: Annotated[int, Field(ge=2)]
    max_ece: PositiveFloat = Field(
        description="champion gate: an ECE above this is refused when the Spiegelhalter test also says it is not noise")
    max_auc_drop: NonNegativeFloat = Field(description="champion gate: how far below the champion's AUC a challenger may fall")
    gate: GateConfig
    sweep_rows: PositiveInt = Field(description="rows of the test slice the monotonicity sweep and SHAP check use")
    # Defaults to what configs/training.yaml ships, so a config folder from before the market
    # view does not start reading it silently (decision 0015).
    left_out_views: tuple[str, ...] = Field(
        default=("market_conditions",), description="feature views of the model's feature service it does not read ([] reads them all)")


class TrainingConfig(StrictModel):
    lightgbm: LightGbmConfig
    default: ModelTrainingConfig
    late: ModelTrainingConfig

    def model(self, name: str) -> ModelTrainingConfig:
        """The training settings of the model called ``name``; a name not in the table of models is
        refused by :func:`model_spec` (each model has a section of its own name)."""
        return getattr(self, model_spec(name).name)

    @model_validator(mode="after")
    def _check(self) -> TrainingConfig:
        for name in MODELS:
            known = {f.name: f.dtype for f in model_input_features(name)}
            unknown = sorted(set(self.model(name).monotone) - set(known))
            if unknown:
                raise ValueError(f"{name}.monotone names features the {name} model does not use: {', '.join(unknown)}")
            views = FEATURE_SERVICES[name][1]
            strange = sorted(set(self.model(name).left_out_views) - set(views))
            if strange:
                raise ValueError(f"{name}.left_out_views: not views of the {name} feature service: {', '.join(strange)} (it has {', '.join(views)})")
            text = sorted(f for f in self.model(name).monotone if known[f] == "string")
            if text:
                raise ValueError(f"{name}.monotone: text features have no direction: {', '.join(text)}")
        return self
