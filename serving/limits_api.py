"""The limit register's endpoints, mounted on the scoring service at ``/limits``:

- ``POST /limits/requests``: a seller's application asks for a line; the answer is the
  recommendation and either a decision within delegated authority or a pending approval.
- ``GET /limits/requests/{request_id}``: where a request stands.
- ``GET /limits/{seller_id}/{buyer_id}``: a line today and its history.
- ``GET /limits``: the caller's seller's lines (an administrator key: any seller's, or all).

Every call carries an API key (the key middleware checks it and names the caller); a seller's
key sees and asks only for its own seller's lines. Approvals are made by named people in the
console, never through an application's key.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' Depends() from annotations.

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from tradecredit.credit.desk import file_request, outcome_of
from tradecredit.credit.register import RegisterError
from tradecredit.serving.access import acting_seller
from tradecredit.serving.errors import ApiError, error_response, from_validation_errors
from tradecredit.serving.limit_schemas import LimitHistory, LimitListing, LimitRequestBody, answer_of, event_of, line_of
from tradecredit.serving.schemas import AssessRequest


def caller_from_headers(request: Request) -> Any:
    """The caller the key middleware resolved (it replaces any client-sent value)."""
    from tradecredit.serving.access import caller_of

    return caller_of(request.headers)  # type: ignore[arg-type]


def build_limits_app(desk_of: Callable[[], Any], caller_of: Callable[[Request], Any]) -> FastAPI:
    """``desk_of`` returns the worker's :class:`~tradecredit.serving.credit.WorkerCredit`;
    ``caller_of`` the API caller the key middleware resolved for a request."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, title="tradecredit limits")

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> Response:
        return error_response(exc)

    @app.exception_handler(RegisterError)
    async def register_error(_: Request, exc: RegisterError) -> Response:
        return error_response(ApiError(exc.status, exc.code, exc.message))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        error = from_validation_errors(list(exc.errors()))
        return error_response(ApiError(400, error.code, error.message.replace("'query.", "'").replace("'path.", "'"), error.field))

    def seller_for(request: Request, named: str | None) -> str:
        return acting_seller(caller_of(request), named, "see or ask for limits")

    @app.post("/requests", status_code=201)
    async def request_limit(request: Request) -> JSONResponse:
        try:
            body = LimitRequestBody.model_validate_json(await request.body())
        except ValidationError as exc:
            raise from_validation_errors(exc.errors()) from None
        desk = desk_of()
        seller = seller_for(request, body.seller_id)
        bounds = desk.cfg.serving.orders
        if body.amount > bounds.max_amount:
            raise ApiError(400, "invalid_field", f"'amount' is above the largest accepted amount ({bounds.max_amount:,.0f})", "amount")
        if body.terms_days > bounds.max_terms_days:
            raise ApiError(400, "invalid_field", f"'terms_days' is above {bounds.max_terms_days} days", "terms_days")
        view = desk.policy_view(AssessRequest(buyer_id=body.buyer_id, requested_limit=body.amount), seller, body.terms_days, caller_of(request))
        outcome = file_request(
            desk.register, desk.cfg.credit, view, seller, body.buyer_id, body.amount, body.terms_days, f"key:{caller_of(request).key_id}",
            desk.today, client_key=body.client_key, accept_partial=body.accept_partial,
        )
        answer = answer_of(outcome, desk.today.isoformat())
        return JSONResponse(answer.model_dump(mode="json"), status_code=201 if outcome.created else 200)

    @app.get("/requests/{request_id}")
    def request_status(request: Request, request_id: str) -> JSONResponse:
        desk = desk_of()
        found = desk.register.request(request_id)
        if found is None:
            raise ApiError(404, "unknown_request", "no such limit request", "request_id")
        seller_for(request, found.seller_id)
        return JSONResponse(answer_of(outcome_of(desk.register, found, desk.today), desk.today.isoformat()).model_dump(mode="json"))

    @app.get("")
    @app.get("/")
    def listing(request: Request, seller_id: str | None = None, status: str | None = None, page: int = 1) -> JSONResponse:
        desk = desk_of()
        caller = caller_of(request)
        seller = None if caller.admin and seller_id is None else seller_for(request, seller_id)
        if page < 1:
            raise ApiError(400, "invalid_field", "'page' is 1 or more", "page")
        states = desk.register.states(desk.today, seller_id=seller)
        if status is not None:
            states = [s for s in states if s.status == status]
        size = desk.cfg.console.page_size
        pages = max(1, -(-len(states) // size))
        shown = states[(page - 1) * size: page * size]
        today = desk.today.isoformat()
        return JSONResponse(LimitListing(lines=[line_of(s, today) for s in shown], total=len(states), page=page, pages=pages).model_dump(mode="json"))

    @app.get("/{seller_id}/{buyer_id}")
    def line(request: Request, seller_id: str, buyer_id: str) -> JSONResponse:
        desk = desk_of()
        seller = seller_for(request, seller_id)
        state = desk.register.state(seller, buyer_id, desk.today)
        history = LimitHistory(line=line_of(state, desk.today.isoformat()), events=[event_of(e) for e in state.events])
        return JSONResponse(history.model_dump(mode="json"))

    return app
