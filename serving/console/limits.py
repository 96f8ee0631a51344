"""The console's credit desk: the approvals waiting for the logged-in reviewer (with who asked
and who already approved), limit requests, reductions with their notice dates, reviews due,
and the register. Decisions are taken by the session's user under the authority matrix
(``tradecredit.credit.desk`` enforces it: the requester never approves, four-eyes above one
approver's authority)."""

# No `from __future__ import annotations`: FastAPI reads the routes' Depends() from annotations.

from collections.abc import Callable
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tradecredit.credit.desk import APPROVER_ROLES, Reviewer, decide_request, file_request, outcome_of, revoke_override, settle_reduction
from tradecredit.credit.register import LimitRequest, RegisterError
from tradecredit.serving.errors import ApiError
from tradecredit.serving.schemas import AssessRequest

MIN_REASON_CHARS = 10


def reviewer_of(session: Any) -> Reviewer:
    return Reviewer(session.user_name, frozenset(getattr(session, "roles", frozenset())))


def waiting_for(requests: list[LimitRequest], approvals: dict[str, list[Any]], reviewer: Reviewer) -> list[LimitRequest]:
    """The requests this reviewer may act on: not their own, not already signed by them."""
    if not reviewer.roles & APPROVER_ROLES:
        return []
    return [
        r for r in requests
        if r.requested_by not in (reviewer.name, f"user:{reviewer.name}") and all(a.approver != reviewer.name for a in approvals[r.request_id])
    ]


def desk_context(console: Any, reviewer: Reviewer) -> dict[str, Any]:
    credit = console.credit
    today: date = credit.today
    register = credit.register
    pending = register.pending_requests()
    approvals = {r.request_id: register.approvals(r.request_id) for r in pending}
    states = register.states(today)
    size = console.cfg.console.page_size
    return {
        "today": today.isoformat(), "mine": waiting_for(pending, approvals, reviewer), "pending": pending, "approvals": approvals,
        "reductions": [(s, p) for s in states for p in s.pending_reductions],
        "reviews_due": [s for s in states if s.review_due(today)],
        "lines": [s for s in states if s.has_line][:size], "line_count": sum(1 for s in states if s.has_line),
        "is_approver": bool(reviewer.roles & APPROVER_ROLES),
    }


def _refused(exc: RegisterError | ApiError) -> Exception:
    from tradecredit.serving.console.app import Refused

    return Refused(exc.status, exc.message)


