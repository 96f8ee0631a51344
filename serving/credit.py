"""What one service worker knows for credit decisions beyond the models: the limit register,
each (seller, buyer)'s ledger position, the knock-out facts, and the open red alerts.

``/assess`` decides an order against the seller's granted line (or a reviewer's override in
force); ``/limits/requests`` files requests with the policy's view of the buyer. Positions
are read from the loaded ledger at start (the service's clock date); a new ledger load is
picked up by restarting the service, as new models are.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

from tradecredit.config import PlatformConfig
from tradecredit.credit.desk import PolicyView
from tradecredit.credit.pipeline import open_register
from tradecredit.credit.register import LimitState
from tradecredit.insurance.pipeline import policy_rates
from tradecredit.serving.errors import ApiError
from tradecredit.serving.schemas import AssessRequest
from tradecredit.workspace import Workspace

ALERTS_REFRESH_SECONDS = 60.0  # monitoring runs daily at most; a minute-old view is current


@dataclass(frozen=True)
class OrderLine:
    """The line an order is decided against."""

    granted_limit: float | None  # None: no register line; the policy's own limit applies
    source: str  # register, override, discretionary, none
    status: str  # the register's status of the line
    forced_decision: str | None  # an override's refer or decline
    note: str  # why this line


class WorkerCredit:
    def __init__(self, cfg: PlatformConfig, ws: Workspace, assessor: Any) -> None:
        from tradecredit.credit.positions import arrears_rules, load_positions

        self.cfg, self.ws, self.assessor = cfg, ws, assessor
        self.register = open_register(cfg, ws)
        self.positions = load_positions(ws, self.today, **arrears_rules(cfg.labels.default))
        # Sellers' saved policy quotes: their orders are priced at the policy's rate.
        self.policy_rates = policy_rates(ws)
        self._red: tuple[float, frozenset[str]] = (float("-inf"), frozenset())
        self._lock = threading.Lock()

    @property
    def today(self) -> date:
        return self.assessor.clock.now().date()

    def red_buyers(self) -> frozenset[str]:
        """Buyers with an open red early-warning case (re-read every ``ALERTS_REFRESH_SECONDS``)."""
        from tradecredit.monitoring.cases import red_case_buyers

        stamp, red = self._red
        if time.monotonic() - stamp < ALERTS_REFRESH_SECONDS:
            return red
        with self._lock:
            red = red_case_buyers(self.ws.alerts_db, self.today)
            self._red = (time.monotonic(), red)
        return red

    def credit_facts(self, buyer_id: str) -> Any:
        from dataclasses import replace

        from tradecredit.policy import CreditFacts

        facts = self.positions.buyers.get(buyer_id) or CreditFacts(None, None, None)
        return replace(facts, open_red_alert=buyer_id in self.red_buyers())

    def seller_position(self, seller_id: str, buyer_id: str) -> Any:
        return self.positions.sellers.get((seller_id, buyer_id))

    def order_line(self, seller_id: str, buyer_id: str, tier: str, recommended: float) -> OrderLine:
        """The seller's line for this buyer today: an override in force, else the granted line,
        else what the policy may grant on its own (the tier's automatic authority)."""
        state: LimitState = self.register.state(seller_id, buyer_id, self.today)
        o = state.override
        if o is not None:
            note = f"override by {o.by} until {o.until}: {o.reason}"
            if o.decision in ("refer", "decline"):
                return OrderLine(None, "override", state.status, o.decision, note)
            return OrderLine(o.granted if o.granted is not None else state.granted, "override", state.status, None, note)
        if state.has_line:
            return OrderLine(state.granted, "register", state.status, None, f"the granted line ({state.status}, decided by {state.decided_by})")
        automatic = self.cfg.credit.authority[tier].automatic_up_to  # type: ignore[index]
        if automatic > 0:
            line = min(recommended, automatic)
            return OrderLine(line, "discretionary", state.status, None, f"no granted line: up to {line:,.0f} within the policy's own authority; request a line at POST /limits/requests")
        return OrderLine(0.0, "none", state.status, None, f"no granted line, and the {tier}-risk tier has no automatic authority: request a line at POST /limits/requests")

    def policy_view(self, item: AssessRequest, seller_id: str, terms_days: int, caller: Any) -> PolicyView:
        """The policy's view of a buyer for a limit request (logged in the decision log as an
        assessment of the line asked for)."""
        answer = self.assessor.assess([item], "limits_request", caller=caller, seller_id=seller_id, terms_days=terms_days)[0]
        if isinstance(answer, ApiError):
            raise answer
        a = answer
        return PolicyView(
            pd_12m=a.pd_12m, grade=a.grade, tier=a.tier, recommended=a.recommended_limit, capacity=a.capacity, decision=a.decision,
            decision_code=a.decision_code, reason=a.decision_reason, limit_reasons=[r.model_dump() for r in a.limit_reasons],
            pd_reasons=[r.model_dump(include={"feature", "value", "contribution", "sentence_en", "sentence_zh"}) for r in a.explanation.reasons],
        )

    def decide(
        self, pd_12m: float, features: dict[str, Any], item: AssessRequest, seller_id: str | None, late_probability: float | None,
        terms_days: int | None, refer_because: str | None,
    ) -> tuple[Any, OrderLine | None]:
        """The policy's decision for one item with what the register and the ledger know: the
        seller's exposure and purchases, the buyer's knock-outs and red alert, and, for an
        order, the seller's line (an override in force, the granted line, or the discretionary
        limit)."""
        from dataclasses import replace

        from tradecredit.policy import buyer_facts, decide
        from tradecredit.pricing import lgd_of

        facts = buyer_facts(features)
        position = self.seller_position(seller_id, item.buyer_id) if seller_id else None
        if seller_id is not None:
            facts = replace(
                facts, exposure=position.open_balance if position else 0.0,
                seller_monthly_purchases=position.monthly_purchases if position else None,
                days_beyond_terms=position.days_beyond_terms if position and position.days_beyond_terms is not None else facts.days_beyond_terms,
            )
        order = item.order.amount if item.order else None
        kwargs = dict(
            requested_limit=item.requested_limit, refer_because=refer_because, credit_facts=self.credit_facts(item.buyer_id),
            terms_days=terms_days, late_probability=late_probability, lgd=lgd_of(features.get("country"), self.cfg.policy),
            policy_rate=self.policy_rate(seller_id),
        )
        first = decide(pd_12m, facts, order, self.cfg.policy, **kwargs)
        if order is None or seller_id is None:
            return first, None
        line = self.order_line(seller_id, item.buyer_id, first.tier, first.recommended_limit)
        if line.forced_decision is not None:
            forced = line.forced_decision
            return replace(first, decision=forced, approved_amount=0.0, reason=line.note, reason_code=f"override_{forced}"), line
        return decide(pd_12m, facts, order, self.cfg.policy, granted_limit=line.granted_limit, **kwargs), line

    def policy_rate(self, seller_id: str | None) -> float | None:
        return self.policy_rates.get(seller_id) if seller_id is not None else None

    def policy_quote(self, seller_id: str, what_if: Any) -> Any:
        """A seller's policy quote on the service's date (the PDs of the monitoring run then)."""
        from tradecredit.insurance.pipeline import quote_seller

        return quote_seller(self.cfg, self.ws, seller_id, self.today, what_if, self.register)

    def close(self) -> None:
        self.register.close()
