"""The limit register: per (seller, buyer), an append-only history of limit requests,
approvals and decisions. The current limit is derived from the history, never overwritten.

SQLite in the workspace (``WORKSPACE/credit/register.db``) by default, PostgreSQL where
``backends.register_url`` names one (the production profile): one SQLAlchemy Core schema for
both. Every change is one transaction: an approval and the decision it completes are written
together or not at all, so a process killed mid-approval leaves nothing half-written. A
decision holds its request's row until it commits, so decisions on one request queue and each
reads the one before; a unique key on each approval step is the backstop.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tradecredit.sql_stores import sql_engine, sqlite_path

# What a line can be (the vocabulary); a line's status is derived from its events.
LimitStatus = Literal[
    "requested", "approved", "partially_approved", "declined", "referred", "pending_approval", "reduced", "expired", "cancelled", "none"
]
# What can happen to a line: the statuses a decision writes, plus one approver's sign-off,
# reductions proposed by monitoring and their outcome, and a reviewer's override.
EventKind = Literal[
    "requested", "approved", "partially_approved", "declined", "referred", "pending_approval", "approval",
    "reduction_proposed", "reduction_confirmed", "reduction_rejected", "reduced", "expired", "cancelled",
    "override", "override_revoked",
]
GRANTS = frozenset({"approved", "partially_approved"})
# The events that close a request: after one of them it can no longer be decided.
DECIDED = GRANTS | {"declined", "cancelled"}

metadata = sa.MetaData()
requests_table = sa.Table(
    "limit_requests", metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("seller_id", sa.String(64), nullable=False),
    sa.Column("buyer_id", sa.String(64), nullable=False),
    sa.Column("client_key", sa.String(128)),  # the caller's idempotency key
    sa.Column("requested_amount", sa.Float, nullable=False),
    sa.Column("terms_days", sa.Integer, nullable=False),
    sa.Column("requested_by", sa.String(128), nullable=False),  # key:<id>, a user name, or policy
    sa.Column("as_of", sa.String(32), nullable=False),  # the service clock
    sa.Column("recorded_at", sa.String(40), nullable=False),  # the wall clock
    sa.Column("pd_12m", sa.Float, nullable=False),
    sa.Column("grade", sa.Integer, nullable=False),
    sa.Column("tier", sa.String(8), nullable=False),
    sa.Column("recommended", sa.Float, nullable=False),
    sa.Column("proposed", sa.Float, nullable=False),  # what the policy would grant
    sa.Column("approvals_needed", sa.Integer, nullable=False),
    sa.Column("policy_decision", sa.String(16), nullable=False),
    sa.Column("decision_code", sa.String(40), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("details_json", sa.Text, nullable=False),  # limit reasons, PD reasons, conditions
    sa.UniqueConstraint("seller_id", "client_key", name="limit_requests_client_key"),
)
events_table = sa.Table(
    "limit_events", metadata,
    sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("seller_id", sa.String(64), nullable=False),
    sa.Column("buyer_id", sa.String(64), nullable=False),
    sa.Column("request_id", sa.String(64), sa.ForeignKey("limit_requests.request_id")),
    sa.Column("event", sa.String(24), nullable=False),
    sa.Column("granted", sa.Float),  # the line this event grants or reduces to
    sa.Column("decision", sa.String(16)),  # an override's decision
    sa.Column("terms_days", sa.Integer),
    sa.Column("valid_from", sa.String(10)),
    sa.Column("valid_to", sa.String(10)),
    sa.Column("next_review_on", sa.String(10)),
    sa.Column("effective_on", sa.String(10)),  # a reduction's date
    sa.Column("grade", sa.Integer),
    sa.Column("tier", sa.String(8)),
    sa.Column("conditions_json", sa.Text, nullable=False, default="[]"),
    sa.Column("decided_by", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("ref_event_id", sa.Integer),  # the grant or proposal this event acts on
    sa.Column("as_of", sa.String(10), nullable=False),  # the service clock's date
    sa.Column("recorded_at", sa.String(40), nullable=False),
)
sa.Index("limit_events_pair", events_table.c.seller_id, events_table.c.buyer_id, events_table.c.event_id)
sa.Index("limit_events_buyer", events_table.c.buyer_id)
approvals_table = sa.Table(
    "limit_approvals", metadata,
    sa.Column("request_id", sa.String(64), sa.ForeignKey("limit_requests.request_id"), primary_key=True),
    sa.Column("step", sa.Integer, primary_key=True),  # 1, 2: two approvers racing for a step collide here
    sa.Column("approver", sa.String(64), nullable=False),
    sa.Column("verdict", sa.String(8), nullable=False),  # approve or decline
    sa.Column("amount", sa.Float),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.String(40), nullable=False),
    sa.UniqueConstraint("request_id", "approver", name="limit_approvals_once_per_approver"),
)


class RegisterError(ValueError):
    """A change the register refuses; ``status`` is the HTTP status that says why (403, 404, 409)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class LimitRequest:
    request_id: str
    seller_id: str
    buyer_id: str
    client_key: str | None
    requested_amount: float
    terms_days: int
    requested_by: str
    as_of: str
    recorded_at: str
    pd_12m: float
    grade: int
    tier: str
    recommended: float
    proposed: float
    approvals_needed: int
    policy_decision: str
    decision_code: str
    reason: str
    details: dict[str, Any]


