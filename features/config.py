"""The features stage's config models: labels (``configs/labels.yaml``) and the feature store,
its snapshots and view TTLs (``configs/features.yaml``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from tradecredit.config_base import PositiveInt, StrictModel


class LabelsConfig(StrictModel):
    default_days_past_due: PositiveInt = Field(description="days an invoice stays unpaid past due before the ledger calls a default")
    late_days: PositiveInt = Field(description="days past due after which a payment is late (late_30d)")


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
