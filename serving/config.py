"""The serving stage's config models: the scoring service, its decision log and order bounds
(``configs/serving.yaml``), and the reviewer console (``configs/console.yaml``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from tradecredit.config_base import NonNegativeFloat, PositiveFloat, PositiveInt, StrictModel


class OrderBounds(StrictModel):
    max_amount: PositiveFloat = Field(description="an order or requested limit above this is refused as absurd (400)")
    max_terms_days: PositiveInt = Field(description="payment terms above this are refused (400)")


class DecisionLogConfig(StrictModel):
    synchronous: Literal["full", "normal"] = Field(
        description="SQLite synchronous mode of the WAL log: full survives power loss, normal only a process crash"
    )
    busy_timeout_ms: PositiveInt = Field(description="how long a writer waits for another worker's write")


class ApiKeysConfig(StrictModel):
    required: bool = Field(description="every call but health, readiness, metrics and the docs needs an API key; false only behind a gateway that authenticates")
    cache_seconds: NonNegativeFloat = Field(description="a worker remembers a checked key this long: a revoked key stops working within it")


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
    api_keys: ApiKeysConfig


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
