"""The risk reviewer console on the real ``bentoml serve`` (loopback), over HTTP and in headless
Chromium (Debian's, driven by Playwright): access control, the reviewer's journey, and the
screenshots the README shows (written to ``test-artifacts/screenshots/`` or
``$TRADECREDIT_SCREENSHOTS``)."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from tests.conftest import REPO
from tests.integration.browser import open_page
from tradecredit.config import load_config
from tradecredit.workspace import Workspace
from tradecredit.serving.console.auth import ConsoleAuth
from tradecredit.serving.console.client import ConsoleClient
from tradecredit.serving.decision_log import read_decisions, read_reviews
from tradecredit.sql_stores import sqlite_url

PASSWORDS = {"alice": "alice-long-password", "bob": "bob-long-password", "carol": "carol-long-password", "dave": "dave-long-password"}
ROLES = {"alice": ("analyst", "approver"), "bob": ("analyst",), "carol": ("requester", "approver"), "dave": ("approver",)}
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("GET", "/static/{name}"), ("GET", "/static/plotly.min.js")}
SCREENSHOTS = Path(os.environ.get("TRADECREDIT_SCREENSHOTS") or REPO / "test-artifacts" / "screenshots")


@pytest.fixture(scope="module")
def reviewers(demo_run) -> dict[str, str]:
    auth = ConsoleAuth(sqlite_url(Workspace(demo_run.workspace).users_db), load_config(demo_run.configs).console)
    for name, password in PASSWORDS.items():
        auth.add_user(name, password, replace=True, roles=ROLES[name])
    auth.close()
    return PASSWORDS


@pytest.fixture(scope="module")
def decision_log(demo_run) -> str:
    return sqlite_url(demo_run.workspace / "serving" / "decisions.db")


def logged_in(server, name: str) -> ConsoleClient:
    client = ConsoleClient(server.url)
    assert client.login(name, PASSWORDS[name]).status == 303
    assert client.csrf, "the portfolio page carries the session's CSRF token"
    return client


def console_routes() -> list[tuple[str, str]]:
    """(method, path) of every route of the served console app, included routers' too."""
    from tradecredit.serving.service import console_app

    def walk(routes) -> list[APIRoute]:
        found = []
        for route in routes:
            if isinstance(route, APIRoute):
                found.append(route)
            elif hasattr(route, "original_router"):  # FastAPI 0.16x keeps included routers as such
                found += walk(route.original_router.routes)
        return found

    return sorted((method, route.path) for route in walk(console_app.routes) for method in route.methods)


def concrete(path: str) -> str:
    return (
        path.replace("{buyer_id}", "B000001").replace("{alert_id}", "1").replace("{name}", "console.css")
        .replace("{request_id}", "0" * 32).replace("{seller_id}", "S001").replace("{event_id}", "1").replace("{case_id}", "1")
    )


def test_every_page_and_write_needs_a_login(server, reviewers, decision_log):
    private = [r for r in console_routes() if r not in PUBLIC]
    # The portfolio, buyer, alerts and language pages; logout, acknowledge, override and what-if.
    assert len(private) >= 8, private
    before = len(read_reviews(decision_log))
    decisions_before = sum(1 for _ in read_decisions(decision_log))
    for cookie in (None, "forged-token"):
        client = ConsoleClient(server.url)
        if cookie:
            client.cookies.set_cookie(_cookie("tradecredit_session", cookie))
        for method, path in private:
            if method == "GET":
                answer = client.get(concrete(path))
                assert answer.status == 303 and answer.location.startswith("/console/login"), (path, answer.status)
            else:
                answer = client.post_form(concrete(path), {"decision": "approve", "reason": "no login at all", "note": "x"}, with_csrf=False)
                assert answer.status == 401, (path, answer.status, answer.body[:200])
    assert len(read_reviews(decision_log)) == before and sum(1 for _ in read_decisions(decision_log)) == decisions_before
    # The public routes answer without a login (the login page, the stylesheet and plotly.js).
    anonymous = ConsoleClient(server.url)
    assert anonymous.get("/login").status == 200
    assert anonymous.get("/static/console.css").status == 200
    assert anonymous.get("/static/../auth.py").status == 404


