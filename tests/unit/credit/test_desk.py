"""The credit desk over a real SQLite register: the authority matrix path by path, four-eyes,
separated roles, racing approvals, idempotent requests, dates on a fake clock, overrides and
the reductions monitoring proposes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest

from tradecredit.credit.desk import (
    BuyerRisk,
    PolicyView,
    Reviewer,
    adjust_limits,
    add_months,
    cancel_request,
    decide_request,
    file_request,
    record_override,
    revoke_override,
    settle_reduction,
)
from tradecredit.sql_stores import sqlite_url
from tradecredit.credit.register import LimitRegister, RegisterError

DAY = date(2026, 3, 31)
ANNA = Reviewer("anna", frozenset({"approver"}))
BEN = Reviewer("ben", frozenset({"approver"}))
SALES = Reviewer("sam", frozenset({"requester", "analyst"}))


def view(tier: str = "low", grade: int = 2, recommended: float = 400_000.0, decision: str = "approve", capacity: float | None = None) -> PolicyView:
    return PolicyView(0.002, grade, tier, recommended, capacity or recommended * 1.2, decision, "within_limit", "within the recommended limit")  # type: ignore[arg-type]


@pytest.fixture
def register(tmp_path: Path) -> LimitRegister:
    reg = LimitRegister(sqlite_url(tmp_path / "register.db"))
    yield reg
    reg.close()


def test_the_authority_matrix_path_by_path(register, config):
    cfg = config.credit
    low, medium, high = (cfg.authority[t] for t in ("low", "medium", "high"))
    cases = [
        ("S1", "B1", view("low"), low.automatic_up_to, "approved", 0),
        ("S1", "B2", view("low"), low.automatic_up_to + 1, "pending_approval", 1),
        ("S1", "B3", view("low"), low.one_approver_up_to + 1, "pending_approval", 2),
        ("S1", "B4", view("medium", 6), 1_000.0, "pending_approval", 1),
        ("S1", "B5", view("medium", 6), medium.one_approver_up_to + 1, "pending_approval", 2),
        ("S1", "B6", view("high", 8), 1_000.0, "pending_approval", 2),
        ("S1", "B7", view("low", decision="refer"), 1_000.0, "referred", 1),
        ("S1", "B8", view("low", decision="hold"), 1_000.0, "declined", 0),
        ("S1", "B9", view("low", decision="decline"), 1_000.0, "declined", 0),
    ]
    assert high.one_approver_up_to == 0  # high risk: always four-eyes in the shipped matrix
    for seller, buyer, v, amount, status, needed in cases:
        out = file_request(register, cfg, v, seller, buyer, amount, 30, "key:k1", DAY)
        assert (out.status, out.approvals_needed) == (status, needed), (buyer, amount)
        assert out.state.has_line == (status == "approved")


def test_partial_within_authority_and_over_the_recommended_limit(register, config):
    cfg = config.credit
    out = file_request(register, cfg, view("low", recommended=40_000.0), "S1", "B1", 90_000.0, 30, "key:k1", DAY)
    assert (out.status, out.granted, out.state.granted) == ("partially_approved", 40_000.0, 40_000.0)
    out = file_request(register, cfg, view("low", recommended=40_000.0), "S1", "B2", 90_000.0, 30, "key:k1", DAY, accept_partial=False)
    assert out.status == "pending_approval" and not out.state.has_line


def test_four_eyes_and_separated_roles(register, config):
    cfg = config.credit
    out = file_request(register, cfg, view("high", 8), "S1", "B1", 20_000.0, 30, "user:sam", DAY)
    rid = out.request.request_id
    with pytest.raises(RegisterError) as refused:
        decide_request(register, cfg, rid, Reviewer("sam", frozenset({"approver"})), "approve", "my own customer", DAY)
    assert refused.value.status == 403 and "requester" in refused.value.message
    with pytest.raises(RegisterError) as refused:
        decide_request(register, cfg, rid, SALES, "approve", "looks fine", DAY)
    assert refused.value.status == 403 and "approver role" in refused.value.message
    first = decide_request(register, cfg, rid, ANNA, "approve", "statements checked", DAY)
    assert first.status == "pending_approval" and not first.state.has_line and len(first.approvals) == 1
    with pytest.raises(RegisterError) as twice:
        decide_request(register, cfg, rid, ANNA, "approve", "again", DAY)
    assert twice.value.status == 403
    second = decide_request(register, cfg, rid, BEN, "approve", "agree", DAY, amount=15_000.0)
    assert second.status == "partially_approved" and second.state.granted == 15_000.0  # the smaller of the two
    assert second.state.decided_by == "anna, ben"
    with pytest.raises(RegisterError) as late:
        decide_request(register, cfg, rid, Reviewer("cat", frozenset({"approver"})), "approve", "me too", DAY)
    assert late.value.status == 409


def test_one_approver_can_decline_and_a_knocked_out_buyer_cannot_be_approved(register, config):
    cfg = config.credit
    rid = file_request(register, cfg, view("high", 8), "S1", "B1", 20_000.0, 30, "key:k1", DAY).request.request_id
    with pytest.raises(RegisterError) as held:
        decide_request(register, cfg, rid, ANNA, "approve", "ok", DAY, knock_out="an insolvency filing on 2026-03-01")
    assert held.value.code == "knocked_out"
    assert decide_request(register, cfg, rid, ANNA, "decline", "insolvency filed", DAY).status == "declined"


def test_two_approvals_racing_one_wins(tmp_path, config):
    cfg = config.credit
    url = sqlite_url(tmp_path / "register.db")
    reg = LimitRegister(url)
    rid = file_request(reg, cfg, view("low"), "S1", "B1", 100_000.0, 30, "key:k1", DAY).request.request_id  # one approver
    results: list[object] = []
    barrier = threading.Barrier(2)

    def approve(who: Reviewer) -> None:
        own = LimitRegister(url)  # each approver on their own connection, as two workers would be
        barrier.wait()
        try:
            results.append(decide_request(own, cfg, rid, who, "approve", "fine", DAY).status)
        except RegisterError as exc:
            results.append(exc.status)
        finally:
            own.close()

    threads = [threading.Thread(target=approve, args=(r,)) for r in (ANNA, BEN)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(str, results)) == ["409", "approved"]
    grants = [e for e in reg.events("S1", "B1") if e.event == "approved"]
    assert len(grants) == 1 and len(reg.approvals(rid)) == 1


def test_a_client_key_makes_a_request_idempotent(register, config):
    cfg = config.credit
    first = file_request(register, cfg, view("low"), "S1", "B1", 10_000.0, 30, "key:k1", DAY, client_key="erp-42")
    again = file_request(register, cfg, view("low"), "S1", "B1", 10_000.0, 30, "key:k1", DAY, client_key="erp-42")
    assert first.created and not again.created and again.request.request_id == first.request.request_id
    assert len([e for e in register.events("S1", "B1") if e.event == "approved"]) == 1
    with pytest.raises(RegisterError) as reused:
        file_request(register, cfg, view("low"), "S1", "B1", 20_000.0, 30, "key:k1", DAY, client_key="erp-42")
    assert reused.value.status == 409
    other_seller = file_request(register, cfg, view("low"), "S2", "B1", 10_000.0, 30, "key:k2", DAY, client_key="erp-42")
    assert other_seller.created  # keys are per seller


def test_lines_across_sellers_share_one_capacity(register, config):
    cfg = config.credit
    file_request(register, cfg, view("low", recommended=50_000.0), "S1", "B1", 40_000.0, 30, "key:k1", DAY)
    second = file_request(register, cfg, view("low", recommended=50_000.0), "S2", "B1", 40_000.0, 30, "key:k2", DAY)
    assert (second.status, second.granted) == ("partially_approved", 10_000.0)
    assert "other sellers hold 40,000" in second.request.reason
    third = file_request(register, cfg, view("low", recommended=50_000.0), "S3", "B1", 5_000.0, 30, "key:k3", DAY)
    assert third.status == "referred"  # nothing left to allocate automatically


def test_expiry_and_review_dates_on_a_fake_clock(register, config):
    cfg = config.credit
    out = file_request(register, cfg, view("low"), "S1", "B1", 10_000.0, 30, "key:k1", DAY)
    assert out.state.valid_to == add_months(DAY, cfg.validity_months).isoformat() == "2027-03-31"
    assert out.state.next_review_on == add_months(DAY, cfg.review.months_by_tier["low"]).isoformat()
    assert not out.state.review_due(DAY)
    medium = file_request(register, cfg, view("medium", 6), "S1", "B2", 10_000.0, 30, "key:k1", DAY).request.request_id
    reviewed = decide_request(register, cfg, medium, ANNA, "approve", "ok", DAY).state
    due = date.fromisoformat(reviewed.next_review_on)
    assert due == add_months(DAY, cfg.review.months_by_tier["medium"])
    assert not register.state("S1", "B2", due - timedelta(days=1)).review_due(due - timedelta(days=1))
    assert register.state("S1", "B2", due).review_due(due)
    expiry = date.fromisoformat(out.state.valid_to)
    assert register.state("S1", "B1", expiry - timedelta(days=1)).granted == 10_000.0
    ended = register.state("S1", "B1", expiry)
    assert (ended.status, ended.granted, ended.has_line) == ("expired", 0.0, False)
    assert register.state("S1", "B1", DAY - timedelta(days=1)).status == "none"  # before the request: nothing


def test_a_key_buyer_is_reviewed_at_least_quarterly(register, config):
    cfg = config.credit
    big = cfg.review.key_buyer_limit
    rid = file_request(register, cfg, view("low", recommended=big * 2), "S1", "B1", big, 30, "key:k1", DAY).request.request_id
    decide_request(register, cfg, rid, ANNA, "approve", "ok", DAY)
    state = decide_request(register, cfg, rid, BEN, "approve", "ok", DAY).state
    assert state.next_review_on == add_months(DAY, cfg.review.key_buyer_months).isoformat()


def test_cancelling_a_request_for_more_leaves_the_line_standing(register, config):
    cfg = config.credit
    assert file_request(register, cfg, view("low", grade=2), "S1", "B1", 10_000.0, 30, "key:k1", DAY).state.granted == 10_000.0
    more = file_request(register, cfg, view("high", grade=8), "S1", "B1", 390_000.0, 30, "key:k1", DAY)
    assert more.status == "pending_approval"
    cancelled = cancel_request(register, more.request.request_id, "sam", "the order fell through", DAY)
    assert cancelled.status == "cancelled"
    state = register.state("S1", "B1", DAY)
    assert state.has_line and state.granted == 10_000.0 and not state.pending_request_ids


def test_an_override_holds_until_it_expires_or_is_revoked(register, config):
    cfg = config.credit
    with pytest.raises(RegisterError):
        record_override(register, cfg, "S1", "B1", "low", "approve", 30_000.0, SALES, "customer is fine", DAY)
    with pytest.raises(RegisterError) as four_eyes:
        record_override(register, cfg, "S1", "B1", "high", "approve", 30_000.0, ANNA, "customer is fine", DAY)
    assert four_eyes.value.code == "four_eyes"
    record_override(register, cfg, "S1", "B1", "low", "approve", 30_000.0, ANNA, "customer is fine", DAY)
    last = DAY + timedelta(days=cfg.override_days - 1)
    assert register.state("S1", "B1", last).override.granted == 30_000.0
    assert register.state("S1", "B1", DAY + timedelta(days=cfg.override_days)).override is None
    revoke_override(register, "S1", "B1", BEN, "statements arrived", DAY + timedelta(days=1))
    assert register.state("S1", "B1", DAY + timedelta(days=1)).override is None
    assert register.state("S1", "B1", DAY).override is not None  # history stands


def test_a_reduction_takes_effect_only_after_notice(register, config):
    cfg = config.credit
    file_request(register, cfg, view("low", grade=2), "S1", "B1", 40_000.0, 30, "key:k1", DAY)
    worse = {"B1": BuyerRisk(0.04, 2 + cfg.adjustments.grade_steps, "medium", 12_000.0, red_alert=False)}
    out = adjust_limits(register, cfg, worse, DAY)
    assert out.reductions_proposed == 1
    assert adjust_limits(register, cfg, worse, DAY).reductions_proposed == 0  # rerunning a date adds nothing
    notice = DAY + timedelta(days=cfg.adjustments.notice_days)
    assert register.state("S1", "B1", notice - timedelta(days=1)).granted == 40_000.0
    assert [p.to for p in register.state("S1", "B1", DAY).pending_reductions] == [12_000.0]
    after = register.state("S1", "B1", notice)
    assert (after.granted, after.status) == (12_000.0, "reduced")


def test_a_rejected_reduction_never_applies_and_a_confirmed_one_applies_at_once(register, config):
    cfg = config.credit
    for buyer in ("B1", "B2"):
        file_request(register, cfg, view("low", grade=2), "S1", buyer, 40_000.0, 30, "key:k1", DAY)
    risks = {b: BuyerRisk(0.2, 9, "high", 0.0, red_alert=True, exposure_by_seller={"S1": 5_000.0}) for b in ("B1", "B2")}
    adjust_limits(register, cfg, risks, DAY)
    for buyer, confirm in (("B1", True), ("B2", False)):
        pending = register.state("S1", buyer, DAY).pending_reductions
        assert [p.to for p in pending] == [0.0]
        settle_reduction(register, "S1", buyer, pending[0].event_id, ANNA, confirm, "reviewed", DAY)
    later = DAY + timedelta(days=cfg.adjustments.notice_days + 1)
    assert register.state("S1", "B1", DAY).granted == 0.0
    assert register.state("S1", "B2", later).granted == 40_000.0


class RivalAfterFirstRead(LimitRegister):
    """A register that lets a rival act right after its first read of a line's state: the
    interleaving two people deciding at once can hit. The rival runs in its own thread and connection; it finishes
    unless this register's transaction holds the row it needs (then it waits for the commit)."""

    def __init__(self, url: str, rival: threading.Thread) -> None:
        super().__init__(url)
        self.rival = rival

    def state(self, seller_id, buyer_id, on, con=None):  # type: ignore[no-untyped-def]
        read = super().state(seller_id, buyer_id, on, con)
        if self.rival.ident is None:
            self.rival.start()
            self.rival.join(timeout=2)
        return read

    def states(self, on, seller_id=None, buyer_id=None, con=None):  # type: ignore[no-untyped-def]
        read = super().states(on, seller_id, buyer_id, con)
        if self.rival.ident is None:
            self.rival.start()
            self.rival.join(timeout=2)
        return read


