"""What every section's config models share: the strict base model, the config error, the
constrained number types and the helper validators.

It imports nothing of the project, so each stage's ``config`` module can build on it without
importing :mod:`tradecredit.config` (which imports them all to assemble ``PlatformConfig``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
# An AR(1) persistence below 1 keeps each latent factor stationary.
Persistence = Annotated[float, Field(ge=0.0, lt=1.0)]


class ConfigError(ValueError):
    """A configuration file is missing, malformed, or names an unknown key or value."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def shares_sum_to_one(shares: dict[str, float], what: str) -> dict[str, float]:
    total = sum(shares.values())
    if not shares or abs(total - 1.0) > 1e-6:
        raise ValueError(f"{what} shares must sum to 1, got {total:.6f}")
    if any(v < 0 for v in shares.values()):
        raise ValueError(f"{what} shares must be non-negative")
    return shares
