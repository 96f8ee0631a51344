"""The one typed configuration tree, loaded from ``configs/*.yaml``.

Each YAML file is one section of :class:`PlatformConfig` (``simulator.yaml`` ->
``PlatformConfig.simulator``). Unknown keys and unknown files are rejected, so a
misspelt key fails at load with the file and the key named. Models carry no
defaults for tunable numbers: the YAML files are the single place they live.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tradecredit.contract import REGISTRY_EVENT_TYPES

CONFIG_DIR_ENV = "TRADECREDIT_CONFIG_DIR"
# A profile overrides keys of the section files: configs/profiles/<name>.yaml.
PROFILE_ENV = "TRADECREDIT_PROFILE"
PROFILES_DIR = "profiles"
EMBEDDED_PROFILE = "embedded"

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]
PositiveInt = Annotated[int, Field(gt=0)]
# An AR(1) persistence below 1 keeps each latent factor stationary.
Persistence = Annotated[float, Field(ge=0.0, lt=1.0)]


class ConfigError(ValueError):
    """A configuration file is missing, malformed, or names an unknown key or value."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


M = TypeVar("M", bound=StrictModel)


def _shares_sum_to_one(shares: dict[str, float], what: str) -> dict[str, float]:
    total = sum(shares.values())
    if not shares or abs(total - 1.0) > 1e-6:
        raise ValueError(f"{what} shares must sum to 1, got {total:.6f}")
    if any(v < 0 for v in shares.values()):
        raise ValueError(f"{what} shares must be non-negative")
    return shares


# --------------------------------------------------------------------------- simulator


class IndustrySpec(StrictModel):
    share: Probability
    quality: float = Field(description="baseline credit quality of the sector, in latent units")
    revenue_per_employee: PositiveFloat


class PopulationConfig(StrictModel):
    initial_share: Probability = Field(description="share of buyers already trading in month 0")
    countries: dict[str, Probability]
    country_quality: dict[str, float]
    industries: dict[str, IndustrySpec]
    legal_forms: dict[str, Probability]
    legal_form_quality: dict[str, float]
    employees_log_mean: float
    employees_log_sd: PositiveFloat
    sole_proprietor_employees_log_mean: float
    sole_proprietor_employees_log_sd: PositiveFloat
    age_years_log_mean: float
    age_years_log_sd: PositiveFloat
    capital_per_employee_log_mean: float
    capital_log_sd: PositiveFloat
    paid_in_beta: tuple[PositiveFloat, PositiveFloat]
    missing_employees_share: Probability

    @model_validator(mode="after")
    def _check(self) -> PopulationConfig:
        _shares_sum_to_one(self.countries, "population.countries")
        _shares_sum_to_one({k: v.share for k, v in self.industries.items()}, "population.industries")
        _shares_sum_to_one(self.legal_forms, "population.legal_forms")
        for name, table, source in (
            ("country_quality", self.country_quality, self.countries),
            ("legal_form_quality", self.legal_form_quality, self.legal_forms),
        ):
            missing = set(source) - set(table)
            if missing:
                raise ValueError(f"population.{name} lacks {sorted(missing)}")
        if "sole_proprietor" not in self.legal_forms:
            raise ValueError("population.legal_forms must include sole_proprietor")
        return self


class SellerConfig(StrictModel):
    terms_days: dict[int, Probability]
    extra_seller_prob: Probability = Field(description="chance of each further seller, up to max_per_buyer")
    max_per_buyer: PositiveInt
    popularity_concentration: PositiveFloat
    relationship_sd: NonNegativeFloat = Field(description="how differently one buyer pays its sellers")

    @model_validator(mode="after")
    def _check(self) -> SellerConfig:
        _shares_sum_to_one({str(k): v for k, v in self.terms_days.items()}, "sellers.terms_days")
        return self


class MacroShock(StrictModel):
    start_month: Annotated[int, Field(ge=0)]
    months: PositiveInt
    size: float = Field(description="total move of the macro factor over the shock, in latent units")