def _outcome(results: dict[str, object], name: str, act) -> None:  # type: ignore[no-untyped-def]
    try:
        act()
        results[name] = "done"
    except RegisterError as exc:
        results[name] = exc.status


def test_two_people_deciding_one_reduction_at_once_record_one_decision(tmp_path, config):
    cfg = config.credit
    url = sqlite_url(tmp_path / "register.db")
    reg = LimitRegister(url)
    file_request(reg, cfg, view("low", grade=2), "S1", "B1", 40_000.0, 30, "key:k1", DAY)
    adjust_limits(reg, cfg, {"B1": BuyerRisk(0.2, 9, "high", 0.0, red_alert=True, exposure_by_seller={"S1": 5_000.0})}, DAY)
    proposal = reg.state("S1", "B1", DAY).pending_reductions[0].event_id
    results: dict[str, object] = {}
    rival = threading.Thread(target=_outcome, args=(results, "ben", lambda: settle_reduction(
        LimitRegister(url), "S1", "B1", proposal, BEN, True, "confirm", DAY)))
    _outcome(results, "anna", lambda: settle_reduction(RivalAfterFirstRead(url, rival), "S1", "B1", proposal, ANNA, False, "reject", DAY))
    rival.join(timeout=30)
    assert not rival.is_alive()
    assert sorted(map(str, results.values())) == ["409", "done"]
    decisions = [e.event for e in reg.events("S1", "B1") if e.ref_event_id == proposal]
    assert len(decisions) == 1 and decisions[0] in ("reduction_confirmed", "reduction_rejected")


