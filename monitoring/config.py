"""The monitoring stage's config models (``configs/monitoring.yaml``): drift, the backtest,
the early-warning alert rules and their webhook, and the portfolio view.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from tradecredit.config_base import PositiveFloat, PositiveInt, Probability, StrictModel, shares_sum_to_one
from tradecredit.monitoring.alert_metrics import ALERT_METRICS, evidence_names


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
    keep_when: list[tuple[str, Comparison, float]] | None = Field(
        default=None, description="hysteresis: an open alert of this signal stays open while these (looser) conditions hold; null: while `when` holds")

    @model_validator(mode="after")
    def _metrics_are_known(self) -> AlertRule:
        named = {metric for metric, _, _ in [*self.when, *(self.keep_when or [])]}
        unknown = sorted((named | set(evidence_names(self.evidence))) - ALERT_METRICS)
        if unknown:
            raise ValueError(f"rule {self.signal!r} names unknown metric(s) {unknown}: use a feature name or one of the derived metrics in monitoring.yaml")
        return self


class WebhookConfig(StrictModel):
    url: str | None = Field(description="POST new and escalated alerts here as JSON (null: no webhook); $TRADECREDIT_ALERT_WEBHOOK overrides")
    timeout_seconds: PositiveFloat
    batch_size: PositiveInt = Field(description="alerts per POST")


class SizeScalingConfig(StrictModel):
    """Count thresholds that grow with the company: two lawsuits in a quarter is news for a
    small firm and routine for a large one."""

    metric: str = Field(description="the feature that measures size (e.g. employees); a buyer without it keeps the thresholds as written")
    reference: PositiveFloat = Field(description="the size at which the thresholds apply as written")
    exponent: Annotated[float, Field(ge=0.0, le=1.0)] = Field(description="thresholds scale by (size / reference) ** exponent, never below 1")
    signals: list[str] = Field(description="the signals whose `>=` / `>` thresholds scale")

    @model_validator(mode="after")
    def _metric_is_known(self) -> SizeScalingConfig:
        if self.metric not in ALERT_METRICS:
            raise ValueError(f"size_scaling.metric {self.metric!r} is not a numeric feature")
        return self


class AlertsConfig(StrictModel):
    actions: dict[AlertColour, str] = Field(description="the recommended action of each colour")
    rules: list[AlertRule] = Field(min_length=1)
    size_scaling: SizeScalingConfig | None = Field(default=None, description="null: thresholds as written for every buyer")
    webhook: WebhookConfig

    @model_validator(mode="after")
    def _check(self) -> AlertsConfig:
        if set(self.actions) != {"yellow", "red"}:
            raise ValueError("alerts.actions needs an action for yellow and for red")
        return self


class MaterialityConfig(StrictModel):
    min_exposure: Annotated[float, Field(ge=0.0)] = Field(description="a case on an open balance below this is listed, never red...")
    min_limit_share: Probability = Field(description="...unless the balance is at least this share of the buyer's granted lines")


class RedCaseConfig(StrictModel):
    """What makes a case red (stop new orders): a knock-out signal, or a high PD with fresh
    deterioration. Every other case is yellow."""

    knockouts: list[str] = Field(min_length=1, description="signals that make a case red on their own")
    high_pd_grade: Annotated[int, Field(ge=1)] = Field(description="grade from which a PD is high")
    fresh_days: PositiveInt = Field(description="a signal raised or escalated this many days back or less is fresh deterioration")
    grade_steps: PositiveInt = Field(description="a grade this many steps worse than at the previous run is fresh deterioration")


class CasesConfig(StrictModel):
    """One case per buyer gathering its open alerts (``monitoring/cases.py``)."""

    close_after_quiet_runs: PositiveInt = Field(description="an unresolved case closes after this many runs in a row without an open signal")
    materiality: MaterialityConfig
    red: RedCaseConfig
    actions: dict[Literal["red", "yellow", "listed"], str] = Field(description="the action each kind of case carries")
    resolutions: list[str] = Field(min_length=1, description="the outcomes a reviewer resolves a case with")
    lead_days: PositiveInt = Field(description="the backtest's lead: the share of defaults flagged at least this many days before")

    @model_validator(mode="after")
    def _check(self) -> CasesConfig:
        if set(self.actions) != {"red", "yellow", "listed"}:
            raise ValueError("cases.actions needs red, yellow and listed")
        return self


class CustomerMixConfig(StrictModel):
    new_below_days: PositiveInt = Field(description="a relationship younger than this is a new customer")
    core_from_days: PositiveInt = Field(description="a relationship at least this old, in a core tier, is a core customer")
    core_tiers: list[str] = Field(min_length=1, description="tiers a core customer must be in (the rest of the established ones are growth)")
    target: dict[Literal["core", "growth", "new"], Probability] = Field(description="target share of exposure per segment")
    tolerance: Probability = Field(description="a segment's share further than this from its target is flagged")

    @model_validator(mode="after")
    def _check(self) -> CustomerMixConfig:
        shares_sum_to_one(dict(self.target), "customer_mix.target")
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
    cases: CasesConfig
    portfolio: PortfolioViewConfig
    report_top_features: PositiveInt = Field(description="features shown in the report's PSI chart")

    @model_validator(mode="after")
    def _signals_are_known(self) -> MonitoringConfig:
        signals = {r.signal for r in self.alerts.rules}
        named = set(self.cases.red.knockouts) | set(self.alerts.size_scaling.signals if self.alerts.size_scaling else [])
        if named - signals:
            raise ValueError(f"signal(s) {sorted(named - signals)} named in cases.red.knockouts or alerts.size_scaling have no alert rule")
        return self