class QualityConfig(StrictModel):
    """Latent credit quality q (higher is safer) = static + firm AR(1) + industry AR(1) + macro AR(1)."""

    intercept: float
    age_effect: float
    size_effect: float
    idiosyncratic_sd: NonNegativeFloat
    firm_persistence: Persistence
    firm_sd: NonNegativeFloat
    industry_persistence: Persistence
    industry_sd: NonNegativeFloat
    industry_loading: float
    macro_persistence: Persistence
    macro_sd: NonNegativeFloat
    macro_loading: float
    macro_shock: MacroShock | None


class DefaultConfig(StrictModel):
    log_hazard_intercept: float = Field(description="log monthly default hazard at quality 0")
    quality_sensitivity: PositiveFloat = Field(description="drop in log hazard per unit of quality")
    insolvency_share: Probability
    claim_share: Probability
    claim_lag_days: tuple[PositiveInt, PositiveInt]
    insolvency_filing_lead_days: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]]
    write_off_lag_days: tuple[PositiveInt, PositiveInt]


class InvoiceConfig(StrictModel):
    monthly_invoices_mean: PositiveFloat
    volume_size_elasticity: float
    volume_quality_elasticity: float
    amount_log_mean: float
    amount_log_sd: PositiveFloat
    amount_size_elasticity: float


class PaymentConfig(StrictModel):
    """Each invoice falls in a lateness class; the class draw is what the truth is computed from."""

    habit_sd: NonNegativeFloat = Field(description="buyer payment culture, unrelated to credit quality")
    slip_intercept: float
    slip_quality: float
    severe_intercept: float
    severe_quality: float
    squeeze_below: float = Field(description="quality below which a liquidity squeeze sets in")
    squeeze_slope: NonNegativeFloat = Field(description="extra late-payment logit per unit of quality below it")
    dispute_intercept: float
    dispute_quality: float
    dispute_severe_uplift: float
    dispute_after_issue_days: Annotated[int, Field(ge=0)] = Field(description="earliest dispute after issue")
    severe_habit_weight: float = Field(description="how much payment habit moves the severe-lateness logit")
    early_days: tuple[int, int]
    slight_days: tuple[PositiveInt, PositiveInt]
    severe_days: tuple[PositiveInt, PositiveInt]
    late_threshold_days: PositiveInt
    partial_intercept: float
    partial_quality: float
    partial_first_share: tuple[Probability, Probability]

    @model_validator(mode="after")
    def _check(self) -> PaymentConfig:
        if self.slight_days[1] > self.late_threshold_days or self.severe_days[0] <= self.late_threshold_days:
            raise ValueError("slight_days must end at or before late_threshold_days and severe_days start after it")
        return self


class RegistryEventRate(StrictModel):
    log_rate: float = Field(description="log monthly rate at quality 0")
    quality: float = Field(description="change in log rate per unit of quality (negative: distress raises it)")


class StatementRatios(StrictModel):
    """How filed figures respond to latent quality q (each with the statement noise added)."""

    revenue_quality: float = Field(description="log revenue per unit of quality")
    log_assets_to_revenue: float
    debt_ratio_intercept: float = Field(description="logit of liabilities / assets at quality 0")
    debt_ratio_quality: float
    current_assets_share: tuple[Probability, Probability]
    log_current_ratio_intercept: float
    log_current_ratio_quality: float
    cash_share_intercept: float = Field(description="logit of cash / current assets at quality 0")
    cash_share_quality: float
    receivables_share: tuple[Probability, Probability]
    net_margin_intercept: float
    net_margin_quality: float
    net_margin_noise_scale: NonNegativeFloat = Field(description="net margin noise as a share of noise_sd")
    cash_conversion_margin: tuple[float, float] = Field(description="operating cash flow above net income, per revenue")
    interest_rate: tuple[NonNegativeFloat, NonNegativeFloat]


class FinancialsConfig(StrictModel):
    filing_intercept: float
    filing_size: float
    sole_proprietor_filing_penalty: float
    publication_lag_days: tuple[PositiveInt, PositiveInt]
    field_missing_share: Probability
    noise_sd: NonNegativeFloat
    ratios: StatementRatios