def _cookie(name: str, value: str):
    import http.cookiejar

    return http.cookiejar.Cookie(0, name, value, None, False, "127.0.0.1", False, False, "/console", True, False, None, False, None, None, {})


def test_wrong_passwords_and_expired_or_ended_sessions_are_refused(server, reviewers):
    client = ConsoleClient(server.url)
    answer = client.login("alice", "not-her-password")
    assert answer.status == 401 and "Wrong user name or password" in answer.body
    assert client.get("/").status == 303
    alice = logged_in(server, "alice")
    assert alice.get("/").status == 200
    assert alice.post_form("/logout", {}).status == 303
    assert alice.get("/").status == 303, "a logged-out session opens nothing"


def test_one_reviewer_cannot_act_as_another(server, reviewers, decision_log):
    alice, bob = logged_in(server, "alice"), logged_in(server, "bob")
    before = len(read_reviews(decision_log))
    # Bob's session with Alice's token (a forged form): refused.
    bob_token = bob.csrf
    bob.csrf = alice.csrf
    answer = bob.post_form("/buyers/B000001/override", {"decision": "approve", "reason": "pretending to be alice"})
    assert answer.status == 403 and "does not belong to your session" in answer.body
    bob.csrf = bob_token
    # Alice naming Bob as the reviewer: refused, whatever the field is called.
    for field in ("reviewer", "user_name", "by"):
        answer = alice.post_form("/buyers/B000001/override", {"decision": "approve", "reason": "signed as bob", field: "bob"})
        assert answer.status == 400 and "logged-in reviewer" in answer.body, field
    # No token at all: refused; a JSON write without the header too.
    assert bob.post_form("/buyers/B000001/override", {"decision": "approve", "reason": "no token here"}, with_csrf=False).status == 403
    assert bob.post_json("/api/whatif", {"buyer_id": "B000001", "order": {"amount": 10, "terms_days": 30}}, with_csrf=False).status == 403
    assert len(read_reviews(decision_log)) == before


def test_bad_input_gets_a_4xx_that_says_what_is_wrong(server, reviewers):
    alice = logged_in(server, "alice")
    answer = alice.get("/?sort=password")
    assert answer.status == 400 and "cannot sort by" in answer.body
    answer = alice.get("/buyers/NO-SUCH-BUYER")
    assert answer.status == 404 and "no features in the online store" in answer.body
    answer = alice.get("/alerts?page=abc")
    message = html.unescape(re.search(r'id="error-message">(.*?)</p>', answer.body).group(1))
    assert answer.status == 400 and "'page'" in message and "abc" not in message, "the message names the parameter, never echoes it"
    answer = alice.get("/buyers/not%20an%20id!")
    assert answer.status == 400 and "a buyer id is" in answer.body
    assert alice.post_form("/buyers/not%20an%20id!/override", {"decision": "approve", "reason": "long enough reason"}).status == 400
    answer = alice.post_form("/buyers/B000001/override", {"decision": "approve", "reason": "short"})
    assert answer.status == 400 and "reason" in answer.body
    answer = alice.post_form("/buyers/B000001/override", {"decision": "yes please", "reason": "long enough reason"})
    assert answer.status == 400 and "decision is one of" in answer.body
    answer = alice.post_json("/api/whatif", {"buyer_id": "B000001", "order": {"amount": -5, "terms_days": 30}})
    assert answer.status == 400 and answer.json()["error"]["field"] == "order.amount"
    assert alice.post_form("/alerts/999999/acknowledge", {}).status == 404


