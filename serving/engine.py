"""The assessment itself, without HTTP: online features from Feast, both champion models with
their TreeSHAP explanations, the credit policy, and the decision log.

The BentoML service (``service.py``) is a thin layer over :class:`Assessor`; the benchmarks
time both, so the cost the service adds is measured, not guessed.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any


from tradecredit.config import PlatformConfig
from tradecredit.features.catalog import ORDER_FEATURES
from tradecredit.serving.decision_log import DecisionLog, DecisionRecord
from tradecredit.sql_stores import decision_log_url
from tradecredit.serving.errors import ApiError
from tradecredit.policy import FACT_FEATURES, buyer_facts, decide
from tradecredit.pricing import lgd_of
from tradecredit.serving.reasons import top_reasons
from tradecredit.serving.schemas import AssessRequest, Assessment, Explanation, Freshness, Insurance, LatePayment, LimitReasonOut, Reason
from tradecredit.workspace import Workspace

if TYPE_CHECKING:  # Feast and LightGBM load in the worker that opens an assessor, not in the process that only reads the service module
    from tradecredit.features.store import OnlineFeatureReader, OnlineFeatures
    from tradecredit.training.model import CreditModel, Explained

ORDER_FEATURE_NAMES = frozenset(f.name for f in ORDER_FEATURES)


@dataclass(frozen=True)
class ServedModel:
    """A champion model and the registry version it was loaded from (aliases move; versions don't)."""

    model: CreditModel
    registered_model: str
    version: str


@dataclass(frozen=True)
class Clock:
    """The service's "now". ``fixed`` replays a date (a simulated or historical portfolio);
    None is the wall clock."""

    fixed: datetime | None = None

    def now(self) -> datetime:
        return self.fixed or datetime.now(UTC)

    def describe(self) -> str:
        return "wall" if self.fixed is None else self.fixed.isoformat()


@dataclass(frozen=True)
class BuyerExplanation:
    """What an assessment read and computed for one buyer: its online features and the default
    model's score and TreeSHAP explanation."""

    features: dict[str, Any]
    explained: Explained


@dataclass(frozen=True)
class BuyerFreshness:
    features_as_of: datetime | None
    age_days: float | None
    stale: list[str]
    known: bool


def freshness(online: OnlineFeatures, now: datetime, judged: Collection[str] | None = None) -> list[BuyerFreshness]:
    """Per buyer: the oldest snapshot time among its features, its age, and the stale features
    (missing, older than the limit, or dated after the clock: ``OnlineFeatures.stale_features``).
    ``judged``: the features that count (those the served models read; default every one), so
    a view served but read by no model cannot refer a decision."""
    names = [n for n in online.names if judged is None or n in judged]
    stale = online.stale_features()
    out = []
    for i, buyer in enumerate(online.buyer_ids):
        stamps = [s for s in (online.response[f"{n}__ts"][i] for n in names) if s]
        mine = [n for n in stale[buyer] if judged is None or n in judged]
        if not stamps:
            out.append(BuyerFreshness(None, None, mine, known=False))
            continue
        oldest = min(stamps)
        out.append(BuyerFreshness(datetime.fromtimestamp(oldest, UTC), (now.timestamp() - oldest) / 86400, mine, known=True))
    return out


def _reasons(model: CreditModel, values: dict[str, Any], explained: Explained, i: int, available: bool, count: int) -> Explanation:
    contributions = explained.contributions[i]
    reasons = (
        [Reason(**r.__dict__) for r in top_reasons(model.features, values, contributions[:-1], model.monotone, count)]
        if available
        else []
    )
    return Explanation(
        available=available, additivity_error=float(explained.additivity_error[i]), base_value=float(contributions[-1]),
        raw_score=float(explained.raw[i]), reasons=reasons,
    )


def _json_value(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


class Assessor:
    """Assesses buyers with fixed models, one Feast reader, a policy and a decision log."""

    def __init__(
        self,
        cfg: PlatformConfig,
        models: dict[str, ServedModel],
        reader: OnlineFeatureReader,
        clock: Clock,
        log: DecisionLog | None,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.cfg = cfg
        self.models = models
        self.reader = reader
        self.clock = clock
        self.log = log
        self.new_id = new_id
        # The register, ledger positions and alerts (serving/credit.py), when the service has them.
        self.credit: Any = None
        served = set(reader.names)
        needed = {f for m in models.values() for f in m.model.features if f not in ORDER_FEATURE_NAMES} | set(FACT_FEATURES)
        self.judged = frozenset(needed)  # the features whose staleness refers a decision
        missing = sorted(needed - served)
        if missing:
            raise ValueError(f"the online feature service lacks features the models use: {', '.join(missing)}")

    @property
    def model_versions(self) -> dict[str, str]:
        return {m.registered_model: m.version for m in self.models.values()}

    def check_bounds(self, item: AssessRequest, prefix: str = "") -> ApiError | None:
        bounds = self.cfg.serving.orders
        if item.order is not None and item.order.amount > bounds.max_amount:
            return ApiError(400, "invalid_field", f"'{prefix}order.amount' is above the largest accepted amount ({bounds.max_amount:,.0f})", f"{prefix}order.amount")
        if item.order is not None and item.order.terms_days > bounds.max_terms_days:
            return ApiError(400, "invalid_field", f"'{prefix}order.terms_days' is above {bounds.max_terms_days} days", f"{prefix}order.terms_days")
        if item.requested_limit is not None and item.requested_limit > bounds.max_amount:
            return ApiError(400, "invalid_field", f"'{prefix}requested_limit' is above the largest accepted amount ({bounds.max_amount:,.0f})", f"{prefix}requested_limit")
        return None

    def assess(
        self, items: list[AssessRequest], endpoint: str, log: bool = True, details: dict[int, BuyerExplanation] | None = None,
        caller: Any = None, seller_id: str | None = None, terms_days: int | None = None,
    ) -> list[Assessment | ApiError]:
        """One answer per item, in order: an assessment, or the error that item got. Every
        assessment is in the decision log before this returns (``log=False``: a what-if the
        console shows a reviewer, which decides nothing). ``details``, if given, receives each
        assessed item's features and full default-model explanation, by item index (the
        console's buyer page draws them without scoring the buyer a second time). ``caller``
        is the API key's caller; ``seller_id`` names the seller for every item (a limit
        request), ``terms_days`` the terms of a line asked for."""
        request_id = self.new_id()
        now = self.clock.now()
        results: list[Assessment | ApiError | None] = [None] * len(items)
        prefix = "requests." if endpoint == "assess_batch" else ""
        for i, item in enumerate(items):
            if (error := self.check_bounds(item, f"{prefix}{i}." if prefix else "")) is not None:
                results[i] = error
            elif caller is not None and not caller.admin and item.seller_id is not None and item.seller_id != caller.seller_id:
                # Never says whose the key is not: only that it cannot act for the seller named.
                results[i] = ApiError(403, "forbidden", "this API key belongs to another seller: it cannot ask for this seller", f"{prefix}{i}.seller_id" if prefix else "seller_id")
        todo = [i for i, r in enumerate(results) if r is None]
        buyer_ids = list(dict.fromkeys(items[i].buyer_id for i in todo))
        online = self.reader.read(buyer_ids, now) if buyer_ids else None
        fresh = dict(zip(buyer_ids, freshness(online, now, self.judged), strict=True)) if online else {}
        rows = dict(zip(buyer_ids, online.rows(), strict=True)) if online else {}
        for i in todo:
            if not fresh[items[i].buyer_id].known:
                results[i] = ApiError(
                    404, "unknown_buyer",
                    # The id is not repeated: an error never echoes input (a batch item carries its buyer_id).
                    "this buyer has no features in the online store: load its ledger and materialize, "
                    "or check the id (no cold-start score is given; see docs/scoring-api.md)",
                    f"{prefix}{i}.buyer_id" if prefix else "buyer_id",
                )
        todo = [i for i in todo if results[i] is None]
        if todo:
            records = self._assess_known(items, todo, rows, fresh, now, request_id, endpoint, results, details, caller, seller_id, terms_days)
            if self.log is not None and log:
                self.log.append(records)
        return [r for r in results if r is not None]

    def _assess_known(
        self,
        items: list[AssessRequest],
        todo: list[int],
        rows: dict[str, dict[str, Any]],
        fresh: dict[str, BuyerFreshness],
        now: datetime,
        request_id: str,
        endpoint: str,
        results: list[Assessment | ApiError | None],
        details: dict[int, BuyerExplanation] | None = None,
        caller: Any = None,
        seller_id: str | None = None,
        terms_days: int | None = None,
    ) -> list[DecisionRecord]:
        serving = self.cfg.serving
        default = self.models["default"]
        buyer_rows = [rows[items[i].buyer_id] for i in todo]
        explained = default.model.explain(default.model.rows_array(buyer_rows))
        available = explained.available(serving.additivity_tolerance)
        late_at = {i: k for k, i in enumerate(i for i in todo if items[i].order is not None)}
        late_rows: list[dict[str, Any]] = []
        late_explained = None
        if late_at:
            late = self.models["late"]
            late_rows = order_rows([items[i] for i in late_at], [rows[items[i].buyer_id] for i in late_at], now)
            late_explained = late.model.explain(late.model.rows_array(late_rows))
            late_available = late_explained.available(serving.additivity_tolerance)
        records = []
        stamp = now.isoformat()
        for k, i in enumerate(todo):
            item, features, f = items[i], buyer_rows[k], fresh[items[i].buyer_id]
            problems = []
            if f.stale:
                problems.append(f"{len(f.stale)} feature(s) missing, older than {self.cfg.features.max_online_age_days} days or dated after the clock")
            if not available[k]:
                problems.append("the explanation failed its additivity check")
            late_payment = None
            late_values: dict[str, Any] | None = None
            if i in late_at and late_explained is not None:
                j = late_at[i]
                late_values = late_rows[j]
                if not late_available[j]:
                    problems.append("the late-payment explanation failed its additivity check")
                late_payment = LatePayment(
                    probability=float(late_explained.probability[j]), label=self.models["late"].model.label,
                    order_amount=item.order.amount,  # type: ignore[union-attr]
                    terms_days=item.order.terms_days,  # type: ignore[union-attr]
                    explanation=_reasons(self.models["late"].model, late_values, late_explained, j, bool(late_available[j]), serving.top_reasons),
                )
            pd_12m = float(explained.probability[k])
            seller = seller_id or item.seller_id or (caller.seller_id if caller is not None else None)
            refer_because = "; ".join(problems) or None
            line = None
            if self.credit is not None:
                decision, line = self.credit.decide(
                    pd_12m, features, item, seller, late_payment.probability if late_payment else None,
                    item.order.terms_days if item.order else terms_days, refer_because,
                )
            else:
                decision = decide(
                    pd_12m, buyer_facts(features), item.order.amount if item.order else None, self.cfg.policy,
                    requested_limit=item.requested_limit, refer_because=refer_because,
                    terms_days=item.order.terms_days if item.order else terms_days, late_probability=late_payment.probability if late_payment else None,
                    lgd=lgd_of(features.get("country"), self.cfg.policy),
                )
            assessment = Assessment(
                decision_id=self.new_id(), buyer_id=item.buyer_id, seller_id=seller, assessed_at=stamp, pd_12m=pd_12m, grade=decision.grade,
                tier=decision.tier,  # type: ignore[arg-type]
                late_payment_probability=late_payment.probability if late_payment else None,
                recommended_limit=decision.recommended_limit, exposure=decision.exposure, available_limit=decision.available_limit,
                capacity=decision.capacity.amount, capacity_source=decision.capacity.source,
                requested_amount=item.order.amount if item.order else None, requested_limit=item.requested_limit,
                decision=decision.decision, decision_code=decision.reason_code, approved_amount=decision.approved_amount, decision_reason=decision.reason,
                limit_reasons=[LimitReasonOut(**r.__dict__) for r in decision.limit_reasons],
                granted_limit=line.granted_limit if line else None, limit_source=line.source if line else None,
                limit_status=line.status if line else None, limit_note=line.note if line else None,
                expected_loss=decision.expected_loss,
                insurance=Insurance(
                    cover_ratio=decision.cover_ratio, premium_rate=decision.premium_rate, rate_source=decision.rate_source,  # type: ignore[arg-type]
                    insured_turnover=decision.insured_turnover, premium=decision.premium, order_premium=decision.order_premium,
                    lgd=lgd_of(features.get("country"), self.cfg.policy),
                ),
                explanation=_reasons(default.model, features, explained, k, bool(available[k]), serving.top_reasons),
                late_payment=late_payment,
                model_versions={default.registered_model: default.version, **({self.models["late"].registered_model: self.models["late"].version} if late_payment else {})},
                freshness=Freshness(
                    features_as_of=f.features_as_of.isoformat() if f.features_as_of else None,
                    age_days=f.age_days, stale=bool(f.stale), stale_features=f.stale,
                ),
            )
            results[i] = assessment
            if details is not None:
                details[i] = BuyerExplanation(features, explained.row(k))
            used = {"default": {n: _json_value(features.get(n)) for n in default.model.features}}
            if late_values is not None:
                used["late"] = {n: _json_value(late_values.get(n)) for n in self.models["late"].model.features}
            records.append(
                DecisionRecord(
                    decision_id=assessment.decision_id, logged_at=datetime.now(UTC).isoformat(), assessed_at=stamp,
                    request_id=request_id, endpoint=endpoint, buyer_id=item.buyer_id, request=item.model_dump(mode="json"),
                    features=used, features_as_of=assessment.freshness.features_as_of, stale=bool(f.stale),
                    default_model=f"{default.registered_model}:{default.version}",
                    late_model=f"{self.models['late'].registered_model}:{self.models['late'].version}" if late_payment else None,
                    pd_12m=pd_12m, grade=decision.grade, decision=decision.decision, response_json=assessment.model_dump_json(),
                    seller_id=seller, api_key_id=caller.key_id if caller is not None else None,
                )
            )
        return records


def order_rows(items: list[AssessRequest], buyer_rows: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The late-payment model's rows: the buyer's features plus the order's, by the same
    definition the training set used (the order is issued on the clock's date)."""
    from tradecredit.features.training_sets import order_feature_values  # it imports Feast: loaded by the worker only

    return [
        {
            **row,
            **order_feature_values(
                it.order.amount, it.order.terms_days, now.date(),  # type: ignore[union-attr]
                row.get("amount_issued_365d"), row.get("invoices_issued_365d"),
            ),
        }
        for it, row in zip(items, buyer_rows, strict=True)
    ]


def load_champions(ws: Workspace, cfg: PlatformConfig) -> dict[str, ServedModel]:
    """Both models from the MLflow registry, loaded as native models: the versions a Bento
    pins, else the champions."""
    from tradecredit.training.registry import CHAMPION, champion_versions, connect, load_version, pinned_versions, version_by

    client = connect(ws, cfg.backends)
    versions = pinned_versions(cfg)
    if versions is None:
        versions = champion_versions(client, cfg)
    else:
        for registered, version in versions.values():
            version_by(client, registered, version, CHAMPION)  # a clear error if the registry lost it
    return {name: ServedModel(load_version(client, registered, version), registered, version) for name, (registered, version) in versions.items()}


def open_assessor(ws: Workspace, cfg: PlatformConfig, clock: Clock, with_log: bool = True) -> Assessor:
    """Load the champions, open the Feast online store and the decision log."""
    from tradecredit.features.store import OnlineFeatureReader, open_store

    models = load_champions(ws, cfg)
    reader = OnlineFeatureReader(open_store(ws.feature_paths(), cfg.features, cfg.backends), "default", cfg.features)
    log = DecisionLog(decision_log_url(cfg.backends, ws), cfg.serving.decision_log.synchronous, cfg.serving.decision_log.busy_timeout_ms) if with_log else None
    return Assessor(cfg, models, reader, clock, log)