class SimulatorConfig(StrictModel):
    seed: int
    buyers: PositiveInt
    sellers: PositiveInt
    months: PositiveInt
    start: date
    output_format: Literal["csv", "parquet"]
    population: PopulationConfig
    sellers_mix: SellerConfig
    quality: QualityConfig
    default: DefaultConfig
    invoices: InvoiceConfig
    payments: PaymentConfig
    registry_events: dict[str, RegistryEventRate]
    financials: FinancialsConfig

    @model_validator(mode="after")
    def _check(self) -> SimulatorConfig:
        if self.start.day != 1:
            raise ValueError("start must be the first day of a month")
        unknown = set(self.registry_events) - set(REGISTRY_EVENT_TYPES)
        if unknown:
            raise ValueError(f"registry_events has types outside the contract vocabulary: {sorted(unknown)}")
        if "insolvency_filing" in self.registry_events:
            raise ValueError("insolvency_filing is emitted with insolvencies, not at a rate: remove it")
        return self


# --------------------------------------------------------------------------- ledger loader


class LedgerConfig(StrictModel):
    financials_publication_lag_days: Annotated[int, Field(ge=0)] = Field(
        description="assumed lag from period_end to publication when published_on is absent"
    )
    default_seller_id: str = Field(description="seller_id given to invoices of a ledger with one seller")
    settlement_tolerance: NonNegativeFloat = Field(
        description="an invoice counts as settled when payments reach amount minus this (rounding)"
    )


# --------------------------------------------------------------------------- labels


class LabelsConfig(StrictModel):
    default_days_past_due: PositiveInt = Field(description="days an invoice stays unpaid past due before the ledger calls a default")
    late_days: PositiveInt = Field(description="days past due after which a payment is late (late_30d)")


# --------------------------------------------------------------------------- features

# The largest gap between two calendar snapshots; a view's TTL must cover it or a buyer
# would lose its features between snapshots.
CALENDAR_GAP_DAYS = {"daily": 1, "weekly": 7, "monthly": 31}


class SnapshotConfig(StrictModel):
    calendar: Literal["daily", "weekly", "monthly"] = Field(
        description="snapshot every buyer on each day, each Monday, or each first of the month"
    )
    before_invoice_dates: bool = Field(
        description="also snapshot each buyer on the day before each of its invoices (late-payment training rows)"
    )


class FeatureViewTtls(StrictModel):
    payment_behaviour: PositiveInt
    registry_signals: PositiveInt
    firmographics: PositiveInt
    financials: PositiveInt


class FeaturesConfig(StrictModel):
    project: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")] = Field(description="Feast project name")
    snapshots: SnapshotConfig
    ttl_days: FeatureViewTtls = Field(description="how long after its snapshot a feature row may serve an as-of time")
    online_store: Literal["sqlite", "redis"] = Field(
        description="sqlite: a file in the workspace; redis: the server named by $TRADECREDIT_REDIS_URL"
    )
    max_online_age_days: PositiveInt = Field(description="an online feature older than this is reported stale")
    paydex_knots: list[tuple[float, Annotated[float, Field(ge=0, le=100)]]] = Field(
        description="(days paid after due, index) points; the index is interpolated between them"
    )

    @model_validator(mode="after")
    def _check(self) -> FeaturesConfig:
        gap = CALENDAR_GAP_DAYS[self.snapshots.calendar]
        short = [name for name, days in self.ttl_days.model_dump().items() if days < gap]
        if short:
            raise ValueError(
                f"ttl_days of {', '.join(short)} shorter than the {self.snapshots.calendar} snapshot gap ({gap} days)"
            )
        delays = [d for d, _ in self.paydex_knots]
        if len(delays) < 2 or delays != sorted(set(delays)):
            raise ValueError("paydex_knots need at least two points with strictly increasing days")
        scores = [s for _, s in self.paydex_knots]
        if scores != sorted(scores, reverse=True):
            raise ValueError("paydex_knots: the index must not rise as payments get later")
        return self


