"""The console's early-warning cases: the cases page (red, then yellow, then listed; nothing
opened after the clock), resolving a case (role, CSRF, outcome, a closed or missing case) and
the buyer page's case. The console app runs in process on a real case book, a real users store
and a real decision log; only the assessor is left out (the buyer page's assessment is stubbed)."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, date, datetime
from types import SimpleNamespace

import polars as pl
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tradecredit.monitoring.cases import CaseBook, case_verdicts, read_cases
from tradecredit.serving.console import app as console_app
from tradecredit.serving.console.app import DECISIONS, Console, build_console_app
from tradecredit.serving.decision_log import DecisionLog
from tradecredit.serving.engine import Clock
from tradecredit.sql_stores import sqlite_url
from tradecredit.workspace import Workspace

NOW = datetime(2026, 6, 15, 23, 59, 59, tzinfo=UTC)
BASE = "/console"
PASSWORDS = {"ana": "analyst-long-password", "rita": "requester-long-password"}
ALERT_SCHEMA = {"buyer_id": pl.String, "signal": pl.String, "colour": pl.String, "evidence": pl.String, "raised_on": pl.String, "escalated_on": pl.String}
METRIC_SCHEMA = {"buyer_id": pl.String, "pd_12m": pl.Float64, "grade": pl.Int64, "grade_change": pl.Int64, "open_balance": pl.Float64}
# buyer -> (signal, colour, raised on, grade, open balance). RED_NEW and RED_OLD carry knock-outs;
# LISTED's balance is below the materiality floor (5,000); LATE's case opens after the clock.
PLANTED = {
    "RED_OLD": ("insolvency_filing", "red", date(2026, 3, 1), 6, 50_000.0),
    "LISTED": ("lawsuits", "yellow", date(2026, 3, 1), 4, 1_000.0),
    "YELLOW": ("lawsuits", "yellow", date(2026, 5, 1), 4, 20_000.0),
    "RED_NEW": ("enforcement_order", "red", date(2026, 5, 1), 5, 40_000.0),
    "LATE": ("insolvency_filing", "red", date(2026, 7, 1), 7, 60_000.0),
}


def plant_cases(path, cfg) -> None:
    """Three monitoring runs (the last after the clock), each seeing every alert raised by then."""
    for run in sorted({raised for _, _, raised, _, _ in PLANTED.values()}):
        raised = {b: p for b, p in PLANTED.items() if p[2] <= run}
        alerts = pl.DataFrame(
            [(b, s, c, f"{s.replace('_', ' ')} seen for {b}", d.isoformat(), None) for b, (s, c, d, _, _) in raised.items()],
            schema=ALERT_SCHEMA, orient="row",
        )
        metrics = pl.DataFrame([(b, 0.01 * g, g, 0, balance) for b, (_, _, _, g, balance) in raised.items()], schema=METRIC_SCHEMA, orient="row")
        book = CaseBook(path)
        try:
            book.apply(run, case_verdicts(alerts, metrics, granted={}, cfg=cfg, as_of=run), cfg)
        finally:
            book.close()


@pytest.fixture
def console(tmp_path, config) -> Console:
    ws = Workspace(tmp_path / "ws")
    ws.ledger.mkdir(parents=True)
    (ws.ledger / "load_summary.json").write_text(json.dumps({}))
    pl.DataFrame(
        {"buyer_id": list(PLANTED), "country": ["DE"] * 5, "industry": ["C"] * 5, "legal_form": ["GmbH"] * 5,
         "founded_on": [date(2000, 1, 1)] * 5, "employees": [10] * 5},
    ).write_parquet(ws.ledger / "buyers.parquet")
    # The pages read the clock and the decision log from the assessor; nothing here scores.
    assessor = SimpleNamespace(clock=Clock(NOW), log=DecisionLog(sqlite_url(tmp_path / "decisions.db")))
    made = Console(config, ws, assessor)  # type: ignore[arg-type]
    made.auth.add_user("ana", PASSWORDS["ana"], roles=("analyst",))
    made.auth.add_user("rita", PASSWORDS["rita"], roles=("requester",))
    plant_cases(ws.alerts_db, config.monitoring.cases)
    yield made
    made.auth.close()


@pytest.fixture
def client(console) -> TestClient:
    host = FastAPI()
    host.mount(BASE, build_console_app(lambda: console, BASE))
    return TestClient(host, follow_redirects=False)


def log_in(client: TestClient, name: str) -> str:
    """Log ``name`` in; returns the session's CSRF token, read from a page as a browser would."""
    assert client.post(f"{BASE}/login", data={"user_name": name, "password": PASSWORDS[name]}).status_code == 303
    page = client.get(f"{BASE}/cases")
    assert page.status_code == 200, page.text[:500]
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def case_of(console: Console, buyer: str) -> int:
    return read_cases(console.alerts_db, None, buyer_id=buyer)["case_id"][0]