def add_limit_routes(router: APIRouter, console_of: Callable[[], Any], base: str, session_dep: Callable[..., Any], write_dep: Callable[..., Any]) -> None:
    """The credit desk's pages on the console's logged-in router."""

    @router.get("/limits", include_in_schema=False)
    def desk(request: Request, session: Any = Depends(session_dep)) -> HTMLResponse:
        console = console_of()
        return console.render("limits.html", request, session, **desk_context(console, reviewer_of(session)))

    @router.get("/limits/requests/{request_id}", include_in_schema=False)
    def request_page(request: Request, request_id: str, session: Any = Depends(session_dep)) -> HTMLResponse:
        console = console_of()
        register = console.credit.register
        found = register.request(request_id)
        if found is None:
            raise _refused(RegisterError(404, "unknown_request", "no such limit request"))
        outcome = outcome_of(register, found, console.credit.today)
        reviewer = reviewer_of(session)
        can_decide = outcome.status in ("pending_approval", "referred") and bool(waiting_for([found], {request_id: outcome.approvals}, reviewer))
        return console.render("limit_request.html", request, session, r=found, o=outcome, can_decide=can_decide)

    @router.post("/limits/requests/{request_id}/decide", include_in_schema=False)
    def decide(request_id: str, write: Any = Depends(write_dep)) -> Response:
        console = console_of()
        credit = console.credit
        form = write.form
        verdict = form.get("verdict", "")
        if verdict not in ("approve", "decline"):
            raise _refused(ApiError(400, "invalid_field", "verdict is approve or decline"))
        reason = form.get("reason", "").strip()
        if len(reason) < MIN_REASON_CHARS:
            raise _refused(ApiError(400, "invalid_field", f"write the reason (at least {MIN_REASON_CHARS} characters)"))
        text = form.get("amount", "").strip().replace(",", "")
        try:
            amount = float(text) if text else None
        except ValueError:
            raise _refused(ApiError(400, "invalid_field", "the amount is a number")) from None
        found = credit.register.request(request_id)
        if found is None:
            raise _refused(RegisterError(404, "unknown_request", "no such limit request"))
        knock_out = knock_out_of(credit.credit_facts(found.buyer_id), console.cfg.policy)
        try:
            decide_request(credit.register, console.cfg.credit, request_id, reviewer_of(write.session), verdict, reason, credit.today, amount, knock_out)  # type: ignore[arg-type]
        except RegisterError as exc:
            raise _refused(exc) from None
        return RedirectResponse(f"{base}/limits/requests/{request_id}", 303)

    @router.post("/limits/requests", include_in_schema=False)
    def new_request(write: Any = Depends(write_dep)) -> Response:
        """A request filed by a person (a credit analyst for a seller's customer)."""
        console = console_of()
        credit = console.credit
        form = write.form
        reviewer = reviewer_of(write.session)
        if not reviewer.roles & {"requester", "analyst", "administrator"}:
            raise _refused(ApiError(403, "forbidden", "filing a limit request needs the requester or analyst role"))
        try:
            item = AssessRequest(buyer_id=form.get("buyer_id", ""), requested_limit=float(form.get("amount", "").replace(",", "")))
            terms = int(form.get("terms_days", ""))
        except ValueError:
            raise _refused(ApiError(400, "invalid_field", "buyer id, amount (a number) and terms in days are needed")) from None
        seller = form.get("seller_id", "").strip()
        if not seller:
            raise _refused(ApiError(400, "invalid_field", "name the seller the line is for"))
        try:
            view = credit.policy_view(item, seller, terms, None)
            outcome = file_request(credit.register, console.cfg.credit, view, seller, item.buyer_id, float(item.requested_limit or 0), terms, f"user:{reviewer.name}", credit.today)
        except (ApiError, RegisterError) as exc:
            raise _refused(exc) from None
        return RedirectResponse(f"{base}/limits/requests/{outcome.request.request_id}", 303)

    @router.post("/limits/{seller_id}/{buyer_id}/override/revoke", include_in_schema=False)
    def revoke(seller_id: str, buyer_id: str, write: Any = Depends(write_dep)) -> Response:
        """End a reviewer's override before its expiry: /assess goes back to the line."""
        console = console_of()
        credit = console.credit
        reason = write.form.get("reason", "").strip()
        if len(reason) < MIN_REASON_CHARS:
            raise _refused(ApiError(400, "invalid_field", f"write the reason (at least {MIN_REASON_CHARS} characters)"))
        try:
            revoke_override(credit.register, seller_id, buyer_id, reviewer_of(write.session), reason, credit.today)
        except RegisterError as exc:
            raise _refused(exc) from None
        return RedirectResponse(f"{base}/buyers/{buyer_id}#limits", 303)

    @router.post("/limits/{seller_id}/{buyer_id}/reductions/{event_id}", include_in_schema=False)
    def reduction(seller_id: str, buyer_id: str, event_id: int, write: Any = Depends(write_dep)) -> Response:
        console = console_of()
        credit = console.credit
        action = write.form.get("action", "")
        if action not in ("confirm", "reject"):
            raise _refused(ApiError(400, "invalid_field", "action is confirm or reject"))
        reason = write.form.get("reason", "").strip() or f"{action}ed in the console"
        try:
            settle_reduction(credit.register, seller_id, buyer_id, event_id, reviewer_of(write.session), action == "confirm", reason, credit.today)
        except RegisterError as exc:
            raise _refused(exc) from None
        return RedirectResponse(f"{base}/limits#reductions", 303)


def knock_out_of(facts: Any, policy: Any) -> str | None:
    """A knock-out in words, or None (the policy's own check, for approvals made by people)."""
    from tradecredit.policy import knock_outs_of

    found = knock_outs_of(facts, policy)
    return "; ".join(k.reason for k in found) or None