# --------------------------------------------------------------------------- policy (master scale)


class GradeBand(StrictModel):
    grade: Annotated[int, Field(ge=1)]
    max_pd: Annotated[float, Field(gt=0.0, le=1.0)] = Field(description="highest 12-month PD of the grade (inclusive)")
    tier: Literal["low", "medium", "high"]


class CapacityConfig(StrictModel):
    """What a buyer can carry, from the first figure known, in this order."""

    revenue_share: Probability = Field(description="share of annual revenue")
    equity_share: Probability = Field(description="share of equity (used when revenue is unknown)")
    monthly_purchases_multiple: PositiveFloat = Field(
        description="months of the buyer's usual purchases (used when neither statement figure is known)"
    )


class LimitConfig(StrictModel):
    capacity: CapacityConfig
    grade_share: list[Probability] = Field(description="share of capacity granted, grade 1 first; never rises")
    max_limit: PositiveFloat
    rounding: PositiveFloat = Field(description="limits are rounded down to a multiple of this")
    refer_from_grade: PositiveInt = Field(description="from this grade on, a person decides (refer)")
    decline_from_grade: PositiveInt = Field(description="from this grade on, no credit (decline)")


class InsuranceConfig(StrictModel):
    cover_ratio_by_tier: dict[Literal["low", "medium", "high"], Annotated[float, Field(gt=0.0, le=0.9)]] = Field(
        description="share of a loss the insurer pays, at most 90%"
    )
    loading: NonNegativeFloat = Field(description="margin on the expected-loss rate")
    expense_rate: NonNegativeFloat = Field(description="the insurer's costs, per unit of insured turnover")
    floor_rate: NonNegativeFloat = Field(description="the lowest premium rate")
    turnover_months: PositiveInt = Field(description="insured turnover = this many months of usual purchases")


class PolicyConfig(StrictModel):
    master_scale: list[GradeBand] = Field(description="grades from best to worst; the last band must end at PD 1")
    lgd: Probability = Field(description="loss given default of an unsecured trade receivable")
    limits: LimitConfig
    insurance: InsuranceConfig

    @model_validator(mode="after")
    def _check(self) -> PolicyConfig:
        grades = [b.grade for b in self.master_scale]
        if grades != list(range(1, len(grades) + 1)):
            raise ValueError("master_scale grades must be 1, 2, 3, ... in order")
        bounds = [b.max_pd for b in self.master_scale]
        if bounds != sorted(set(bounds)) or bounds[-1] != 1.0:
            raise ValueError("master_scale max_pd must rise strictly from grade to grade and end at 1.0")
        order = {"low": 0, "medium": 1, "high": 2}
        tiers = [order[b.tier] for b in self.master_scale]
        if tiers != sorted(tiers):
            raise ValueError("master_scale tiers must run low, medium, high as grades worsen")
        shares = self.limits.grade_share
        if len(shares) != len(grades) or any(b > a for a, b in zip(shares, shares[1:])):
            raise ValueError(f"limits.grade_share needs one share per grade ({len(grades)}), never rising as grades worsen")
        if not 1 <= self.limits.refer_from_grade <= self.limits.decline_from_grade <= len(grades) + 1:
            raise ValueError("limits: refer_from_grade must come at or before decline_from_grade, within the scale")
        cover = self.insurance.cover_ratio_by_tier
        if set(cover) != {"low", "medium", "high"} or not cover["low"] >= cover["medium"] >= cover["high"]:
            raise ValueError("insurance.cover_ratio_by_tier needs low, medium and high, never rising as risk rises")
        return self


# --------------------------------------------------------------------------- training


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
    ece_bins: Annotated[int, Field(ge=2)]
    max_ece: PositiveFloat = Field(description="champion gate: highest expected calibration error on the test slice")
    max_auc_drop: NonNegativeFloat = Field(description="champion gate: how far below the champion's AUC a challenger may fall")
    sweep_rows: PositiveInt = Field(description="rows of the test slice the monotonicity sweep and SHAP check use")


