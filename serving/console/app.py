"""The risk reviewer console: a FastAPI app mounted on the scoring service at ``/console``.

It runs inside the service's workers and uses the worker's own :class:`Assessor` (the same
champion models, Feast online reader, policy and decision log), so a reviewer sees exactly what
``/assess`` answers. Pages are rendered on the server (Jinja2, autoescaped); charts are Plotly
figures drawn by plotly.js, which the console serves from the Plotly package.

Every route but the login page and the static files needs a live session (a router-level
dependency, so a new route cannot forget it); every write also needs the session's CSRF token,
and takes the reviewer from the session, never from the request.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' Depends() from annotations
# that name closures of build_console_app, which string annotations cannot resolve.

import fcntl
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import polars as pl
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError

from tradecredit.config import PlatformConfig
from tradecredit.serving.console import charts
from tradecredit.serving.console.auth import ConsoleAuth, Session
from tradecredit.serving.console.data import (
    CASE_KINDS,
    PortfolioTable,
    QueryError,
    build_portfolio,
    case_rows,
    filter_options,
    open_case,
    parse_portfolio_query,
    payment_history,
    pd_history,
    portfolio_page,
    read_alerts,
    read_portfolio_table,
    registry_timeline,
    sort_cases,
    statements,
    with_acknowledgements,
    write_portfolio_table,
)
from tradecredit.monitoring.cases import CaseBook, CaseError, read_cases
from tradecredit.credit.desk import record_override
from tradecredit.credit.register import RegisterError
from tradecredit.serving.console.limits import add_limit_routes, knock_out_of, reviewer_of
from tradecredit.serving.console.text import LANGUAGES, words
from tradecredit.serving.decision_log import DecisionLog, ReviewRecord
from tradecredit.serving.engine import Assessor, BuyerExplanation
from tradecredit.serving.errors import ApiError, from_validation_errors
from tradecredit.serving.reasons import top_reasons
from tradecredit.sql_stores import users_url
from tradecredit.serving.schemas import AssessRequest, Assessment
from tradecredit.workspace import Workspace

SESSION_COOKIE = "tradecredit_session"
LANGUAGE_COOKIE = "tradecredit_lang"
HERE = Path(__file__).parent
DECISIONS = ("approve", "partial", "refer", "decline")
# Form fields that would name someone: the reviewer is always the logged-in user.
IDENTITY_FIELDS = frozenset({"reviewer", "user", "user_name", "username", "by"})
MIN_REASON_CHARS = 10
DECISIONS_SHOWN = 50  # the buyer page lists the latest decisions; an ERP may log thousands


def plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


class Console:
    """The console's state in one service worker: the assessor, logins, and the portfolio table
    (shared by the workers at start, rebuilt when older than ``portfolio_refresh_minutes``)."""

    def __init__(self, cfg: PlatformConfig, ws: Workspace, assessor: Assessor) -> None:
        self.cfg = cfg
        self.ws = ws
        self.assessor = assessor
        self.credit: Any = None  # the worker's serving.credit.WorkerCredit, set by the service
        self.auth = ConsoleAuth(users_url(cfg.backends, ws), cfg.console)
        self.alerts_db = ws.alerts_db
        buyers = ws.read_ledger_table("buyers", ["buyer_id", "country", "industry", "legal_form", "founded_on", "employees"])
        self.buyers = buyers.sort("buyer_id")
        self._table: PortfolioTable | None = None
        self._lock = threading.Lock()
        self.templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
        self.templates.filters["money"] = lambda v: "–" if v is None else f"{v:,.0f}"
        self.templates.filters["pct"] = lambda v, digits=2: "–" if v is None else f"{v * 100:.{digits}f}%"

    @property
    def now(self) -> datetime:
        return self.assessor.clock.now()

    @property
    def log(self) -> DecisionLog:
        # The console runs with the decision log: reviewer actions are written there.
        assert self.assessor.log is not None
        return self.assessor.log

    def portfolio(self) -> PortfolioTable:
        """The current table; built on first use and when stale (concurrent callers wait for
        one build instead of each starting their own)."""
        limit = self.cfg.console.portfolio_refresh_minutes * 60
        table = self._table
        if table is not None and time.monotonic() - table.built_at < limit:
            return table
        with self._lock:
            table = self._table
            if table is None or time.monotonic() - table.built_at >= limit:
                open_alerts = read_alerts(self.alerts_db, self.now.date())
                table = build_portfolio(self.assessor, self.buyers["buyer_id"].to_list(), open_alerts, self.now)
                self._table = table
        return table

    def prepare(self) -> PortfolioTable:
        """Have the portfolio table before the worker reports ready, built once for all the
        service's workers: the first to take the lock builds and shares it, the others read
        it. Scoring every buyer in each worker while the first requests arrive cost them
        their latency (p99 68 ms in the first minute after ready)."""
        ws = self.ws
        ws.serving.mkdir(parents=True, exist_ok=True)
        key = self._table_key()
        max_age = self.cfg.console.portfolio_refresh_minutes * 60
        with open(ws.portfolio_table_lock, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this worker dies
            shared = read_portfolio_table(ws.portfolio_table_file, ws.portfolio_table_meta, key, max_age)
            if shared is not None:
                with self._lock:
                    self._table = shared
                print(f"portfolio table: read the one another worker built ({shared.frame.height:,} buyers)", file=sys.stderr, flush=True)
                return shared
            table = self.portfolio()
            write_portfolio_table(table, ws.portfolio_table_file, ws.portfolio_table_meta, key)
            print(f"portfolio table: built ({table.frame.height:,} buyers, {table.build_seconds:.1f} s) and shared", file=sys.stderr, flush=True)
            return table

    def _table_key(self) -> dict[str, Any]:
        """What the table depends on besides the time: the models, a fixed service clock, and
        the files the online store, the feature build and the alerts live in (changed by a
        materialize, a build or a monitoring run)."""
        files = [self.ws.feature_paths().online_store_db, self.ws.build_summary, self.alerts_db]
        return {
            "models": self.assessor.model_versions,
            "clock": self.assessor.clock.describe(),
            "files": {str(f): f.stat().st_mtime_ns for f in files if f.exists()},
            "buyers": self.buyers.height,
        }

    def render(self, name: str, request: Request, session: Session | None, status: int = 200, **context: Any) -> HTMLResponse:
        lang = language(request)
        page = self.templates.get_template(name).render(
            base=self.cfg.console.path, session=session, lang=lang, t=words(lang), clock=self.now.isoformat(timespec="seconds"),
            path=request.url.path, query=request.url.query, **context,
        )
        return HTMLResponse(page, status_code=status)


class NotLoggedIn(Exception):
    """No live session on a request that needs one."""


class Refused(Exception):
    """A request a logged-in reviewer may not make as sent (bad input, a forged write)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def language(request: Request) -> str:
    lang = request.cookies.get(LANGUAGE_COOKIE, "en")
    return lang if lang in LANGUAGES else "en"


