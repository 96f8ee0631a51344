"""The features stage's config models: labels (``configs/labels.yaml``) and the feature store,
its snapshots and view TTLs (``configs/features.yaml``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from tradecredit.config_base import NonNegativeFloat, NonNegativeInt, PositiveInt, Probability, StrictModel
from tradecredit.contract import CREDIT_EVENT_TYPES

DefaultSource = Literal["auto", "credit_events", "days_past_due", "both"]


class MaterialityConfig(StrictModel):
    absolute: NonNegativeFloat = Field(description="past-due amount (reporting currency) above which arrears count")
    relative: Probability = Field(description="and above this share of the buyer's open exposure (EBA: 1%)")
    small_balance: NonNegativeFloat = Field(
        description="an invoice whose unpaid amount is at most this does not count at all (a small-balance write-off)"
    )


class DefaultDefinition(StrictModel):
    source: DefaultSource = Field(
        description="auto: credit events where the ledger has them, else days past due; credit_events; days_past_due; both (the first of either)"
    )
    days_past_due: PositiveInt = Field(
        description="a derived default starts when the amount at least this many days past due is material (90 by default)"
    )
    materiality: MaterialityConfig
    exclude_disputed: bool = Field(
        description="an invoice disputed before it reaches days_past_due does not count while disputed (up to max_dispute_days)"
    )
    max_dispute_days: PositiveInt = Field(
        description="a dispute older than this no longer shields its invoice (the contract has no resolution date)"
    )
    residual_share: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        description="a payment leaving at most this share of an invoice unpaid settles it for the count (a short payment)"
    )
    probation_days: PositiveInt = Field(
        description="days without material arrears after which a defaulted buyer performs again (cure); a later default is a new one"
    )
    terminal_event_types: tuple[str, ...] = Field(description="credit event types after which a buyer never cures")

    @model_validator(mode="after")
    def _known_types(self) -> DefaultDefinition:
        unknown = sorted(set(self.terminal_event_types) - set(CREDIT_EVENT_TYPES))
        if unknown:
            raise ValueError(f"terminal_event_types: unknown credit event type(s) {unknown}; choose from {list(CREDIT_EVENT_TYPES)}")
        return self

    def describe(self, has_credit_events: bool) -> str:
        """The definition in a credit officer's words, as the model card states it."""
        m = self.materiality
        derived = (
            f"the first day on which the buyer's amount at least {self.days_past_due} days past due exceeds both "
            f"{m.absolute:,.0f} and {m.relative:.1%} of its open exposure (open items of {m.small_balance:,.0f} or less left out)"
            + (f" (an invoice disputed before then counts only once its dispute is {self.max_dispute_days} days old)"
               if self.exclude_disputed else "")
            + (f"; a payment leaving at most {self.residual_share:.0%} of an invoice unpaid settles it" if self.residual_share else "")
        )
        source = resolved_source(self.source, has_credit_events)
        starts = {"credit_events": "a credit event", "days_past_due": derived, "both": f"a credit event or {derived}"}[source]
        terminal = ", ".join(self.terminal_event_types) or "none"
        return (
            f"A default starts with {starts}. A defaulted buyer is not scored; after {self.probation_days} days without "
            f"a material amount {self.days_past_due} or more days past due, and without a credit event, it performs again (never after: {terminal}), and a later default is a new one."
        )


def resolved_source(source: DefaultSource, has_credit_events: bool) -> str:
    """``auto`` made concrete: credit events where the ledger has any, else days past due."""
    if source == "auto":
        return "credit_events" if has_credit_events else "days_past_due"
    return source


class LabelsConfig(StrictModel):
    default: DefaultDefinition
    late_days: NonNegativeInt = Field(
        description="a payment is late when settled more than this many days after due (0: any day after due; label late_{N}d)"
    )


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
    market_conditions: PositiveInt = 35  # a config folder from before the market view keeps working


class MarketConfig(StrictModel):
    industry_prior_invoices: NonNegativeFloat = Field(
        description="pseudo-invoices at the book's figure added to an industry's own (0: the industry's figure alone)"
    )


class FeatureBuildConfig(StrictModel):
    partition_buyers: PositiveInt = Field(
        description="at most about this many buyers per partition: the build's peak memory follows it, not the book"
    )
    duckdb_memory_limit: Annotated[str, Field(pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)$")] = Field(
        description="each partition's DuckDB spills to disk beyond this (e.g. 2GB)"
    )
    spill_directory: str | None = Field(description="where DuckDB spills; null: WORKSPACE/features/spill")


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
    build: FeatureBuildConfig = Field(description="how the build is split into buyer partitions")
    market: MarketConfig = Field(default_factory=lambda: MarketConfig(industry_prior_invoices=50),
                                 description="the market view: book-wide and industry payment behaviour (default: as configs/features.yaml ships)")
    materialize_workers: PositiveInt = Field(
        description="processes writing partitions into a Redis online store at once (SQLite takes one writer)"
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