class TrainingConfig(StrictModel):
    lightgbm: LightGbmConfig
    default: ModelTrainingConfig
    late: ModelTrainingConfig

    def model(self, name: str) -> ModelTrainingConfig:
        return self.default if name == "default" else self.late

    @model_validator(mode="after")
    def _check(self) -> TrainingConfig:
        from tradecredit.features.catalog import model_input_features

        for name in ("default", "late"):
            known = {f.name: f.dtype for f in model_input_features(name)}
            unknown = sorted(set(self.model(name).monotone) - set(known))
            if unknown:
                raise ValueError(f"{name}.monotone names features the {name} model does not use: {', '.join(unknown)}")
            text = sorted(f for f in self.model(name).monotone if known[f] == "string")
            if text:
                raise ValueError(f"{name}.monotone: text features have no direction: {', '.join(text)}")
        return self


# --------------------------------------------------------------------------- backends


class DaskConfig(StrictModel):
    scheduler: str | None = Field(description="address of a running Dask scheduler (tcp://host:8786); null: a LocalCluster on this machine")
    workers: PositiveInt = Field(description="LocalCluster worker processes (ignored with a scheduler)")
    threads_per_worker: PositiveInt


class TuningStorageConfig(StrictModel):
    url: str | None = Field(description="SQLAlchemy URL of the Optuna storage shared by tuning workers; null: each tuning keeps its study in memory")
    workers: PositiveInt = Field(description="tuning processes `train` runs on one shared study (more than 1 needs a url)")
    heartbeat_seconds: PositiveInt = Field(description="a running trial proves it is alive this often")
    grace_seconds: PositiveInt = Field(description="a running trial silent this long is failed (its worker died) and retried")

    @model_validator(mode="after")
    def _check(self) -> TuningStorageConfig:
        if self.workers > 1 and not self.url:
            raise ValueError("tuning.workers above 1 needs a shared tuning.url (PostgreSQL): in-memory studies are per process")
        if self.grace_seconds <= self.heartbeat_seconds:
            raise ValueError("tuning.grace_seconds must be longer than heartbeat_seconds")
        return self


class BackendsConfig(StrictModel):
    """Where the platform keeps its state and where training runs. The shipped file is the
    embedded profile (SQLite and files in the workspace); configs/profiles/production.yaml
    points each at a server."""

    mlflow_tracking_uri: str | None = Field(description="MLflow tracking and registry (http://host:port of an `mlflow server`); null: WORKSPACE/mlflow/mlflow.db")
    feast_registry: str | None = Field(description="SQLAlchemy URL of Feast's SQL registry; null: WORKSPACE/feature_repo/registry.db")
    redis_address: str | None = Field(description="host:port of the Redis online store (features.online_store: redis); null: $TRADECREDIT_REDIS_URL")
    tuning: TuningStorageConfig
    training_engine: Literal["local", "dask"] = Field(description="local: LightGBM in the training process; dask: LightGBM's Dask estimator")
    dask: DaskConfig


# --------------------------------------------------------------------------- the tree


# --------------------------------------------------------------------------- serving


class OrderBounds(StrictModel):
    max_amount: PositiveFloat = Field(description="an order or requested limit above this is refused as absurd (400)")
    max_terms_days: PositiveInt = Field(description="payment terms above this are refused (400)")


class DecisionLogConfig(StrictModel):
    synchronous: Literal["full", "normal"] = Field(
        description="SQLite synchronous mode of the WAL log: full survives power loss, normal only a process crash"
    )
    busy_timeout_ms: PositiveInt = Field(description="how long a writer waits for another worker's write")