def test_two_sellers_filing_for_one_buyer_at_once_share_its_capacity(tmp_path, config):
    cfg = config.credit
    url = sqlite_url(tmp_path / "register.db")
    reg = LimitRegister(url)
    results: dict[str, object] = {}
    capped = view("low", recommended=50_000.0)
    rival = threading.Thread(target=lambda: results.setdefault("S2", file_request(
        LimitRegister(url), cfg, capped, "S2", "B1", 40_000.0, 30, "key:k2", DAY).status))
    results["S1"] = file_request(RivalAfterFirstRead(url, rival), cfg, capped, "S1", "B1", 40_000.0, 30, "key:k1", DAY).status
    rival.join(timeout=30)
    assert not rival.is_alive()
    assert sorted(map(str, results.values())) == ["approved", "partially_approved"]
    assert sum(st.granted for st in reg.states(DAY, buyer_id="B1")) == 50_000.0


def test_two_monitoring_runs_at_once_propose_one_reduction(tmp_path, config):
    cfg = config.credit
    url = sqlite_url(tmp_path / "register.db")
    reg = LimitRegister(url)
    file_request(reg, cfg, view("low", grade=2), "S1", "B1", 40_000.0, 30, "key:k1", DAY)
    red = {"B1": BuyerRisk(0.2, 9, "high", 0.0, red_alert=True, exposure_by_seller={"S1": 5_000.0})}
    results: dict[str, object] = {}
    rival = threading.Thread(target=lambda: results.setdefault("second", adjust_limits(LimitRegister(url), cfg, red, DAY).reductions_proposed))
    results["first"] = adjust_limits(RivalAfterFirstRead(url, rival), cfg, red, DAY).reductions_proposed
    rival.join(timeout=30)
    assert not rival.is_alive()
    assert sorted(results.values()) == [0, 1]
    assert [e.event for e in reg.events("S1", "B1")].count("reduction_proposed") == 1


