"""The scoring service: a BentoML 1.4 service over :class:`~tradecredit.serving.engine.Assessor`.

Started by ``tradecredit serve`` (which runs ``bentoml serve`` on this module), or directly:
``bentoml serve tradecredit.serving.service:CreditService``. It reads the workspace and the
config folder from ``TRADECREDIT_WORKSPACE`` and ``TRADECREDIT_CONFIG_DIR``, and the service
clock from ``TRADECREDIT_SERVE_AS_OF`` (unset: the wall clock).

Endpoints (all POST with a JSON body; the OpenAPI document is at ``/docs.json``):
``/assess`` one buyer, ``/assess_batch`` many, ``/status`` the loaded model versions.
BentoML's own ``/livez`` (the process answers) and ``/readyz`` (models, features, the
decision log and the console's portfolio table are ready) are the health and readiness probes. The risk reviewer console
(``serving/console``) is mounted at ``/console`` and uses the same assessor.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
from starlette.responses import JSONResponse

from tradecredit.backends_config import BackendsConfig
from tradecredit.config import default_config_dir, load_config, load_profiled_section
from tradecredit.serving.access import ApiKeyMiddleware, acting_seller, caller_of
from tradecredit.serving.config import ConsoleConfig, ServingConfig
from tradecredit.serving.console.app import Console, build_console_app
from tradecredit.serving.credit import WorkerCredit
from tradecredit.serving.engine import Assessor, Clock, open_assessor
from tradecredit.serving.limits_api import build_limits_app, caller_from_headers
from tradecredit.serving.errors import ApiError, GuardMiddleware, error_response
from tradecredit.serving.openapi import ERROR_RESPONSES, OpenApiErrors
from tradecredit.serving.process import AS_OF_ENV, parse_as_of
from tradecredit.serving.schemas import (
    AssessRequest,
    Assessment,
    BatchItem,
    BatchRequest,
    BatchResponse,
    BuyerId,
    Money,
    Order,
    QuoteAddition,
    QuoteRequest,
    ServiceStatus,
)
from tradecredit.sql_stores import users_url
from tradecredit.workspace import Workspace



def refusal(ctx: bentoml.Context, error: ApiError) -> JSONResponse:
    """An error answer from an endpoint that takes the request context: BentoML sends the
    context's status code, so it is set as well as the response's."""
    ctx.response.status_code = error.status
    return error_response(error)


def serving_config() -> ServingConfig:
    # The decorator below needs the worker count and the guards' limits when the module is
    # imported by `bentoml serve`; this reads only serving.yaml (and the profile's keys for it).
    return load_profiled_section(ServingConfig)


_SERVING = serving_config()
_CONSOLE_PATH = load_profiled_section(ConsoleConfig).path
LIMITS_PATH = "/limits"
# The console's routes run in the worker that serves them and use that worker's assessor.
console_app = build_console_app(lambda: bentoml.get_current_service().console, _CONSOLE_PATH)
limits_app = build_limits_app(lambda: bentoml.get_current_service().credit, caller_from_headers)


@bentoml.service(
    name="tradecredit",
    description="Trade-credit assessment: PD, grade, limit, decision, insurance quote and SHAP reasons for a buyer.",
    workers=_SERVING.workers,
    threads=_SERVING.threads_per_worker,
    traffic={"timeout": 60},
    # Every decision is in the decision log; a second line per request in the server log only
    # costs CPU on the request path. Prometheus metrics stay on /metrics.
    logging={"access": {"enabled": _SERVING.access_log}},
)
@bentoml.asgi_app(console_app, path=_CONSOLE_PATH)
@bentoml.asgi_app(limits_app, path=LIMITS_PATH)
class CreditService:
    def __init__(self) -> None:
        cfg = load_config(default_config_dir())
        self.cfg = cfg
        self.clock = Clock(parse_as_of(os.environ.get(AS_OF_ENV)))
        ws = Workspace.resolve(None)
        self.assessor: Assessor = open_assessor(ws, cfg, self.clock)
        self.credit = WorkerCredit(cfg, ws, self.assessor)
        self.assessor.credit = self.credit
        self.console = Console(cfg, ws, self.assessor)
        self.console.credit = self.credit
        # Before ready: the first requests must not share the cores with scoring every buyer.
        self.console.prepare()

    def __is_ready__(self) -> bool:
        return self.assessor is not None

    # input_spec: the request models forbid unknown keys, so a misspelt "requested_limt" is a
    # 400 naming it; BentoML's model built from the signature would drop it without a word.
    @bentoml.api(route="/assess", input_spec=AssessRequest)
    def assess(
        self, ctx: bentoml.Context, buyer_id: BuyerId, order: Order | None = None, requested_limit: Money | None = None,
        seller_id: str | None = None,
    ) -> Assessment:
        """Assess one buyer: PD, grade, limit and decision on an optional order (against the
        seller's granted line) or requested limit, the insurance quote, and the reasons."""
        item = AssessRequest(buyer_id=buyer_id, order=order, requested_limit=requested_limit, seller_id=seller_id)
        result = self.assessor.assess([item], "assess", caller=caller_of(ctx.request.headers))[0]
        if isinstance(result, ApiError):
            return refusal(ctx, result)  # type: ignore[return-value]
        return result

    @bentoml.api(route="/assess_batch", input_spec=BatchRequest)
    def assess_batch(self, ctx: bentoml.Context, requests: list[AssessRequest]) -> BatchResponse:
        """Assess many buyers in one call; an item that cannot be assessed (an unknown buyer)
        gets its error in place, the others their assessments."""
        limit = self.cfg.serving.max_batch_size
        if len(requests) > limit:
            return refusal(  # type: ignore[return-value]
                ctx, ApiError(413, "too_large", f"{len(requests):,} buyers in one batch; the limit is {limit:,}: split it", "requests")
            )
        if not requests:
            return refusal(ctx, ApiError(400, "invalid_field", "'requests' is empty", "requests"))  # type: ignore[return-value]
        results = self.assessor.assess(requests, "assess_batch", caller=caller_of(ctx.request.headers))
        items = []
        for i, (request, result) in enumerate(zip(requests, results, strict=True)):
            if isinstance(result, ApiError):
                items.append(BatchItem(index=i, buyer_id=request.buyer_id, assessment=None, error=result.detail()))  # type: ignore[arg-type]
            else:
                items.append(BatchItem(index=i, buyer_id=request.buyer_id, assessment=result, error=None))
        failed = sum(1 for it in items if it.error is not None)
        return BatchResponse(assessed=len(items) - failed, failed=failed, results=items)

    @bentoml.api(route="/insurance/quote", input_spec=QuoteRequest)
    def insurance_quote(
        self, ctx: bentoml.Context, seller_id: str | None = None, add: list[QuoteAddition] | None = None, remove: list[BuyerId] | None = None,
        terms_days: float | None = None,
    ) -> dict[str, Any]:
        """A seller's trade-credit insurance policy quote (all its insurable buyers) priced on
        exposure at default, with its structure, loss ratio, stress and per-buyer contributions;
        a what-if when buyers are added or removed or the terms changed."""
        from tradecredit.errors import MissingArtefact
        from tradecredit.insurance.pipeline import AddedBuyer, QuoteError, WhatIf

        try:
            seller = acting_seller(caller_of(ctx.request.headers), seller_id, "quote a policy")
        except ApiError as exc:
            return refusal(ctx, exc)  # type: ignore[return-value]
        what_if = WhatIf(tuple(AddedBuyer(a.buyer_id, a.annual_turnover, a.terms_days) for a in add or []), tuple(remove or []), terms_days)
        try:
            return self.credit.policy_quote(seller, what_if).to_json()
        except QuoteError as exc:
            return refusal(ctx, ApiError(exc.status, exc.code, str(exc)))  # type: ignore[return-value]
        except MissingArtefact as exc:
            return refusal(ctx, ApiError(409, "not_ready", str(exc)))  # type: ignore[return-value]

    @bentoml.api(route="/status")
    def status(self) -> ServiceStatus:
        """The model versions loaded at start, the clock and the decision count."""
        log = self.assessor.log
        count = log.count() if log is not None else 0
        return ServiceStatus(
            ready=True, model_versions=self.assessor.model_versions, clock=self.clock.describe(),
            features_max_age_days=self.cfg.features.max_online_age_days, decisions_logged=count,
        )


# Every call but the probes, metrics, docs and the console (its own logins) needs a key.
CreditService.add_asgi_middleware(
    ApiKeyMiddleware, users_url=users_url(load_profiled_section(BackendsConfig), Workspace.resolve(None)), console_path=_CONSOLE_PATH,
    required=_SERVING.api_keys.required, cache_seconds=_SERVING.api_keys.cache_seconds,
)
CreditService.add_asgi_middleware(
    GuardMiddleware, max_request_bytes=_SERVING.max_request_bytes, max_concurrency=_SERVING.max_concurrency, console_path=_CONSOLE_PATH
)
# Adds our error responses to BentoML's generated OpenAPI document.
CreditService.add_asgi_middleware(OpenApiErrors, responses=ERROR_RESPONSES)