class ServingConfig(StrictModel):
    port: Annotated[int, Field(ge=1, le=65535)]
    host: str = Field(description="address to listen on; loopback unless you mean to expose the service")
    workers: PositiveInt = Field(description="BentoML worker processes (one per core)")
    threads_per_worker: PositiveInt = Field(
        description="requests a worker computes at once: scoring and SHAP run in C and a commit waits on the disk, both without the GIL"
    )
    max_concurrency: PositiveInt = Field(description="requests in flight per worker; one more gets 503")
    max_batch_size: PositiveInt = Field(description="buyers in one batch request; more gets 413")
    max_request_bytes: PositiveInt = Field(description="largest request body; more gets 413")
    top_reasons: PositiveInt = Field(description="reasons returned per model")
    access_log: bool = Field(description="log a line per HTTP request (the decision log records every decision anyway)")
    additivity_tolerance: PositiveFloat = Field(
        description="largest |base + sum(contributions) - raw score| (log-odds) before an explanation is marked unavailable"
    )
    orders: OrderBounds
    decision_log: DecisionLogConfig


class ConsoleConfig(StrictModel):
    """The risk reviewer console (``/console`` on the scoring service)."""

    path: str = Field(pattern=r"^/[a-z][a-z0-9_-]*$", description="where the console is mounted on the service")
    session_hours: PositiveFloat = Field(description="a login expires this many hours after it began, used or not")
    cookie_secure: bool = Field(description="send the session cookie over HTTPS only (true behind a TLS gateway)")
    min_password_length: PositiveInt
    max_failed_logins: PositiveInt = Field(description="failed logins of one user name within lockout_minutes before it is locked")
    lockout_minutes: PositiveInt
    page_size: PositiveInt = Field(description="portfolio rows per page unless the reviewer asks for another size")
    max_page_size: PositiveInt
    portfolio_refresh_minutes: PositiveFloat = Field(
        description="the portfolio table (every buyer scored with the champions on the online features) is rebuilt when older than this"
    )
    waterfall_features: PositiveInt = Field(description="features drawn one by one in the SHAP waterfall; the rest are summed")
    history_months: PositiveInt = Field(description="months of payment history drawn on the buyer page")

    @model_validator(mode="after")
    def _page_sizes(self) -> ConsoleConfig:
        if self.page_size > self.max_page_size:
            raise ValueError(f"page_size {self.page_size} is above max_page_size {self.max_page_size}")
        return self


# --------------------------------------------------------------------------- monitoring


class DriftConfig(StrictModel):
    bins: Annotated[int, Field(ge=2)] = Field(description="reference quantile bins per numeric feature (10: deciles)")
    moderate_psi: PositiveFloat = Field(description="PSI from which a shift is moderate")
    major_psi: PositiveFloat = Field(description="PSI from which a shift is major")
    alpha: Annotated[float, Field(gt=0.0, lt=0.5)] = Field(description="significance level of the PSI test")
    empty_bin_share: Annotated[float, Field(gt=0.0, lt=0.01)] = Field(description="share an empty bin counts as")

    @model_validator(mode="after")
    def _check(self) -> DriftConfig:
        if self.major_psi <= self.moderate_psi:
            raise ValueError("major_psi must be above moderate_psi")
        return self


class BacktestConfig(StrictModel):
    max_auc_drop: Annotated[float, Field(ge=0.0, lt=0.5)] = Field(
        description="a matured run's AUC this far below the champion's test AUC recommends retraining"
    )
    alpha: Annotated[float, Field(gt=0.0, lt=0.5)] = Field(
        description="a grade whose observed default rate is above its PD at this one-sided Jeffreys level recommends retraining"
    )


AlertColour = Literal["yellow", "red"]
Comparison = Literal[">=", ">", "<=", "<", "=="]