@dataclass(frozen=True)
class LimitEvent:
    event_id: int
    seller_id: str
    buyer_id: str
    request_id: str | None
    event: str
    granted: float | None
    decision: str | None
    terms_days: int | None
    valid_from: str | None
    valid_to: str | None
    next_review_on: str | None
    effective_on: str | None
    grade: int | None
    tier: str | None
    conditions: list[str]
    decided_by: str
    reason: str
    ref_event_id: int | None
    as_of: str
    recorded_at: str


@dataclass(frozen=True)
class Approval:
    request_id: str
    step: int
    approver: str
    verdict: str
    amount: float | None
    reason: str
    recorded_at: str


@dataclass(frozen=True)
class NewEvent:
    """An event to append (the register numbers and stamps it)."""

    event: EventKind
    decided_by: str
    reason: str
    granted: float | None = None
    decision: str | None = None
    terms_days: int | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    next_review_on: date | None = None
    effective_on: date | None = None
    grade: int | None = None
    tier: str | None = None
    conditions: tuple[str, ...] = ()
    ref_event_id: int | None = None


@dataclass(frozen=True)
class PendingReduction:
    event_id: int
    to: float
    proposed_on: str
    effective_on: str
    reason: str


@dataclass(frozen=True)
class ActiveOverride:
    event_id: int
    decision: str
    granted: float | None
    until: str
    by: str
    reason: str


@dataclass(frozen=True)
class LimitState:
    """A (seller, buyer) line as of a date, derived from its events."""

    seller_id: str
    buyer_id: str
    status: LimitStatus
    granted: float  # the line orders are decided against (0 without one)
    has_line: bool
    grant_event_id: int | None
    base_granted: float | None  # as decided, before reductions
    terms_days: int | None
    valid_from: str | None
    valid_to: str | None
    next_review_on: str | None
    grade_at_decision: int | None
    conditions: list[str]
    decided_by: str | None
    reason: str | None
    override: ActiveOverride | None
    pending_reductions: list[PendingReduction]
    pending_request_ids: list[str]
    events: list[LimitEvent] = field(default_factory=list)

    def review_due(self, on: date) -> bool:
        return self.has_line and self.next_review_on is not None and self.next_review_on <= on.isoformat()