def test_two_people_revoking_one_override_at_once_record_one_revocation(tmp_path, config):
    cfg = config.credit
    url = sqlite_url(tmp_path / "register.db")
    reg = LimitRegister(url)
    record_override(reg, cfg, "S1", "B1", "low", "approve", 30_000.0, ANNA, "customer is fine", DAY)
    results: dict[str, object] = {}
    rival = threading.Thread(target=_outcome, args=(results, "ben", lambda: revoke_override(LimitRegister(url), "S1", "B1", BEN, "statements", DAY)))
    _outcome(results, "anna", lambda: revoke_override(RivalAfterFirstRead(url, rival), "S1", "B1", ANNA, "statements", DAY))
    rival.join(timeout=30)
    assert not rival.is_alive()
    assert sorted(map(str, results.values())) == ["409", "done"]
    assert [e.event for e in reg.events("S1", "B1")].count("override_revoked") == 1


def test_an_improvement_is_a_request_for_approval_never_a_silent_increase(register, config):
    cfg = config.credit
    file_request(register, cfg, view("low", grade=3), "S1", "B1", 20_000.0, 30, "key:k1", DAY)
    better = {"B1": BuyerRisk(0.001, 1, "low", 100_000.0, red_alert=False)}
    out = adjust_limits(register, cfg, better, DAY)
    assert out.increases_requested == 1 and out.reductions_proposed == 0
    state = register.state("S1", "B1", DAY)
    assert state.granted == 20_000.0 and len(state.pending_request_ids) == 1
    assert [r.requested_amount for r in register.pending_requests()] == [100_000.0]
    assert adjust_limits(register, cfg, better, DAY).increases_requested == 0