class AlertRule(StrictModel):
    """One early-warning rule: when every condition holds for a buyer, it raises ``colour``
    for ``signal``. Rules sharing a signal are its yellow and red levels (one alert per buyer
    and signal, escalated, never duplicated)."""

    signal: str = Field(min_length=1, description="what the alert is about; the key alerts are deduplicated on, with the buyer")
    colour: AlertColour
    when: list[tuple[str, Comparison, float]] = Field(min_length=1, description="[metric, comparison, value] conditions, all of which must hold")
    evidence: str = Field(description="sentence for the reviewer; {metric} placeholders take the buyer's values")

    @model_validator(mode="after")
    def _metrics_are_known(self) -> AlertRule:
        # The metric vocabulary and the placeholder parsing live beside the rules' evaluation.
        from tradecredit.monitoring.alerts import ALERT_METRICS, evidence_names

        unknown = sorted(({metric for metric, _, _ in self.when} | set(evidence_names(self.evidence))) - ALERT_METRICS)
        if unknown:
            raise ValueError(f"rule {self.signal!r} names unknown metric(s) {unknown}: use a feature name or one of the derived metrics in monitoring.yaml")
        return self


class WebhookConfig(StrictModel):
    url: str | None = Field(description="POST new and escalated alerts here as JSON (null: no webhook); $TRADECREDIT_ALERT_WEBHOOK overrides")
    timeout_seconds: PositiveFloat
    batch_size: PositiveInt = Field(description="alerts per POST")


class AlertsConfig(StrictModel):
    actions: dict[AlertColour, str] = Field(description="the recommended action of each colour")
    rules: list[AlertRule] = Field(min_length=1)
    webhook: WebhookConfig

    @model_validator(mode="after")
    def _check(self) -> AlertsConfig:
        if set(self.actions) != {"yellow", "red"}:
            raise ValueError("alerts.actions needs an action for yellow and for red")
        return self


class CustomerMixConfig(StrictModel):
    new_below_days: PositiveInt = Field(description="a relationship younger than this is a new customer")
    core_from_days: PositiveInt = Field(description="a relationship at least this old, in a core tier, is a core customer")
    core_tiers: list[str] = Field(min_length=1, description="tiers a core customer must be in (the rest of the established ones are growth)")
    target: dict[Literal["core", "growth", "new"], Probability] = Field(description="target share of exposure per segment")
    tolerance: Probability = Field(description="a segment's share further than this from its target is flagged")

    @model_validator(mode="after")
    def _check(self) -> CustomerMixConfig:
        _shares_sum_to_one(dict(self.target), "customer_mix.target")
        if set(self.target) != {"core", "growth", "new"}:
            raise ValueError("customer_mix.target needs core, growth and new")
        if self.core_from_days < self.new_below_days:
            raise ValueError("core_from_days must be at least new_below_days")
        return self


class PortfolioViewConfig(StrictModel):
    history_months: PositiveInt = Field(description="months of aging and DSO history in the report")
    top_n: PositiveInt = Field(description="the top-N share of exposure (10: the top-10 share)")
    customer_mix: CustomerMixConfig


class MonitoringConfig(StrictModel):
    drift: DriftConfig
    backtest: BacktestConfig
    late_window_days: PositiveInt = Field(description="each run scores the invoices issued this many days before it with the late-payment model")
    alerts: AlertsConfig
    portfolio: PortfolioViewConfig
    report_top_features: PositiveInt = Field(description="features shown in the report's PSI chart")


class PlatformConfig(StrictModel):
    simulator: SimulatorConfig
    ledger: LedgerConfig
    labels: LabelsConfig
    features: FeaturesConfig
    policy: PolicyConfig
    training: TrainingConfig
    serving: ServingConfig
    monitoring: MonitoringConfig
    console: ConsoleConfig
    backends: BackendsConfig


SECTIONS: dict[str, type[StrictModel]] = {
    name: field.annotation for name, field in PlatformConfig.model_fields.items()  # type: ignore[misc]
}


def default_config_dir() -> Path:
    """``$TRADECREDIT_CONFIG_DIR`` if set, else ``./configs`` if it exists, else the shipped ``configs/``."""
    env = os.environ.get(CONFIG_DIR_ENV)
    if env:
        return Path(env)
    local = Path.cwd() / "configs"
    if local.is_dir():
        return local
    return Path(__file__).resolve().parent.parent / "configs"


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def selected_profile(profile: str | None = None) -> str:
    """The profile asked for, else ``$TRADECREDIT_PROFILE``, else ``embedded``."""
    return profile or os.environ.get(PROFILE_ENV) or EMBEDDED_PROFILE