def derive_state(seller_id: str, buyer_id: str, events: list[LimitEvent], on: date) -> LimitState:
    """The line on ``on`` from its events (in order): the latest grant still valid, reduced by
    the proposals whose notice has run (or that an approver confirmed) and not rejected, under
    a reviewer's override while it lasts. Events dated after ``on`` do not count."""
    day = on.isoformat()
    seen = [e for e in events if e.as_of <= day]
    grant: LimitEvent | None = None
    proposals: dict[int, LimitEvent] = {}
    settled: dict[int, LimitEvent] = {}  # proposal id -> confirm or reject
    override: LimitEvent | None = None
    last_status: LimitStatus = "none"
    open_requests: dict[str, None] = {}
    for e in seen:
        if e.event in GRANTS:
            grant, proposals, settled = e, {}, {}
        elif e.event == "cancelled" and grant is not None and (
                e.ref_event_id == grant.event_id or (e.ref_event_id is None and e.request_id is None)):
            # A cancelled request closes that request only; the line it would have changed stands.
            grant = None
        elif e.event == "reduction_proposed" and grant is not None and e.ref_event_id == grant.event_id:
            proposals[e.event_id] = e
        elif e.event in ("reduction_confirmed", "reduction_rejected") and e.ref_event_id in proposals:
            settled[e.ref_event_id] = e  # type: ignore[index]
        elif e.event == "override":
            override = e
        elif e.event == "override_revoked" and override is not None and e.ref_event_id == override.event_id:
            override = None
        if e.request_id is not None:
            if e.event in ("requested", "pending_approval", "referred"):
                open_requests[e.request_id] = None
            elif e.event in DECIDED:
                open_requests.pop(e.request_id, None)
        if e.event in ("requested", "approved", "partially_approved", "declined", "referred", "pending_approval", "cancelled"):
            last_status = e.event  # type: ignore[assignment]
    granted, status, pending = 0.0, last_status, []
    if grant is not None:
        granted = float(grant.granted or 0.0)
        status = grant.event  # type: ignore[assignment]
        for pid, proposal in proposals.items():
            outcome = settled.get(pid)
            if outcome is not None and outcome.event == "reduction_rejected":
                continue
            effective = outcome.as_of if outcome is not None else proposal.effective_on or proposal.as_of
            if effective <= day:
                granted = min(granted, float(proposal.granted or 0.0))
                status = "reduced"
            else:
                pending.append(PendingReduction(pid, float(proposal.granted or 0.0), proposal.as_of, effective, proposal.reason))
        if grant.valid_to is not None and grant.valid_to <= day:
            granted, status = 0.0, "expired"
    elif open_requests:
        status = "pending_approval" if last_status in ("requested", "pending_approval") else last_status
    active_override = None
    if override is not None and (override.valid_to is None or override.valid_to > day):
        active_override = ActiveOverride(override.event_id, override.decision or "approve", override.granted, override.valid_to or "", override.decided_by, override.reason)
    return LimitState(
        seller_id=seller_id, buyer_id=buyer_id, status=status, granted=granted, has_line=grant is not None and status != "expired",
        grant_event_id=grant.event_id if grant else None, base_granted=grant.granted if grant else None,
        terms_days=grant.terms_days if grant else None, valid_from=grant.valid_from if grant else None,
        valid_to=grant.valid_to if grant else None, next_review_on=grant.next_review_on if grant else None,
        grade_at_decision=grant.grade if grant else None, conditions=grant.conditions if grant else [],
        decided_by=grant.decided_by if grant else None, reason=grant.reason if grant else None,
        override=active_override, pending_reductions=pending, pending_request_ids=list(open_requests), events=seen,
    )


def _wall() -> str:
    return datetime.now(UTC).isoformat()


def _lock_row(con: Connection, key: sa.Column, value: object) -> None:
    # FOR UPDATE on PostgreSQL; SQLAlchemy renders nothing on SQLite, whose BEGIN IMMEDIATE locks the file.
    con.execute(sa.select(key).where(key == value).with_for_update())


