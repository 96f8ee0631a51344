"""The credit stages the command line, the service and monitoring call: open the register
where the config says, and re-evaluate granted limits after a monitoring run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from tradecredit.config import PlatformConfig
from tradecredit.credit.desk import AdjustmentOutcome, BuyerRisk, adjust_limits
from tradecredit.credit.register import LimitRegister, LimitState
from tradecredit.sql_stores import register_url
from tradecredit.workspace import Workspace


def open_register(cfg: PlatformConfig, ws: Workspace) -> LimitRegister:
    """The register named by ``backends.register_url``, else the workspace's SQLite file."""
    return LimitRegister(register_url(cfg.backends, ws))


def seller_exposures(ws: Workspace, as_of: date) -> dict[str, dict[str, float]]:
    """Per buyer, each seller's open balance on ``as_of`` (from the loaded ledger)."""
    from tradecredit.credit.positions import load_positions

    out: dict[str, dict[str, float]] = {}
    for (seller_id, buyer_id), position in load_positions(ws, as_of).sellers.items():
        out.setdefault(buyer_id, {})[seller_id] = position.open_balance
    return out


def granted_by_buyer(cfg: PlatformConfig, ws: Workspace, as_of: date) -> dict[str, float]:
    """Each buyer's granted lines on ``as_of``, summed across sellers (the cases' materiality)."""
    register = open_register(cfg, ws)
    try:
        out: dict[str, float] = {}
        for s in register.states(as_of):
            if s.has_line:
                out[s.buyer_id] = out.get(s.buyer_id, 0.0) + s.granted
        return out
    finally:
        register.close()


def buyer_risks(positions: pl.DataFrame, red_buyers: set[str], exposures: dict[str, dict[str, float]],
                review_buyers: set[str] = frozenset()) -> dict[str, BuyerRisk]:
    """A monitoring run's view of each scored buyer (its portfolio positions frame)."""
    return {
        row["buyer_id"]: BuyerRisk(
            float(row["pd_12m"]), int(row["grade"]), row["tier"], float(row["recommended_limit"]), row["buyer_id"] in red_buyers,
            exposures.get(row["buyer_id"], {}), row["buyer_id"] in review_buyers,
        )
        for row in positions.select("buyer_id", "pd_12m", "grade", "tier", "recommended_limit").iter_rows(named=True)
    }


@dataclass(frozen=True)
class RegisterReview:
    outcome: AdjustmentOutcome
    lines: int

    def describe(self) -> str:
        o = self.outcome
        return (
            f"Limit register: {self.lines:,} line(s); {o.reductions_proposed} reduction(s) proposed, "
            f"{len(o.pending_reductions)} awaiting their notice date, {o.increases_requested} increase request(s) filed, "
            f"{o.expired} expired, {len(o.reviews_due)} review(s) due."
        )

    def summary(self) -> dict[str, int]:
        o = self.outcome
        return {
            "limit_lines": self.lines, "limit_reductions_proposed": o.reductions_proposed, "limit_reductions_pending": len(o.pending_reductions),
            "limit_increases_requested": o.increases_requested, "limit_lines_expired": o.expired, "limit_reviews_due": len(o.reviews_due),
        }


def review_register(cfg: PlatformConfig, ws: Workspace, as_of: date, positions: pl.DataFrame, red_buyers: set[str],
                    review_buyers: set[str] = frozenset()) -> RegisterReview:
    """Re-evaluate every granted limit against a monitoring run's grades and early-warning cases
    (red: a reduction proposal; yellow, ``review_buyers``: a review now)."""
    register = open_register(cfg, ws)
    try:
        lines: list[LimitState] = [s for s in register.states(as_of) if s.has_line]
        exposures = seller_exposures(ws, as_of) if lines else {}
        outcome = adjust_limits(register, cfg.credit, buyer_risks(positions, red_buyers, exposures, review_buyers), as_of)
        return RegisterReview(outcome, len(lines))
    finally:
        register.close()
