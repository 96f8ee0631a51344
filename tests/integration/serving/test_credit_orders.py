"""Orders decided against the register, in process on the session's demo workspace: the
seller's granted line, the discretionary limit without one, a reviewer's override until it
expires, knock-outs that hold whatever the line says, and a seller's key kept to its seller."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from pathlib import Path

import pytest

from tradecredit.credit.desk import Reviewer, file_request, record_override
from tradecredit.sql_stores import sqlite_url
from tradecredit.credit.register import LimitRegister, NewEvent
from tradecredit.policy import CreditFacts
from tradecredit.serving.access import ApiCaller
from tradecredit.serving.credit import WorkerCredit
from tradecredit.serving.engine import Assessor
from tradecredit.serving.errors import ApiError
from tradecredit.serving.schemas import Assessment, AssessRequest, Order
from tradecredit.workspace import Workspace

ANNA = Reviewer("anna", frozenset({"approver"}))


@pytest.fixture(scope="module")
def desk(demo_run, assessor, tmp_path_factory) -> WorkerCredit:
    own = Assessor(assessor.cfg, assessor.models, assessor.reader, assessor.clock, None)
    credit = WorkerCredit(assessor.cfg, Workspace(demo_run.workspace), own)
    credit.register.close()
    credit.register = LimitRegister(sqlite_url(Path(tmp_path_factory.mktemp("register")) / "register.db"))
    own.credit = credit
    return credit


def order(desk: WorkerCredit, seller: str, buyer: str, amount: float, terms: int = 30, caller: ApiCaller | None = None) -> Assessment | ApiError:
    item = AssessRequest(buyer_id=buyer, order=Order(amount=amount, terms_days=terms))
    return desk.assessor.assess([item], "assess", caller=caller or ApiCaller("k-test", seller, False))[0]


@pytest.fixture(scope="module")
def clean(desk) -> list[tuple[str, str, Assessment]]:
    """(seller, buyer, assessment) of clean low- or medium-risk buyers with a seller, fewest first."""
    found = []
    for (seller, buyer), position in sorted(desk.positions.sellers.items()):
        facts = desk.positions.buyers.get(buyer)
        if facts is not None and (facts.insolvency_filed_on or facts.credit_event or (facts.max_days_past_due or 0) > 60):
            continue
        if buyer in desk.red_buyers() or position.monthly_purchases <= 0:
            continue
        a = order(desk, seller, buyer, 100.0)
        if isinstance(a, Assessment) and a.decision == "approve" and a.recommended_limit > 20_000 and a.late_payment_probability < 0.5:
            found.append((seller, buyer, a))
        if len(found) >= 4:
            break
    assert len(found) >= 3, "the demo book has clean buyers with a seller"
    return found


def test_an_order_is_decided_against_the_sellers_granted_line(desk, clean):
    seller, buyer, first = clean[0]
    today = desk.today
    line = first.exposure + 10_000.0
    with desk.register.transaction() as con:
        desk.register.append(con, seller, buyer, today, [NewEvent("approved", "anna", "test line", granted=line, valid_to=today + timedelta(days=365), grade=first.grade, tier=first.tier)])
    within = order(desk, seller, buyer, 6_000.0)
    assert (within.decision, within.limit_source, within.granted_limit, within.approved_amount) == ("approve", "register", line, 6_000.0)
    assert within.available_limit == pytest.approx(10_000.0)
    assert within.exposure == desk.seller_position(seller, buyer).open_balance  # the seller's own, not every seller's
    over = order(desk, seller, buyer, 15_000.0)
    assert (over.decision, over.approved_amount) == ("partial", pytest.approx(10_000.0))
    other_seller = next(s for s, _ in desk.positions.sellers if s != seller)
    assert order(desk, other_seller, buyer, 6_000.0).limit_source != "register"  # one seller's line is not another's


def test_without_a_line_only_the_discretionary_limit(desk, clean):
    for seller, buyer, a in clean[1:]:
        automatic = desk.cfg.credit.authority[a.tier].automatic_up_to
        answer = order(desk, seller, buyer, 100.0)
        if automatic > 0:
            assert answer.limit_source == "discretionary" and answer.granted_limit == min(a.recommended_limit, automatic)
            above = order(desk, seller, buyer, automatic + a.exposure + 1_000.0)
            assert above.decision in ("partial", "refer") and above.approved_amount < automatic + a.exposure + 1_000.0
        else:
            assert (answer.limit_source, answer.granted_limit, answer.decision) == ("none", 0.0, "refer")
            assert "POST /limits/requests" in answer.limit_note


def test_an_override_is_honoured_until_it_expires(desk, clean):
    seller, buyer, a = clean[2]
    today = desk.today
    days = desk.cfg.credit.override_days
    record_override(desk.register, desk.cfg.credit, seller, buyer, a.tier, "decline", None, ANNA, "bank confirmed a missed payroll", today - timedelta(days=days))
    assert order(desk, seller, buyer, 100.0).limit_source != "override"  # recorded `override_days` ago: expired today
    record_override(desk.register, desk.cfg.credit, seller, buyer, a.tier, "decline", None, ANNA, "bank confirmed a missed payroll", today - timedelta(days=days - 1))
    held = order(desk, seller, buyer, 100.0)
    assert (held.decision, held.decision_code, held.limit_source) == ("decline", "override_decline", "override")
    assert "anna" in held.decision_reason


@pytest.mark.parametrize("facts", [
    CreditFacts(date(2000, 1, 1), None, None),
    CreditFacts(None, ("write_off", date(2000, 1, 1)), None),
    CreditFacts(None, None, 400),
])
def test_a_knocked_out_buyer_is_held_whatever_its_line(desk, clean, facts):
    seller, buyer, a = clean[0]
    saved = desk.positions
    desk.positions = dataclasses.replace(saved, buyers={**saved.buyers, buyer: facts})
    try:
        held = order(desk, seller, buyer, 100.0)
        request = file_request(desk.register, desk.cfg.credit, desk.policy_view(AssessRequest(buyer_id=buyer, requested_limit=5_000.0), seller, 30, None), seller, buyer, 5_000.0, 30, "key:k-test", desk.today)
    finally:
        desk.positions = saved
    assert (held.decision, held.approved_amount) == ("hold", 0.0) and held.decision_code in ("insolvency_filing", "credit_event", "overdue_beyond_extension")
    assert held.limit_source == "register"  # the line is there, and does not matter
    assert request.status == "declined" and not request.state.granted == 5_000.0
    assert order(desk, seller, buyer, 100.0).decision == "approve"  # and quiet again on the clean buyer


def test_an_open_red_case_holds_orders_and_a_new_line(desk, clean):
    seller, buyer, a = clean[0]
    saved = desk._red
    desk._red = (float("inf"), frozenset({buyer}))
    try:
        answer = order(desk, seller, buyer, 100.0)
        view = desk.policy_view(AssessRequest(buyer_id=buyer, requested_limit=5_000.0), seller, 30, None)
    finally:
        desk._red = saved
    assert (answer.decision, answer.decision_code, answer.approved_amount) == ("hold", "red_alert", 0.0)
    assert view.knocked_out  # a line request is declined until a reviewer resolves the case


def test_a_sellers_key_cannot_ask_for_another_seller(desk, clean):
    seller, buyer, _ = clean[0]
    item = AssessRequest(buyer_id=buyer, seller_id="SOMEONE-ELSE", order=Order(amount=100.0, terms_days=30))
    [refused] = desk.assessor.assess([item], "assess", caller=ApiCaller("k-test", seller, False))
    assert isinstance(refused, ApiError) and refused.status == 403 and "SOMEONE-ELSE" not in refused.message
    [allowed] = desk.assessor.assess([item.model_copy(update={"seller_id": seller})], "assess", caller=ApiCaller("k-admin", None, True))
    assert isinstance(allowed, Assessment) and allowed.seller_id == seller