def _safe_next(base: str, target: str | None) -> str:
    """Only a path inside the console: a login link can never send a reviewer elsewhere."""
    if target and target.startswith(base + "/") and not target.startswith("//") and "\\" not in target and "://" not in target:
        return target
    return base + "/"


@dataclass(frozen=True)
class Write:
    """A write request that passed the checks: the reviewer and the form."""

    session: Session
    form: dict[str, str]


def build_console_app(console_of: Callable[[], Console], base: str) -> FastAPI:
    """The console app; ``console_of`` returns the worker's :class:`Console`. ``base`` is the
    path it is mounted at (for the links it writes)."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, title="tradecredit console")

    def session_of(request: Request) -> Session:
        session = console_of().auth.session(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise NotLoggedIn()
        return session

    async def write_of(request: Request, session: Annotated[Session, Depends(session_of)]) -> Write:
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                body = await request.json()
            except ValueError:
                raise Refused(400, "the body is not valid JSON") from None
            if not isinstance(body, dict):
                raise Refused(400, "the body must be a JSON object")
            form = {k: v for k, v in body.items()}
            token = request.headers.get("x-csrf-token")
        else:
            form = {k: str(v) for k, v in (await request.form()).items()}
            token = form.pop("csrf", None)
        if not console_of().auth.check_csrf(session, token):
            # A page of another site, or another user's token: nothing is written.
            raise Refused(403, "this form does not belong to your session: reload the page and try again")
        named = sorted(IDENTITY_FIELDS & set(form))
        if named:
            raise Refused(400, f"'{named[0]}' cannot be set: actions are recorded under the logged-in reviewer", named[0])
        return Write(session, form)

    def require_role(*roles: str) -> Callable[..., Write]:
        """A write only users with one of ``roles`` may make (403 otherwise)."""

        async def checked(write: Annotated[Write, Depends(write_of)]) -> Write:
            if not write.session.roles & set(roles):
                raise Refused(403, f"this needs the {' or '.join(roles)} role: ask an administrator (tradecredit console set-roles)")
            return write

        return checked

    approver_write = require_role("approver", "administrator")
    reviewer_write = require_role("analyst", "approver", "administrator")

    @app.exception_handler(NotLoggedIn)
    async def not_logged_in(request: Request, exc: NotLoggedIn) -> Response:
        if request.method == "GET" and "/api/" not in request.url.path:
            return RedirectResponse(f"{base}/login?{urlencode({'next': request.url.path + ('?' + request.url.query if request.url.query else '')})}", 303)
        return JSONResponse({"error": {"status": 401, "code": "login_required", "message": "log in first", "field": None}}, 401)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        if "/api/" in request.url.path:
            return JSONResponse({"error": {"status": exc.status, "code": "refused", "message": exc.message, "field": exc.field}}, exc.status)
        console = console_of()
        session = console.auth.session(request.cookies.get(SESSION_COOKIE))
        return console.render("error.html", request, session, status=exc.status, message=exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid_parameter(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own 422 body repeats the input; ours names the parameter only.
        error = from_validation_errors(list(exc.errors()))
        return await refused(request, Refused(400, error.message.replace("'query.", "'"), (error.field or "").removeprefix("query.") or None))

    # ------------------------------------------------------------------ public

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_script() -> FileResponse:
        return FileResponse(plotly_js(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        if name not in ("console.css", "console.js"):
            raise Refused(404, "no such file")
        media = "text/css" if name.endswith(".css") else "text/javascript"
        return FileResponse(HERE / "static" / name, media_type=media)

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str | None = None) -> HTMLResponse:
        return console_of().render("login.html", request, None, next=_safe_next(base, next), error=None)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        console = console_of()
        form = {k: str(v) for k, v in (await request.form()).items()}
        user, password, target = form.get("user_name", "").strip(), form.get("password", ""), _safe_next(base, form.get("next"))
        started = console.auth.login(user, password) if user and password else None
        if started is None:
            message = "Wrong user name or password, or too many failed attempts: wait and try again."
            return console.render("login.html", request, None, status=401, next=target, error=message)
        token, session = started
        response = RedirectResponse(target, 303)
        response.set_cookie(
            SESSION_COOKIE, token, max_age=int(console.cfg.console.session_hours * 3600), path=base, httponly=True,
            samesite="strict", secure=console.cfg.console.cookie_secure,
        )
        return response

    # ------------------------------------------------------------------ needs a login

    private = APIRouter(dependencies=[Depends(session_of)])

    @private.post("/logout", include_in_schema=False)
    def logout(request: Request, write: Annotated[Write, Depends(write_of)]) -> Response:
        console_of().auth.logout(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse(f"{base}/login", 303)
        response.delete_cookie(SESSION_COOKIE, path=base)
        return response

    @private.get("/language", include_in_schema=False)
    def set_language(lang: str, next: str | None = None) -> Response:
        if lang not in LANGUAGES:
            raise Refused(400, f"language is one of {', '.join(LANGUAGES)}", "lang")
        response = RedirectResponse(_safe_next(base, next), 303)
        response.set_cookie(LANGUAGE_COOKIE, lang, max_age=365 * 86400, path=base, samesite="strict")
        return response

    @private.get("/", include_in_schema=False)
    def portfolio(request: Request, session: Annotated[Session, Depends(session_of)]) -> HTMLResponse:
        console = console_of()
        params: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            params.setdefault(key, []).append(value)
        try:
            query = parse_portfolio_query(params, console.cfg.console, len(console.cfg.policy.master_scale))
        except QueryError as exc:
            raise Refused(400, str(exc), exc.parameter) from None
        table = console.portfolio()
        page = portfolio_page(table.frame, query)
        return console.render(
            "portfolio.html", request, session, page=page, table=table, options=filter_options(table.frame),
            grades=list(range(1, len(console.cfg.policy.master_scale) + 1)), link=lambda **kw: f"{base}/?{urlencode(query.params(**kw), doseq=True)}",
        )

    @private.get("/buyers/{buyer_id}", include_in_schema=False)
    def buyer(request: Request, buyer_id: str, session: Annotated[Session, Depends(session_of)]) -> HTMLResponse:
        console = console_of()
        context = buyer_context(console, buyer_id, language(request))
        # The case comes from monitoring's case book, not from the assessment.
        return console.render("buyer.html", request, session, **context, case=open_case(console.alerts_db, buyer_id, console.now.date()))

    @private.get("/alerts", include_in_schema=False)
    def alerts(request: Request, session: Annotated[Session, Depends(session_of)], show: str = "open", colour: str = "", page: int = 1) -> HTMLResponse:
        console = console_of()
        if show not in ("open", "unacknowledged"):
            raise Refused(400, "show is 'open' or 'unacknowledged'", "show")
        if colour not in ("", "red", "yellow"):
            raise Refused(400, "colour is 'red' or 'yellow'", "colour")
        if page < 1:
            raise Refused(400, "page is 1 or more", "page")
        frame = with_acknowledgements(read_alerts(console.alerts_db, console.now.date()), console.log.reviews(action="acknowledge"))
        if colour:
            frame = frame.filter(pl.col("colour") == colour)
        if show == "unacknowledged":
            frame = frame.filter(pl.col("acknowledged_by").is_null())
        counts = {c: frame.filter(pl.col("colour") == c).height for c in ("red", "yellow")}
        size = console.cfg.console.page_size
        pages = max(1, -(-frame.height // size))
        page = min(page, pages)
        rows = (
            frame.with_columns(rank=pl.when(pl.col("colour") == "red").then(0).otherwise(1))
            .sort(["rank", "raised_on", "alert_id"], descending=[False, True, False])
            .slice((page - 1) * size, size)
            .to_dicts()
        )
        return console.render(
            "alerts.html", request, session, rows=rows, counts=counts, total=frame.height, show=show, colour=colour, page=page, pages=pages,
            link=lambda **kw: f"{base}/alerts?{urlencode({'show': show, 'colour': colour, 'page': page} | kw)}",
        )

    @private.post("/alerts/{alert_id}/acknowledge", include_in_schema=False)
    def acknowledge(alert_id: int, write: Annotated[Write, Depends(reviewer_write)]) -> Response:
        console = console_of()
        found = read_alerts(console.alerts_db, console.now.date()).filter(pl.col("alert_id") == alert_id)
        if found.height == 0:
            raise Refused(404, f"no open alert {alert_id}: it may have cleared in the latest monitoring run")
        alert = found.row(0, named=True)
        earlier = with_acknowledgements(found, console.log.reviews(buyer_id=alert["buyer_id"], action="acknowledge"))
        by = earlier["acknowledged_by"][0]
        if by is not None:
            raise Refused(409, f"alert {alert_id} was already acknowledged by {by} at {earlier['acknowledged_at'][0]}")
        console.log.append_review(
            ReviewRecord(
                review_id=uuid.uuid4().hex, logged_at=datetime.now(UTC).isoformat(), reviewer=write.session.user_name, action="acknowledge",
                buyer_id=alert["buyer_id"], reason=write.form.get("note", "").strip(), alert_id=alert_id, alert_signal=alert["signal"],
                alert_raised_on=alert["raised_on"],
            )
        )
        return RedirectResponse(_safe_next(base, write.form.get("next") or f"{base}/alerts"), 303)

    @private.get("/cases", include_in_schema=False)
    def cases(request: Request, session: Annotated[Session, Depends(session_of)], show: str = "open", kind: str = "", page: int = 1) -> HTMLResponse:
        console = console_of()
        if show not in ("open", "closed", "all"):
            raise Refused(400, "show is 'open', 'closed' or 'all'", "show")
        if kind not in ("", *CASE_KINDS):
            raise Refused(400, f"kind is one of {', '.join(CASE_KINDS)}", "kind")
        if page < 1:
            raise Refused(400, "page is 1 or more", "page")
        # Like the alerts: a case opened by a monitoring run dated after the clock is not the clock's news.
        frame = read_cases(console.alerts_db, None if show == "all" else show, opened_by=console.now.date())
        # Counted before the kind filter, so the summary says what each kind's link would show.
        counts = {k: frame.filter(pl.col("kind") == k).height for k in CASE_KINDS}
        if kind:
            frame = frame.filter(pl.col("kind") == kind)
        size = console.cfg.console.page_size
        pages = max(1, -(-frame.height // size))
        page = min(page, pages)
        rows = case_rows(sort_cases(frame).slice((page - 1) * size, size))
        return console.render(
            "cases.html", request, session, rows=rows, counts=counts, total=frame.height, show=show, kind=kind, page=page, pages=pages,
            kinds=CASE_KINDS, resolutions=console.cfg.monitoring.cases.resolutions,
            link=lambda **kw: f"{base}/cases?{urlencode({'show': show, 'kind': kind, 'page': page} | kw)}",
        )

    @private.post("/cases/{case_id}/resolve", include_in_schema=False)
    def resolve_case(case_id: int, write: Annotated[Write, Depends(reviewer_write)]) -> Response:
        console = console_of()
        cfg = console.cfg.monitoring.cases
        outcome = write.form.get("outcome", "").strip()
        if outcome not in cfg.resolutions:
            raise Refused(422, f"choose the outcome: one of {', '.join(cfg.resolutions)}", "outcome")
        # Only a case the reviewer can see: opened by the clock's date. This also keeps the
        # console from creating monitoring's database before the first run.
        day = console.now.date()
        if read_cases(console.alerts_db, None, opened_by=day).filter(pl.col("case_id") == case_id).height == 0:
            raise Refused(404, f"no case {case_id} opened by {day.isoformat()}")
        book = CaseBook(console.alerts_db)
        try:
            book.resolve(case_id, outcome, write.session.user_name, write.form.get("note", "").strip(), day, cfg)
        except CaseError as exc:
            raise Refused(exc.status, str(exc)) from None
        finally:
            book.close()
        return RedirectResponse(_safe_next(base, write.form.get("next") or f"{base}/cases"), 303)

    @private.post("/buyers/{buyer_id}/override", include_in_schema=False)
    def override(buyer_id: str, write: Annotated[Write, Depends(approver_write)]) -> Response:
        console = console_of()
        decision = write.form.get("decision", "")
        if decision not in DECISIONS:
            raise Refused(400, f"decision is one of {', '.join(DECISIONS)}", "decision")
        reason = write.form.get("reason", "").strip()
        if len(reason) < MIN_REASON_CHARS:
            raise Refused(400, f"write the reason for the override (at least {MIN_REASON_CHARS} characters)", "reason")
        limit_text = write.form.get("limit", "").strip().replace(",", "")
        try:
            limit = float(limit_text) if limit_text else None
        except ValueError:
            raise Refused(400, "the limit is a number", "limit") from None
        if limit is not None and not 0 <= limit <= console.cfg.serving.orders.max_amount:
            raise Refused(400, f"the limit is between 0 and {console.cfg.serving.orders.max_amount:,.0f}", "limit")
        seller = write.form.get("seller_id", "").strip()
        if not seller:
            raise Refused(400, "name the seller whose line the override is for", "seller_id")
        # The decision overridden is logged first, as the service would log it now: the
        # override always points at a real decision with its features and model versions.
        logged = console.assessor.assess([assess_request(buyer_id)], "console", seller_id=seller)[0]
        if isinstance(logged, ApiError):
            raise Refused(logged.status, logged.message)
        # The override is a register entry with an expiry: /assess honours it until then.
        credit = console.credit
        try:
            record_override(
                credit.register, console.cfg.credit, seller, buyer_id, logged.tier, decision, limit, reviewer_of(write.session), reason,
                credit.today, knock_out_of(credit.credit_facts(buyer_id), console.cfg.policy),
            )
        except RegisterError as exc:
            raise Refused(exc.status, exc.message) from None
        console.log.append_review(
            ReviewRecord(
                review_id=uuid.uuid4().hex, logged_at=datetime.now(UTC).isoformat(), reviewer=write.session.user_name, action="override",
                buyer_id=buyer_id, reason=reason, decision_id=logged.decision_id, model_decision=logged.decision,
                override_decision=decision, override_limit=limit,
            )
        )
        return RedirectResponse(f"{base}/buyers/{buyer_id}#decisions", 303)

    @private.post("/api/whatif", include_in_schema=False)
    def what_if(write: Annotated[Write, Depends(write_of)]) -> JSONResponse:
        """The decision on a hypothetical order: nothing is logged (a what-if decides nothing)."""
        console = console_of()
        try:
            item = AssessRequest.model_validate(write.form)
        except ValidationError as exc:
            error = from_validation_errors(exc.errors())
            raise Refused(400, error.message, error.field) from None
        answer = console.assessor.assess([item], "console", log=False)[0]
        if isinstance(answer, ApiError):
            raise Refused(answer.status, answer.message, answer.field)
        return JSONResponse(what_if_summary(answer))

    add_limit_routes(private, console_of, base, session_of, write_of)
    app.include_router(private)
    return app


def assess_request(buyer_id: str) -> AssessRequest:
    """The assessment of a buyer named in a URL; an id that cannot be one is a 400, not a 500."""
    try:
        return AssessRequest(buyer_id=buyer_id)
    except ValidationError:
        raise Refused(400, "a buyer id is 1-64 letters, digits, '_', '.', ':' or '-'", "buyer_id") from None


def what_if_summary(a: Assessment) -> dict[str, Any]:
    return {
        "decision": a.decision, "decision_reason": a.decision_reason, "approved_amount": a.approved_amount,
        "recommended_limit": a.recommended_limit, "available_limit": a.available_limit, "exposure": a.exposure,
        "pd_12m": a.pd_12m, "grade": a.grade, "premium_rate": a.insurance.premium_rate, "premium": a.insurance.premium,
        "insured_turnover": a.insurance.insured_turnover, "expected_loss": a.expected_loss,
        "late_payment_probability": a.late_payment_probability,
    }


def buyer_context(console: Console, buyer_id: str, lang: str) -> dict[str, Any]:
    """Everything the buyer page shows, as of the service clock."""
    now = console.now
    details: dict[int, BuyerExplanation] = {}
    answer = console.assessor.assess([assess_request(buyer_id)], "console", log=False, details=details)[0]
    if isinstance(answer, ApiError):
        raise Refused(answer.status, f"{buyer_id}: {answer.message}" if answer.status == 404 else answer.message)
    served = console.assessor.models["default"]
    model = served.model
    row, explained = details[0].features, details[0].explained
    contributions = [float(c) for c in explained.contributions[0][:-1]]
    reasons = top_reasons(model.features, row, explained.contributions[0][:-1], model.monotone, console.cfg.console.waterfall_features)
    t = words(lang)
    ws = console.ws
    history = pd_history(ws.run_score_files(), buyer_id, now)
    payments = payment_history(ws.feature_view_dataset("payment_behaviour"), buyer_id, now, console.cfg.console.history_months)
    events = registry_timeline(ws.ledger_table_file("registry_events"), buyer_id, now)
    decisions = console.log.decisions(buyer_id)
    reviews = console.log.reviews(buyer_id=buyer_id)
    overrides = {r["decision_id"]: r for r in reviews if r["action"] == "override"}
    alerts = with_acknowledgements(read_alerts(console.alerts_db, now.date(), status="open", buyer_id=buyer_id), reviews)
    firm = console.buyers.filter(pl.col("buyer_id") == buyer_id)
    figures = {
        "waterfall": charts.waterfall(model.features, row, contributions, float(explained.contributions[0][-1]), console.cfg.console.waterfall_features, lang, t["waterfall"]),
        "pd_history": charts.pd_history(history, decisions, t["pd_history"], lang),
        "payments": charts.payment_behaviour(payments, t["payment_history"], lang),
        "aging": charts.aging_now(row, t["aging_now"]),
        "registry": charts.registry_events(events, t["registry"], lang),
    }
    return {
        "buyer_id": buyer_id, "a": answer, "reasons": reasons, "figures": figures, "history": history.to_dicts(),
        "statements": statements(ws.feature_view_dataset("financials"), buyer_id, now).to_dicts(), "events": events.to_dicts(),
        "decisions": list(reversed(decisions))[:DECISIONS_SHOWN], "decisions_logged": len(decisions), "overrides": overrides, "alerts": alerts.to_dicts(),
        "firm": firm.row(0, named=True) if firm.height else {}, "model_version": f"{served.registered_model} v{served.version}",
        "decision_choices": DECISIONS, "raw_score": float(explained.raw[0]),
        "lines": console.credit.register.states(now.date(), buyer_id=buyer_id) if console.credit else [],
        "sellers": sorted(s for s, b in console.credit.positions.sellers if b == buyer_id) if console.credit else [],
    }