def test_portfolio_pages_are_served_in_pages_and_agree_with_assess(server, reviewers):
    alice = logged_in(server, "alice")
    page = alice.get("/?sort=pd_12m&desc=1&size=7")
    assert page.status == 200
    buyers = re.findall(r'class="buyer-link">([^<]+)</a>', page.body)
    assert len(buyers) == 7, "the server sends one page, not the portfolio"
    shown = re.search(r'id="portfolio-summary">\s*<strong>([\d,]+)</strong> of ([\d,]+) buyers', page.body)
    assert int(shown.group(1).replace(",", "")) > 7
    pds = [float(p) for p in re.findall(r'<td class="num">([\d.]+)%</td><td class="num">', page.body)][:7]
    assert pds == sorted(pds, reverse=True)
    status, answer = server.post("/assess", {"buyer_id": buyers[0]})
    assert status == 200 and f"{answer['pd_12m'] * 100:.2f}" == f"{pds[0]:.2f}"
    # Page 2: seven more buyers, none of page 1's, carrying on the same order.
    second = alice.get("/?sort=pd_12m&desc=1&size=7&page=2")
    assert second.status == 200, second.body[:500]
    more = re.findall(r'class="buyer-link">([^<]+)</a>', second.body)
    assert len(more) == 7 and not set(more) & set(buyers), more
    more_pds = [float(p) for p in re.findall(r'<td class="num">([\d.]+)%</td><td class="num">', second.body)][:7]
    assert len(more_pds) == 7 and more_pds == sorted(more_pds, reverse=True) and max(more_pds) <= min(pds), (pds, more_pds)
    # A grade filter: a non-empty page of buyers, each shown with one of the grades asked for
    # (the best grade present and the next: which grades a small demo's model uses varies).
    best = alice.get("/?sort=pd_12m&size=1")
    low = int(re.findall(r'class="grade \w+">(\d+)</span>', best.body)[0])
    filtered = alice.get(f"/?grade={low}&grade={low + 1}&size=200")
    assert filtered.status == 200, filtered.body[:500]
    matched = re.findall(r'class="buyer-link">([^<]+)</a>', filtered.body)
    grades = re.findall(r'class="grade \w+">(\d+)</span>', filtered.body)
    assert matched and len(grades) == len(matched), (matched, grades)
    assert set(grades) <= {str(low), str(low + 1)}, grades
    count = re.search(r'id="portfolio-summary">\s*<strong>([\d,]+)</strong> of ([\d,]+) buyers', filtered.body)
    assert int(count.group(1).replace(",", "")) == len(matched) < int(count.group(2).replace(",", ""))