class LimitRegister:
    """The register's store. Safe to share between threads; each process opens its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = sql_engine(url, writer=True, foreign_keys=True)
        self._reader = sql_engine(url, writer=False, foreign_keys=True) if sqlite_path(url) else self.engine
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()
        self._reader.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as con:
            yield con

    # ------------------------------------------------------------------ writes

    def add_request(self, con: Connection, request: LimitRequest) -> None:
        row = {k: getattr(request, k) for k in LimitRequest.__dataclass_fields__ if k != "details"}
        con.execute(requests_table.insert().values(**row, details_json=json.dumps(request.details, separators=(",", ":"), default=str)))

    def append(self, con: Connection, seller_id: str, buyer_id: str, on: date, events: Iterable[NewEvent], request_id: str | None = None) -> list[int]:
        ids = []
        for e in events:
            values = {
                "seller_id": seller_id, "buyer_id": buyer_id, "request_id": request_id, "event": e.event, "granted": e.granted,
                "decision": e.decision, "terms_days": e.terms_days, "grade": e.grade, "tier": e.tier,
                "conditions_json": json.dumps(list(e.conditions)), "decided_by": e.decided_by, "reason": e.reason,
                "ref_event_id": e.ref_event_id, "as_of": on.isoformat(), "recorded_at": _wall(),
                **{k: (None if getattr(e, k) is None else getattr(e, k).isoformat()) for k in ("valid_from", "valid_to", "next_review_on", "effective_on")},
            }
            result = con.execute(events_table.insert().values(**values))
            ids.append(int(result.inserted_primary_key[0]))
        return ids

    def lock_request(self, con: Connection, request_id: str) -> None:
        """Hold the request's row until ``con`` commits, so its decisions queue. On PostgreSQL
        (read committed) each read sees the latest commit: without the lock, an approver who read
        the events before a rival's commit and the approvals after it signed a third step and
        granted the line twice. SQLite's writers already queue (BEGIN IMMEDIATE)."""
        _lock_row(con, requests_table.c.request_id, request_id)

    def lock_buyer(self, con: Connection, buyer_id: str) -> None:
        """Hold the buyer until ``con`` commits, so filings and approvals that share its capacity
        across sellers queue. No row stands for a buyer: on PostgreSQL a transaction-scoped advisory
        lock on the buyer's key; SQLite's BEGIN IMMEDIATE already holds the whole file."""
        if con.dialect.name == "postgresql":
            con.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"limit-buyer:{buyer_id}"})

    def lock_event(self, con: Connection, event_id: int) -> None:
        """Hold an event's row (a proposed reduction, an override) until ``con`` commits, so two
        people acting on it queue and the later one reads the first one's decision."""
        _lock_row(con, events_table.c.event_id, event_id)

    def add_approval(self, con: Connection, approval: Approval) -> None:
        try:
            con.execute(approvals_table.insert().values(**approval.__dict__))
        except sa.exc.IntegrityError:
            raise RegisterError(409, "already_decided", "another approver signed this step first, or you already approved this request: reload it") from None

    # ------------------------------------------------------------------ reads

    def request(self, request_id: str, con: Connection | None = None) -> LimitRequest | None:
        with self._reading(con) as c:
            row = c.execute(sa.select(requests_table).where(requests_table.c.request_id == request_id)).mappings().first()
        return None if row is None else _request_of(row)

    def request_by_client_key(self, seller_id: str, client_key: str, con: Connection | None = None) -> LimitRequest | None:
        t = requests_table
        with self._reading(con) as c:
            row = c.execute(sa.select(t).where(t.c.seller_id == seller_id, t.c.client_key == client_key)).mappings().first()
        return None if row is None else _request_of(row)

    def approvals(self, request_id: str, con: Connection | None = None) -> list[Approval]:
        t = approvals_table
        with self._reading(con) as c:
            rows = c.execute(sa.select(t).where(t.c.request_id == request_id).order_by(t.c.step)).mappings().all()
        return [Approval(**dict(r)) for r in rows]

    def events(self, seller_id: str | None = None, buyer_id: str | None = None, con: Connection | None = None) -> list[LimitEvent]:
        t = events_table
        query = sa.select(t).order_by(t.c.event_id)
        if seller_id is not None:
            query = query.where(t.c.seller_id == seller_id)
        if buyer_id is not None:
            query = query.where(t.c.buyer_id == buyer_id)
        with self._reading(con) as c:
            rows = c.execute(query).mappings().all()
        return [_event_of(r) for r in rows]

    def state(self, seller_id: str, buyer_id: str, on: date, con: Connection | None = None) -> LimitState:
        return derive_state(seller_id, buyer_id, self.events(seller_id, buyer_id, con), on)

    def states(self, on: date, seller_id: str | None = None, buyer_id: str | None = None, con: Connection | None = None) -> list[LimitState]:
        """Every (seller, buyer) line the register knows, optionally one seller's or one buyer's."""
        grouped: dict[tuple[str, str], list[LimitEvent]] = {}
        for e in self.events(seller_id, buyer_id, con):
            grouped.setdefault((e.seller_id, e.buyer_id), []).append(e)
        return [derive_state(s, b, evs, on) for (s, b), evs in sorted(grouped.items())]

    def pending_requests(self, con: Connection | None = None) -> list[LimitRequest]:
        """Requests waiting for an approver: asked for, and neither decided nor cancelled."""
        r, e = requests_table, events_table
        closed = sa.select(e.c.request_id).where(e.c.event.in_(sorted(DECIDED)), e.c.request_id.is_not(None))
        waiting = sa.select(e.c.request_id).where(e.c.event.in_(["pending_approval", "referred"]))
        query = sa.select(r).where(r.c.request_id.in_(waiting), r.c.request_id.not_in(closed)).order_by(r.c.recorded_at)
        with self._reading(con) as c:
            return [_request_of(row) for row in c.execute(query).mappings().all()]

    @contextmanager
    def _reading(self, con: Connection | None) -> Iterator[Connection]:
        if con is not None:
            yield con
            return
        with self._reader.connect() as c:
            yield c


def _request_of(row: Any) -> LimitRequest:
    values = dict(row)
    details = json.loads(values.pop("details_json"))
    return LimitRequest(**values, details=details)


def _event_of(row: Any) -> LimitEvent:
    values = dict(row)
    values["conditions"] = json.loads(values.pop("conditions_json") or "[]")
    return LimitEvent(**values)


def new_request_id() -> str:
    return uuid.uuid4().hex
