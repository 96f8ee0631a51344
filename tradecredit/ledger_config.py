"""The ledger loader's config model (``configs/ledger.yaml``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from tradecredit.config_base import NonNegativeFloat, StrictModel


class LedgerConfig(StrictModel):
    financials_publication_lag_days: Annotated[int, Field(ge=0)] = Field(
        description="assumed lag from period_end to publication when published_on is absent"
    )
    default_seller_id: str = Field(description="seller_id given to invoices of a ledger with one seller")
    settlement_tolerance: NonNegativeFloat = Field(
        description="an invoice counts as settled when payments reach amount minus this (rounding)"
    )