@pytest.mark.timeout(600)
def test_a_reviewer_works_through_the_console_in_chromium(server, reviewers, decision_log, demo_run):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = server.url + "/console"
    with open_page(base + "/", 1400, 1100) as page:
        # Not logged in: the login page.
        assert "/console/login" in page.url
        page.fill("#user_name", "alice")
        page.fill("#password", PASSWORDS["alice"])
        page.click("#login")
        page.wait_for_selector("#portfolio")
        assert page.inner_text("#reviewer") == "alice"
        page.screenshot(path=str(SCREENSHOTS / "console-portfolio.png"))

        # The alerts page: pick an alerted buyer to look up.
        page.click("#nav-alerts")
        page.wait_for_selector("#alerts")
        alert_rows = page.locator("tr.alert-row")
        assert alert_rows.count() > 0, "the demo's monitoring raised alerts by its clock"
        page.screenshot(path=str(SCREENSHOTS / "console-alerts.png"))
        first = alert_rows.first
        alert_id = int(first.get_attribute("id").removeprefix("alert-"))
        buyer = first.locator("td").nth(1).inner_text().strip()

        # Find the buyer by id and open its page.
        page.fill("#search", buyer)
        page.press("#search", "Enter")
        page.wait_for_selector("#portfolio")
        assert page.locator("a.buyer-link").all_inner_texts() == [buyer]
        page.click("a.buyer-link")
        page.wait_for_selector("#chart-waterfall[data-rendered=true]")
        assert page.inner_text("#buyer-id") == buyer
        # The waterfall is drawn: base, the top features, the rest, the score.
        bars = page.locator("#chart-waterfall g.point").count()
        assert bars >= 5, bars
        for chart in ("pd-history", "payments", "aging", "registry"):
            page.wait_for_selector(f"#chart-{chart}[data-rendered=true]")
        english = page.inner_text("#reasons")
        assert "risk" in english
        page.screenshot(path=str(SCREENSHOTS / "console-buyer.png"), full_page=True)

        # Switch the language: the same reasons in Chinese, then back.
        page.click("#switch-language")
        page.wait_for_selector("#chart-waterfall[data-rendered=true]")
        chinese = page.inner_text("#reasons")
        assert "风险" in chinese and "risk" not in chinese
        page.screenshot(path=str(SCREENSHOTS / "console-buyer-zh.png"))
        page.click("#switch-language")
        page.wait_for_selector("#reasons")
        assert "risk" in page.inner_text("#reasons")

        # What if: an order of 25,000 on 60 days, as /assess would decide it (nothing logged).
        decisions_before = sum(1 for _ in read_decisions(decision_log))
        page.fill("#what-if-amount", "25000")
        page.fill("#what-if-terms", "60")
        page.click("#what-if-run")
        page.wait_for_selector("#what-if-result[data-version='1']")
        assert sum(1 for _ in read_decisions(decision_log)) == decisions_before, "a what-if decides nothing"
        status, answer = server.post("/assess", {"buyer_id": buyer, "order": {"amount": 25000, "terms_days": 60}})
        assert status == 200
        assert page.inner_text("#what-if-result [data-key=decision]") == answer["decision"]
        assert page.inner_text("#what-if-result [data-key=recommended_limit]") == f"{answer['recommended_limit']:,.0f}"
        # A larger order changes the answer the panel shows.
        page.fill("#what-if-amount", "900000000")
        page.click("#what-if-run")
        page.wait_for_selector("#what-if-result[data-version='2']")
        status, larger = server.post("/assess", {"buyer_id": buyer, "order": {"amount": 900000000, "terms_days": 60}})
        assert page.inner_text("#what-if-result [data-key=decision]") == larger["decision"]
        assert page.inner_text("#what-if-result [data-key=premium]") == f"{larger['insurance']['premium']:,.0f}"

        # Override the decision with a written reason: in the decision log, by alice.
        page.select_option("#override-decision", "decline")
        page.fill("#override-limit", "0")
        page.fill("#override-reason", "Enforcement order confirmed by phone with the buyer's bank.")
        page.click("#override-submit")
        page.wait_for_selector("tr.overridden")
        assert page.inner_text("tr.overridden .override-by") == "alice"
        override = [r for r in read_reviews(decision_log, buyer_id=buyer) if r["action"] == "override"][-1]
        assert (override["reviewer"], override["override_decision"], override["override_limit"]) == ("alice", "decline", 0.0)
        assert override["reason"] == "Enforcement order confirmed by phone with the buyer's bank."
        overridden = [d for d in read_decisions(decision_log, buyer) if d["decision_id"] == override["decision_id"]]
        assert len(overridden) == 1 and overridden[0]["endpoint"] == "console" and overridden[0]["default_model"]
        assert override["model_decision"] == overridden[0]["decision"]

        # Acknowledge the alert: recorded by alice, shown on the alerts page.
        page.click("#nav-alerts")
        page.wait_for_selector(f"#alert-{alert_id}")
        page.fill(f"#alert-{alert_id} input[name=note]", "collections called")
        page.click(f"#alert-{alert_id} button")
        page.wait_for_selector(f"#alert-{alert_id} .acknowledged")
        assert "alice" in page.inner_text(f"#alert-{alert_id} .acknowledged")
        ack = [r for r in read_reviews(decision_log, action="acknowledge") if r["alert_id"] == alert_id]
        assert len(ack) == 1 and ack[0]["reviewer"] == "alice" and ack[0]["reason"] == "collections called" and ack[0]["buyer_id"] == buyer
        page.screenshot(path=str(SCREENSHOTS / "console-alerts-acknowledged.png"))

        # Log out: the pages are closed again.
        page.click(".logout button")
        page.wait_for_selector("#login")
        page.goto(base + "/alerts")
        assert "/console/login" in page.url
    for name in ("portfolio", "alerts", "buyer", "buyer-zh"):
        assert (SCREENSHOTS / f"console-{name}.png").stat().st_size > 20_000