def load_config(config_dir: Path | None = None, profile: str | None = None) -> PlatformConfig:
    """Load and validate every section file in ``config_dir``, with the profile's overrides
    (``configs/profiles/<profile>.yaml``) merged over them."""
    config_dir = config_dir or default_config_dir()
    if not config_dir.is_dir():
        raise ConfigError(f"config folder {config_dir} does not exist (set {CONFIG_DIR_ENV} or pass --config-dir)")
    present = {p.stem: p for p in sorted(config_dir.glob("*.y*ml"))}
    unknown = set(present) - set(SECTIONS)
    if unknown:
        names = ", ".join(present[u].name for u in sorted(unknown))
        raise ConfigError(f"{config_dir}: unknown config file(s) {names}; known sections: {', '.join(SECTIONS)}")
    overrides = profile_overrides(config_dir, selected_profile(profile))
    sections: dict[str, StrictModel] = {}
    for name, model in SECTIONS.items():
        path = present.get(name)
        if path is None:
            raise ConfigError(f"{config_dir}: missing config file {name}.yaml")
        sections[name] = load_section(path, model, overrides.get(name))
    return PlatformConfig(**sections)


def load_profiled_section(model: type[M], config_dir: Path | None = None, profile: str | None = None) -> M:
    """One section file with the selected profile's overrides for it: what load_config gives
    for that section, for readers that need one section before the rest (the service's
    decorator reads serving.yaml and console.yaml when `bentoml serve` imports it)."""
    config_dir = config_dir or default_config_dir()
    name = next(section for section, section_model in SECTIONS.items() if section_model is model)
    overrides = profile_overrides(config_dir, selected_profile(profile)).get(name)
    return load_section(config_dir / f"{name}.yaml", model, overrides)


def profile_overrides(config_dir: Path, profile: str) -> dict[str, dict[str, Any]]:
    """The profile file's sections, ``${VAR}`` and ``${VAR:-default}`` expanded from the
    environment (addresses and passwords stay out of the file). The embedded profile is the
    section files themselves."""
    if profile == EMBEDDED_PROFILE:
        return {}
    path = config_dir / PROFILES_DIR / f"{profile}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (config_dir / PROFILES_DIR).glob("*.yaml"))
        raise ConfigError(f"no profile '{profile}' ({path} does not exist); profiles: {', '.join([EMBEDDED_PROFILE, *known])}")
    raw = _read_yaml(path)
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(unknown)}; known sections: {', '.join(SECTIONS)}")
    bad = [k for k, v in raw.items() if not isinstance(v, dict)]
    if bad:
        raise ConfigError(f"{path}: section(s) {', '.join(bad)} must be mappings of keys")
    try:
        return {name: _expand(values, name) for name, values in raw.items()}
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


_ENV_REFERENCE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, where) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if found:
            return found
        if default is None:
            raise ConfigError(f"key '{where}' needs ${name}: set it (or give a default as ${{{name}:-value}})")
        return default

    expanded = _ENV_REFERENCE.sub(substitute, value)
    # "${VAR:-}" with VAR unset means "not set", as null does in the section files.
    return None if expanded == "" and value else expanded


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return raw


def load_section(path: Path, model: type[M], overrides: dict[str, Any] | None = None) -> M:
    """Validate one YAML file, with a profile's overrides merged in, against ``model``;
    errors name the file and the key."""
    raw = _read_yaml(path)
    source = f"{path}" if not overrides else f"{path} (with the profile's {path.stem} overrides)"
    try:
        return model.model_validate(_merge(raw, overrides or {}))
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation_error(exc)}") from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, naming the key, never echoing the input."""
    problems = []
    for err in exc.errors():
        key = _location(err["loc"])
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown key '{key}'")
        else:
            message = err["msg"].removeprefix("Value error, ")
            problems.append(message if key == "(top level)" else f"key '{key}': {message}")
    return "; ".join(problems)