def shown(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr id="case-(\d+)"', page)]


def error_of(page: str) -> str:
    return html.unescape(re.search(r'id="error-message">(.*?)</p>', page, re.S).group(1))


def test_the_cases_page_lists_red_then_yellow_then_listed_and_nothing_opened_after_the_clock(client, console):
    log_in(client, "ana")
    page = client.get(f"{BASE}/cases")
    assert page.status_code == 200
    ids = {b: case_of(console, b) for b in PLANTED}
    assert read_cases(console.alerts_db, None).height == 5, "the case opened after the clock is in the book"
    # Newest opened first within a kind: RED_NEW (May) before RED_OLD (March).
    assert shown(page.text) == [ids["RED_NEW"], ids["RED_OLD"], ids["YELLOW"], ids["LISTED"]]
    assert "LATE" not in page.text
    summary = re.search(r'id="cases-summary">(.*?)</p>', page.text, re.S).group(1)
    assert re.search(r'id="count-red">2 red<', summary) and re.search(r'id="count-yellow">1 yellow<', summary)
    assert re.search(r'id="count-listed">1 listed<', summary)
    row = re.search(rf'<tr id="case-{ids["RED_OLD"]}".*?</tr>', page.text, re.S).group(0)
    assert 'data-kind="red"' in row and "knock-out: insolvency filing" in row and "insolvency filing seen for RED_OLD" in row
    assert console.cfg.monitoring.cases.actions["red"] in row and f'href="{BASE}/buyers/RED_OLD"' in row and "50,000" in row
    assert 'class="resolve-form"' in row and all(f'value="{o}"' in row for o in console.cfg.monitoring.cases.resolutions)
    listed = re.search(rf'<tr id="case-{ids["LISTED"]}".*?</tr>', page.text, re.S).group(0)
    assert 'data-kind="listed"' in listed and "below the materiality floor" in listed
    # One kind; no closed case yet; the navigation links the page; Chinese words.
    assert shown(client.get(f"{BASE}/cases?kind=listed").text) == [ids["LISTED"]]
    assert shown(client.get(f"{BASE}/cases?show=closed").text) == []
    assert f'href="{BASE}/cases" id="nav-cases"' in page.text
    client.cookies.set("tradecredit_lang", "zh")
    assert "未结案件" in client.get(f"{BASE}/cases").text


@pytest.mark.parametrize("query, parameter", [("show=everything", "show"), ("kind=green", "kind"), ("page=0", "page"), ("page=abc", "'page'")])
def test_a_bad_cases_query_is_a_400_naming_the_parameter(client, query, parameter):
    log_in(client, "ana")
    page = client.get(f"{BASE}/cases?{query}")
    assert page.status_code == 400 and parameter in error_of(page.text)


def test_an_analyst_resolves_a_case_once(client, console):
    csrf = log_in(client, "ana")
    case_id = case_of(console, "RED_OLD")
    form = {"csrf": csrf, "outcome": "false_alarm", "note": "the filing was withdrawn", "next": f"{BASE}/cases?kind=red"}
    answer = client.post(f"{BASE}/cases/{case_id}/resolve", data=form)
    assert answer.status_code == 303 and answer.headers["location"] == f"{BASE}/cases?kind=red"
    case = read_cases(console.alerts_db, None, buyer_id="RED_OLD").row(0, named=True)
    assert (case["status"], case["outcome"], case["resolved_by"], case["resolution_note"]) == ("closed", "false_alarm", "ana", "the filing was withdrawn")
    assert case["closed_on"] == NOW.date().isoformat(), "closed on the service clock's date"
    # Gone from the open cases, shown with its resolution among the closed ones.
    assert case_id not in shown(client.get(f"{BASE}/cases").text)
    closed = client.get(f"{BASE}/cases?show=closed").text
    assert shown(closed) == [case_id]
    assert 'class="resolved-by">ana<' in closed and "the filing was withdrawn" in closed and "false alarm" in closed
    # A second resolution: 409, naming the first.
    again = client.post(f"{BASE}/cases/{case_id}/resolve", data=form | {"outcome": "monitoring"})
    assert again.status_code == 409 and "already closed" in error_of(again.text)
    assert read_cases(console.alerts_db, None, buyer_id="RED_OLD")["outcome"].to_list() == ["false_alarm"]
    # Without a next, back to the cases page.
    other = client.post(f"{BASE}/cases/{case_of(console, 'YELLOW')}/resolve", data={"csrf": csrf, "outcome": "monitoring"})
    assert other.status_code == 303 and other.headers["location"] == f"{BASE}/cases"


def test_resolving_is_refused_without_the_role_a_token_an_outcome_or_a_case(client, console):
    case_id = case_of(console, "RED_NEW")
    rita = log_in(client, "rita")
    answer = client.post(f"{BASE}/cases/{case_id}/resolve", data={"csrf": rita, "outcome": "action_taken"})
    assert answer.status_code == 403 and "analyst" in error_of(answer.text)
    csrf = log_in(client, "ana")
    assert client.post(f"{BASE}/cases/{case_id}/resolve", data={"outcome": "action_taken"}).status_code == 403, "no CSRF token"
    for outcome in ("", "   ", "settled"):
        answer = client.post(f"{BASE}/cases/{case_id}/resolve", data={"csrf": csrf, "outcome": outcome})
        assert answer.status_code == 422 and "action_taken, false_alarm, monitoring" in error_of(answer.text), outcome
    answer = client.post(f"{BASE}/cases/999/resolve", data={"csrf": csrf, "outcome": "action_taken"})
    assert answer.status_code == 404 and "no case 999" in error_of(answer.text)
    # A case opened by a run after the clock is not there yet for the reviewer.
    assert client.post(f"{BASE}/cases/{case_of(console, 'LATE')}/resolve", data={"csrf": csrf, "outcome": "action_taken"}).status_code == 404
    assert client.post(f"{BASE}/cases/not-a-number/resolve", data={"csrf": csrf, "outcome": "action_taken"}).status_code == 400
    assert read_cases(console.alerts_db, "closed").height == 0, "nothing was resolved"


def test_no_case_book_yet_is_an_empty_page_and_a_404_that_creates_nothing(client, console):
    console.alerts_db.unlink()
    csrf = log_in(client, "ana")
    assert shown(client.get(f"{BASE}/cases").text) == []
    assert client.post(f"{BASE}/cases/1/resolve", data={"csrf": csrf, "outcome": "action_taken"}).status_code == 404
    assert not console.alerts_db.exists(), "the console does not create monitoring's database"


def assessment_only(console: Console, buyer_id: str, lang: str) -> dict:
    """What buyer_context gives the buyer page, without the models: enough to render it."""
    insurance = SimpleNamespace(premium_rate=0.01, premium=100.0, insured_turnover=10_000.0, cover_ratio=0.9)
    a = SimpleNamespace(
        tier="high", grade=6, pd_12m=0.05, recommended_limit=1000.0, exposure=50_000.0, available_limit=0.0, capacity_source="model",
        decision="refer", decision_reason="stub", expected_loss=10.0, insurance=insurance, freshness=SimpleNamespace(features_as_of="2026-06-01", stale=False),
    )
    return {
        "buyer_id": buyer_id, "a": a, "reasons": [], "figures": {}, "history": [], "statements": [], "events": [], "decisions": [],
        "decisions_logged": 0, "overrides": {}, "alerts": [], "firm": {}, "model_version": "stub v1", "decision_choices": DECISIONS,
        "raw_score": 0.0, "lines": [], "sellers": [],
    }


def test_the_buyer_page_shows_its_open_case(client, console, monkeypatch):
    monkeypatch.setattr(console_app, "buyer_context", assessment_only)
    log_in(client, "ana")
    page = client.get(f"{BASE}/buyers/RED_NEW")
    assert page.status_code == 200, page.text[:500]
    box = re.search(r'id="buyer-case".*?</div>', page.text, re.S).group(0)
    assert f'data-case-id="{case_of(console, "RED_NEW")}"' in box and 'data-kind="red"' in box
    assert "knock-out: enforcement order" in box and console.cfg.monitoring.cases.actions["red"] in box
    assert "enforcement order seen for RED_NEW" in box
    assert page.text.index('id="buyer-case"') < page.text.index("<h2>Open alerts</h2>"), "above the alerts"
    assert f'href="{BASE}/cases" id="buyer-cases-link"' in page.text
    # A case opened after the clock is not shown; nor a resolved one.
    assert 'id="buyer-case"' not in client.get(f"{BASE}/buyers/LATE").text
    book = CaseBook(console.alerts_db)
    book.resolve(case_of(console, "RED_NEW"), "action_taken", "ana", "", NOW.date(), console.cfg.monitoring.cases)
    book.close()
    assert 'id="buyer-case"' not in client.get(f"{BASE}/buyers/RED_NEW").text
