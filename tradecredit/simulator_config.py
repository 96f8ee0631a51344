"""The simulator's config models (``configs/simulator.yaml``): the synthetic population, its
latent credit quality, defaults, invoices, payments (with the mess real ledgers have: long
disputes, chronic slow payers, small invoices left unpaid), registry events, filed statements
and the optional tables and columns left out of the written ledger.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import Field, model_validator

from tradecredit.config_base import (
    NonNegativeFloat,
    Persistence,
    PositiveFloat,
    PositiveInt,
    Probability,
    StrictModel,
    shares_sum_to_one,
)
from tradecredit.contract import REGISTRY_EVENT_TYPES


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
        shares_sum_to_one(self.countries, "population.countries")
        shares_sum_to_one({k: v.share for k, v in self.industries.items()}, "population.industries")
        shares_sum_to_one(self.legal_forms, "population.legal_forms")
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
        shares_sum_to_one({str(k): v for k, v in self.terms_days.items()}, "sellers.terms_days")
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


DayRange = tuple[PositiveInt, PositiveInt]


class LongDisputes(StrictModel):
    """Disputed invoices held in dispute, then paid in full long after due, by any buyer."""

    share: Probability = Field(description="share of disputed invoices held in dispute")
    days: DayRange = Field(description="days beyond terms at which a held invoice is paid in full")


class SlowPayers(StrictModel):
    """Buyers that routinely pay long after terms, at no extra default risk."""

    share: Probability = Field(description="share of buyers that are chronic slow payers")
    invoice_share: Probability = Field(description="share of a slow payer's invoices paid `days` late")
    days: DayRange = Field(description="days beyond terms of those invoices")


class SmallInvoicesUnpaid(StrictModel):
    """Invoices too small to chase: never paid, whether or not the buyer defaults."""

    below: PositiveFloat = Field(description="invoices of a smaller amount are at risk")
    share: Probability = Field(description="chance that such an invoice is never paid")


class PaymentConfig(StrictModel):
    """Each invoice falls in a lateness class; the class draw is what the truth is computed from.

    ``long_disputes``, ``slow_payers`` and ``small_invoices_unpaid`` are switches: ``null``
    turns a mechanism off. None of them touches the default hazard.
    """

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
    long_disputes: LongDisputes | None
    slow_payers: SlowPayers | None
    small_invoices_unpaid: SmallInvoicesUnpaid | None

    @model_validator(mode="after")
    def _check(self) -> PaymentConfig:
        if self.slight_days[1] > self.late_threshold_days or self.severe_days[0] <= self.late_threshold_days:
            raise ValueError("slight_days must end at or before late_threshold_days and severe_days start after it")
        # Late for certain: the truth counts these invoices as late whatever else happens.
        for name, mess in (("long_disputes", self.long_disputes), ("slow_payers", self.slow_payers)):
            if mess is not None and not self.late_threshold_days < mess.days[0] <= mess.days[1]:
                raise ValueError(f"{name}.days must start after late_threshold_days and not end before it starts")
        return self


OptionalTable = Literal["payments", "registry_events", "financials", "credit_events"]
OptionalColumn = Literal[
    "seller_id",
    "disputed_on",
    "country",
    "industry",
    "legal_form",
    "founded_on",
    "registered_capital",
    "paid_in_capital",
    "employees",
]


class OmitConfig(StrictModel):
    """Optional tables and columns of the data contract left out of the written ledger (the truth
    is still written). Without ``payments``, each invoice settled by the end of the data carries
    its settlement date as ``paid_on``; a partly paid invoice carries none."""

    tables: list[OptionalTable]
    columns: list[OptionalColumn]


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
    omit: OmitConfig

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