KILL_SCRIPT = """
import os, signal, sys
from datetime import date
from tradecredit.config import load_config
from tradecredit.credit import desk
from tradecredit.credit.register import LimitRegister
register = LimitRegister(sys.argv[1])
real_append = LimitRegister.append
def dying_append(self, con, seller, buyer, on, events, request_id=None):
    events = list(events)
    if any(e.event == "approved" for e in events):
        os.kill(os.getpid(), signal.SIGKILL)  # after the approval row, before the decision: mid-transaction
    return real_append(self, con, seller, buyer, on, events, request_id)
LimitRegister.append = dying_append
desk.decide_request(register, load_config().credit, sys.argv[2], desk.Reviewer("anna", frozenset({"approver"})), "approve", "ok", date(2026, 3, 31))
"""


def test_kill_9_mid_approval_leaves_nothing_half_written(tmp_path, config):
    cfg = config.credit
    url = sqlite_url(tmp_path / "register.db")
    reg = LimitRegister(url)
    rid = file_request(reg, cfg, view("low"), "S1", "B1", 100_000.0, 30, "key:k1", DAY).request.request_id
    done = subprocess.run([sys.executable, "-c", KILL_SCRIPT, url, rid], capture_output=True, text=True, timeout=120, env=os.environ)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert reg.approvals(rid) == []  # the approval went with the transaction
    assert not reg.state("S1", "B1", DAY).has_line
    assert decide_request(reg, cfg, rid, ANNA, "approve", "ok", DAY).status == "approved"  # and the request is still decidable
