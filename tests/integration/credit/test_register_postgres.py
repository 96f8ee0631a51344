"""The limit register on a real PostgreSQL server (the production profile's database): the
same schema and the same guarantees as on SQLite, racing approvers included."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date

from tradecredit.config import load_config
from tradecredit.credit.desk import PolicyView, Reviewer, decide_request, file_request
from tradecredit.credit.register import LimitRegister, RegisterError
from tradecredit.local_servers import postgres_url

DAY = date(2026, 3, 31)


def _record(results: dict[str, object], key: str, own: LimitRegister, act: Callable[[LimitRegister], str]) -> None:
    """One party's outcome on its own connection: the status it got, or the refusal's."""
    try:
        results[key] = act(own)
    except RegisterError as exc:
        results[key] = exc.status
    finally:
        own.close()


def _let_run(rival: threading.Thread) -> None:
    # Once: the rival finishes within 3 s unless the caller's transaction holds what it needs.
    if rival.ident is None:
        rival.start()
        rival.join(timeout=3)


def test_the_register_on_postgresql_keeps_four_eyes_and_one_winner(production_servers):
    cfg = load_config().credit
    url = production_servers.environment()["TRADECREDIT_REGISTER_URL"]
    assert url == postgres_url(production_servers.postgres.address, "credit")
    register = LimitRegister(url)
    view = PolicyView(0.05, 8, "high", 300_000.0, 400_000.0, "approve", "within_limit", "within the recommended limit")
    request = file_request(register, cfg, view, "S-PG", "B-PG", 20_000.0, 30, "key:pg", DAY, client_key="pg-1")
    assert (request.status, request.approvals_needed) == ("pending_approval", 2)
    assert file_request(register, cfg, view, "S-PG", "B-PG", 20_000.0, 30, "key:pg", DAY, client_key="pg-1").created is False
    rid = request.request.request_id
    decide_request(register, cfg, rid, Reviewer("anna", frozenset({"approver"})), "approve", "first pair of eyes", DAY)
    results: list[object] = []
    barrier = threading.Barrier(2)

    def second(name: str) -> None:
        own = LimitRegister(url)
        barrier.wait()
        try:
            results.append(decide_request(own, cfg, rid, Reviewer(name, frozenset({"approver"})), "approve", "second pair", DAY).status)
        except RegisterError as exc:
            results.append(exc.status)
        finally:
            own.close()

    threads = [threading.Thread(target=second, args=(n,)) for n in ("ben", "cat")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(str, results)) == ["409", "approved"]
    state = register.state("S-PG", "B-PG", DAY)
    assert state.has_line and state.granted == 20_000.0 and len(register.approvals(rid)) == 2
    register.close()


def test_an_approver_whose_rival_commits_between_two_reads_does_not_grant_twice(production_servers):
    # The interleaving the race above can hit on PostgreSQL's read committed: the second approver
    # reads the request's events, the rival's whole approval commits, then the second reads the
    # approvals (now two) and would sign a third step. Planted here, not left to the scheduler.
    cfg = load_config().credit
    url = production_servers.environment()["TRADECREDIT_REGISTER_URL"]
    register = LimitRegister(url)
    view = PolicyView(0.05, 8, "high", 300_000.0, 400_000.0, "approve", "within_limit", "within the recommended limit")
    rid = file_request(register, cfg, view, "S-PG2", "B-PG2", 20_000.0, 30, "key:pg2", DAY, client_key="pg-2").request.request_id
    decide_request(register, cfg, rid, Reviewer("anna", frozenset({"approver"})), "approve", "first pair of eyes", DAY)
    results: dict[str, object] = {}

    def approve(name: str, own: LimitRegister) -> None:
        _record(results, name, own, lambda reg: decide_request(reg, cfg, rid, Reviewer(name, frozenset({"approver"})), "approve", "second pair", DAY).status)

    rival = threading.Thread(target=approve, args=("ben", LimitRegister(url)))

    class ReadsApprovalsAfterTheRival(LimitRegister):
        def approvals(self, request_id: str, con=None):  # type: ignore[no-untyped-def]
            if con is not None:
                _let_run(rival)
            return super().approvals(request_id, con)

    approve("cat", ReadsApprovalsAfterTheRival(url))
    rival.join(timeout=30)
    assert not rival.is_alive()
    assert sorted(map(str, results.values())) == ["409", "approved"]
    assert len(register.approvals(rid)) == 2
    assert [e.event for e in register.events("S-PG2", "B-PG2")].count("approved") == 1
    register.close()


def test_two_sellers_filing_for_one_buyer_at_once_share_its_capacity_on_postgresql(production_servers):
    # On read committed nothing row-level stands for a buyer's capacity: the advisory lock on the
    # buyer makes the second filing wait and read the first one's line.
    cfg = load_config().credit
    url = production_servers.environment()["TRADECREDIT_REGISTER_URL"]
    register = LimitRegister(url)
    capped = PolicyView(0.001, 2, "low", 50_000.0, 50_000.0, "approve", "within_limit", "within the recommended limit")
    results: dict[str, object] = {}

    def file(seller: str, own: LimitRegister) -> None:
        _record(results, seller, own, lambda reg: file_request(reg, cfg, capped, seller, "B-CAP", 40_000.0, 30, f"key:{seller}", DAY).status)

    rival = threading.Thread(target=file, args=("S-CAP2", LimitRegister(url)))

    class ReadsCapacityBeforeTheRival(LimitRegister):
        def states(self, on, seller_id=None, buyer_id=None, con=None):  # type: ignore[no-untyped-def]
            read = super().states(on, seller_id, buyer_id, con)
            if con is not None:
                _let_run(rival)
            return read

    file("S-CAP1", ReadsCapacityBeforeTheRival(url))
    rival.join(timeout=30)
    assert not rival.is_alive()
    assert sorted(map(str, results.values())) == ["approved", "partially_approved"]
    assert sum(s.granted for s in register.states(DAY, buyer_id="B-CAP")) == 50_000.0
    register.close()