def test_a_high_risk_line_needs_two_approvers_none_of_them_the_requester(server, reviewers, demo_run):
    """Four-eyes through the console: the requester cannot approve, an analyst cannot, one
    approver is not enough for a high-risk line, nobody signs twice; then /assess decides the
    seller's orders against the granted line."""
    status, risky = 0, None
    for i in range(1, 120):
        status, a = server.post("/assess", {"buyer_id": f"B{i:06d}", "seller_id": "S001"})
        if status == 200 and a["tier"] == "high" and a["decision"] in ("approve", "refer", "partial") and a["capacity"] >= 2_000:
            risky = a
            break
    assert risky is not None, "the demo book has a high-risk buyer that is not knocked out"
    buyer = risky["buyer_id"]
    carol, bob, alice, dave = (logged_in(server, n) for n in ("carol", "bob", "alice", "dave"))
    carol.get("/limits")
    answer = carol.post_form("/limits/requests", {"seller_id": "S001", "buyer_id": buyer, "amount": "1000", "terms_days": "30"})
    assert answer.status == 303, answer.body[:500]
    page = answer.location.removeprefix("/console")
    request_id = page.rsplit("/", 1)[1]
    assert "cannot-decide" in carol.get(page).body
    decide = f"/limits/requests/{request_id}/decide"
    refused = carol.post_form(decide, {"verdict": "approve", "reason": "my own customer, trust me"})
    assert refused.status == 403 and "requester cannot approve" in refused.body
    bob.get(page)
    refused = bob.post_form(decide, {"verdict": "approve", "reason": "analysts do not approve"})
    assert refused.status == 403 and "approver role" in refused.body
    assert request_id[:8] in alice.get("/limits").body  # waiting for alice
    alice.get(page)
    assert alice.post_form(decide, {"verdict": "approve", "reason": "statements and payments reviewed"}).status == 303
    assert html.unescape(alice.get(page).body).count("pending_approval") >= 1
    assert alice.post_form(decide, {"verdict": "approve", "reason": "approving a second time"}).status == 403
    assert request_id[:8] not in re.search(r'id="my-approvals".*?</table>', alice.get("/limits").body, re.S).group(0)
    dave.get(page)
    assert dave.post_form(decide, {"verdict": "approve", "reason": "second pair of eyes agrees"}).status == 303
    done = dave.get(page).body
    assert re.search(r'id="request-status">\s*approved\s*<', done), done[:3000]
    approvals = re.search(r'id="approvals".*?</table>', done, re.S).group(0)
    assert "alice" in approvals and "dave" in approvals
    status, order = server.post("/assess", {"buyer_id": buyer, "seller_id": "S001", "order": {"amount": 500, "terms_days": 30}})
    assert status == 200 and order["limit_source"] == "register" and order["granted_limit"] == 1000.0
    assert buyer in alice.get(f"/buyers/{buyer}").body and "alice, dave" in alice.get(f"/buyers/{buyer}").body
    # An override holds every later answer until it is revoked (or expires); an analyst cannot make one.
    bob.get(f"/buyers/{buyer}")
    assert bob.post_form(f"/buyers/{buyer}/override", {"seller_id": "S001", "decision": "refer", "reason": "analysts do not override"}).status == 403
    alice.get(f"/buyers/{buyer}")
    assert alice.post_form(f"/buyers/{buyer}/override", {"seller_id": "S001", "decision": "refer", "reason": "payment plan under negotiation"}).status == 303
    status, held = server.post("/assess", {"buyer_id": buyer, "seller_id": "S001", "order": {"amount": 500, "terms_days": 30}})
    assert (held["decision"], held["limit_source"]) == ("refer", "override")
    alice.get(f"/buyers/{buyer}")
    assert alice.post_form(f"/limits/S001/{buyer}/override/revoke", {"reason": "the payment plan was signed"}).status == 303
    status, back = server.post("/assess", {"buyer_id": buyer, "seller_id": "S001", "order": {"amount": 500, "terms_days": 30}})
    assert back["limit_source"] == "register" and back["decision"] != "refer" or back["decision_code"] != "override_refer"
