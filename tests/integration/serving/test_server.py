"""The real service: ``bentoml serve`` on loopback, called over HTTP as an ERP would."""

from __future__ import annotations

import http.client
import json
import time
import urllib.request

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradecredit.config import load_config
from tradecredit.serving.process import post_json
from tradecredit.training.registry import CHAMPION, connect, version_by
from tradecredit.workspace import Workspace
from tradecredit.sql_stores import sqlite_url

ERROR_KEYS = {"status", "code", "message", "field"}


def announce_a_huge_body(url: str, length: int, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    """Send headers announcing ``length`` bytes and the start of the body: the service answers
    413 from the headers, before reading (and buffering) a body it would refuse anyway."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("POST", "/assess")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(length))
    for name, value in (headers or {}).items():
        connection.putheader(name, value)
    connection.endheaders(b'{"buyer_id": "B000001", "pad": "')
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def assert_error(status: int, body: dict, expected_status: int, code: str, field: str | None = None, secret: str | None = None):
    assert status == expected_status, body
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS, body
    assert body["error"]["status"] == expected_status and body["error"]["code"] == code, body
    if field is not None:
        assert body["error"]["field"] == field, body
    if secret is not None:
        assert secret not in json.dumps(body), "an error never echoes the input"


@pytest.fixture(scope="module")
def openapi(server) -> dict:
    status, raw = get(server.url + "/docs.json")
    assert status == 200
    return json.loads(raw)


def validate(openapi: dict, path: str, status: int, body: dict) -> None:
    """Check a response against the schema the served OpenAPI document gives for it."""
    schema = openapi["paths"][path]["post"]["responses"][str(status)]["content"]["application/json"]["schema"]
    # Refs point at #/components/... or the schema's own #/$defs/...: both resolve against this root.
    jsonschema.validate(body, {**schema, "components": openapi.get("components", {})})


def test_health_readiness_and_the_recorded_versions(server, demo_run):
    assert get(server.url + "/livez")[0] == 200 and get(server.url + "/readyz")[0] == 200
    # Ready means the console's portfolio table is there: built by one worker, read by the others
    # (the log is the workspace's, appended by every server: read from this one's start line).
    ws = Workspace(demo_run.workspace)
    workers = load_config(demo_run.configs).serving.workers
    for _ in range(100):
        log = ws.server_log.read_text(encoding="utf-8", errors="replace")
        start = log.rfind(f"listening on {server.url}")
        assert start >= 0, log[-2000:]
        ours = log[start:]
        if ours.count("portfolio table: ") >= workers:
            break
        time.sleep(0.1)
    # One worker builds it, unless an earlier server on this workspace shared one that still
    # holds (same models, clock and stores, younger than the refresh interval): then all read.
    built = ours.count("portfolio table: built")
    assert built <= 1, ours[-3000:]
    assert ours.count("portfolio table: read the one another worker built") == workers - built, ours[-3000:]
    assert ws.portfolio_table_file.exists()
    if built == 0:
        assert "portfolio table: built" in log[:start], "read a table nobody built"
    status, body = server.post("/status", {})
    client = connect(Workspace(demo_run.workspace))
    champions = {name: str(version_by(client, name, None, CHAMPION).version) for name in ("tradecredit-default-12m", "tradecredit-late-30d")}
    assert status == 200 and body["model_versions"] == champions and body["ready"] is True


def test_assess_answers_what_the_openapi_document_says(server, openapi):
    # BentoML's document flattens nullable fields to their type; a seller is named so none is null.
    status, body = server.post("/assess", {"buyer_id": "B000001", "seller_id": "S001", "order": {"amount": 20000, "terms_days": 60}, "requested_limit": 50000})
    assert status == 200, body
    validate(openapi, "/assess", 200, body)
    assert body["late_payment"]["explanation"]["available"] is True and body["explanation"]["reasons"]
    status, batch = server.post("/assess_batch", {"requests": [{"buyer_id": "B000002"}, {"buyer_id": "NOBODY"}]})
    assert status == 200
    validate(openapi, "/assess_batch", 200, batch)
    assert (batch["assessed"], batch["failed"]) == (1, 1) and batch["results"][1]["error"]["code"] == "unknown_buyer"
    for code in ("400", "404", "413", "415", "503"):
        assert "ErrorBody" in json.dumps(openapi["paths"]["/assess"]["post"]["responses"][code])


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"order": {"amount": 1, "terms_days": 30}}, 400, "invalid_field", "buyer_id"),
        ({"buyer_id": "B000001", "order": {"amount": "SECRET-lots", "terms_days": 30}}, 400, "invalid_field", "order.amount"),
        ({"buyer_id": "B000001", "order": {"amount": -5, "terms_days": 30}}, 400, "invalid_field", "order.amount"),
        ({"buyer_id": "B000001", "order": {"amount": 5e15, "terms_days": 30}}, 400, "invalid_field", "order.amount"),
        ({"buyer_id": "B000001", "order": {"amount": 5, "terms_days": 9999}}, 400, "invalid_field", "order.terms_days"),
        ({"buyer_id": "B000001", "requested_limit": -1}, 400, "invalid_field", "requested_limit"),
        ({"buyer_id": "B000001", "order": {"amount": 5, "terms_days": 30, "extra": "SECRET"}}, 400, "invalid_field", "order.extra"),
        ({"buyer_id": "SECRET<script>"}, 400, "invalid_field", "buyer_id"),
        ({"buyer_id": "SECRET-BUYER"}, 404, "unknown_buyer", "buyer_id"),
        ({"buyer_id": "B000001", "requested_limt": 5000}, 400, "invalid_field", "requested_limt"),  # a typo is not dropped
    ],
)
def test_bad_requests_get_one_error_shape(server, body, status, code, field):
    got_status, got = server.post("/assess", body)
    assert_error(got_status, got, status, code, field, secret="SECRET")


def test_bodies_that_never_reach_the_model(server, served_config):
    status, body = post_json(server.url + "/assess", b"\x80\x04\x95 pickled", headers={"Content-Type": "application/vnd.bentoml+pickle", **server.headers})
    assert_error(status, body, 415, "unsupported_media_type")
    status, body = post_json(server.url + "/assess", b"{not json SECRET", headers=server.headers)
    assert_error(status, body, 400, "invalid_json", secret="SECRET")
    status, body = post_json(server.url + "/assess", b"[1, 2]", headers=server.headers)
    assert status == 400 and set(body) == {"error"}
    too_many = {"requests": [{"buyer_id": "B000001"}] * (served_config.serving.max_batch_size + 1)}
    status, body = server.post("/assess_batch", too_many)
    assert_error(status, body, 413, "too_large", "requests")
    status, body = announce_a_huge_body(server.url, served_config.serving.max_request_bytes + 1, server.headers)
    assert_error(status, body, 413, "too_large")
    status, body = server.post("/assess_batch", {"requests": [{"buyer_id": "B000001"}], "dry_run": True})
    assert_error(status, body, 400, "invalid_field", "dry_run")
    status, body = server.post("/no_such_endpoint", {})
    assert_error(status, body, 404, "not_found")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
near_valid = st.fixed_dictionaries(
    {"buyer_id": st.one_of(st.sampled_from(["B000001", "B000002", ""]), st.text(max_size=70), st.integers())},
    optional={
        "order": st.one_of(json_values, st.fixed_dictionaries({"amount": json_values, "terms_days": json_values})),
        "requested_limit": json_values,
    },
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(json_values, near_valid), path=st.sampled_from(["/assess", "/assess_batch", "/limits/requests"]))
def test_any_json_gets_an_answer_or_a_4xx_in_our_shape(server, body, path):
    """Fuzzing: whatever JSON arrives, the service answers 200 or a 4xx with our error body,
    never a 5xx and never a traceback."""
    status, answer = post_json(server.url + path, json.dumps(body).encode(), headers=server.headers)
    assert status in (200, 400, 404, 413), (status, answer)
    if status != 200:
        assert set(answer) == {"error"} and set(answer["error"]) == ERROR_KEYS, answer


# --------------------------------------------------------------------------- keys and limits


def seller_key(demo_run, seller: str) -> tuple[str, dict[str, str]]:
    from tradecredit.serving.access import ApiKeys

    keys = ApiKeys(sqlite_url(Workspace(demo_run.workspace).users_db))
    try:
        key_id, secret = keys.add(seller)
    finally:
        keys.close()
    return key_id, {"Authorization": f"Bearer {secret}"}


def test_applications_authenticate_and_the_probes_stay_open(server, demo_run):
    from tradecredit.serving.access import ApiKeys

    body = {"buyer_id": "B000001"}
    assert_error(*server.post("/assess", body, headers={}), 401, "api_key_required")
    assert_error(*server.post("/assess", body, headers={"Authorization": "Bearer tc_not-a-key-SECRET"}), 401, "invalid_api_key", secret="SECRET")
    assert_error(*server.post("/status", {}, headers={}), 401, "api_key_required")
    assert_error(*server.get("/limits", headers={}), 401, "api_key_required")
    key_id, revoked = seller_key(demo_run, "S001")
    keys = ApiKeys(sqlite_url(Workspace(demo_run.workspace).users_db))
    keys.revoke(key_id)
    keys.close()
    assert_error(*server.post("/assess", body, headers=revoked), 401, "invalid_api_key")
    for probe in ("/livez", "/readyz", "/docs.json"):
        assert get(server.url + probe)[0] == 200, probe
    _, own = seller_key(demo_run, "S001")
    forged = {**own, "X-Tradecredit-Seller": "S002", "X-Tradecredit-Admin": "1"}  # headers only the middleware may set
    assert_error(*server.post("/assess", {**body, "seller_id": "S002"}, headers=forged), 403, "forbidden", field="seller_id")


def test_a_sellers_key_acts_for_its_seller_and_the_log_says_which_key(server, demo_run):
    key_id, own = seller_key(demo_run, "S001")
    status, answer = server.post("/assess", {"buyer_id": "B000001", "order": {"amount": 100, "terms_days": 30}}, headers=own)
    assert status == 200 and answer["seller_id"] == "S001" and answer["limit_source"] in ("register", "discretionary", "none", "override")
    assert_error(*server.post("/assess", {"buyer_id": "B000001", "seller_id": "S002"}, headers=own), 403, "forbidden", secret="S002")
    status, batch = server.post("/assess_batch", {"requests": [{"buyer_id": "B000001"}, {"buyer_id": "B000002", "seller_id": "S002"}]}, headers=own)
    assert status == 200 and (batch["assessed"], batch["failed"]) == (1, 1) and batch["results"][1]["error"]["status"] == 403
    status, as_admin = server.post("/assess", {"buyer_id": "B000001", "seller_id": "S002"})
    assert status == 200 and as_admin["seller_id"] == "S002"
    from tradecredit.serving.decision_log import read_decisions

    logged = next(d for d in read_decisions(sqlite_url(demo_run.workspace / "serving" / "decisions.db")) if d["decision_id"] == answer["decision_id"])
    assert (logged["seller_id"], logged["api_key_id"]) == ("S001", key_id)


def test_a_seller_gets_its_policy_quote_over_http(server, demo_run):
    _, own = seller_key(demo_run, "S001")
    status, answer = server.post("/insurance/quote", {}, headers=own)
    assert status == 200, answer
    q = answer["quote"]
    assert answer["seller_id"] == "S001" and q["buyers"] == len(q["contributions"]) > 0 and q["premium"] > q["expected_loss"] > 0
    top = q["contributions"][0]["buyer_id"]  # the largest premium first
    status, what_if = server.post("/insurance/quote", {"remove": [top], "terms_days": 45}, headers=own)
    assert status == 200 and what_if["what_if"]["before"]["premium"] == q["premium"] and top not in [c["buyer_id"] for c in what_if["quote"]["contributions"]]
    assert_error(*server.post("/insurance/quote", {"seller_id": "S002"}, headers=own), 403, "forbidden", field="seller_id")
    assert_error(*server.post("/insurance/quote", {}), 400, "invalid_field", field="seller_id")  # an administrator names the seller
    assert_error(*server.post("/insurance/quote", {"seller_id": "NOBODY"}), 404, "unknown_seller")
    assert_error(*server.post("/insurance/quote", {"remove": ["NOT-A-BUYER-OF-S001"]}, headers=own), 400, "invalid_field")
    assert server.post("/insurance/quote", {"sellr_id": "S001"})[0] == 400


def test_an_erp_requests_a_line_and_reads_it_back(server, demo_run):
    _, own = seller_key(demo_run, "S001")
    _, other = seller_key(demo_run, "S002")
    request = {"buyer_id": "B000003", "amount": 1_000.0, "terms_days": 30, "client_key": "erp-order-77"}
    status, first = server.post("/limits/requests", request, headers=own)
    assert status == 201, first
    assert first["status"] in ("approved", "pending_approval", "referred", "declined", "partially_approved") and first["line"]["seller_id"] == "S001"
    assert first["limit_reasons"] and all(r["sentence_zh"] for r in first["limit_reasons"])
    status, again = server.post("/limits/requests", request, headers=own)
    assert status == 200 and again["created"] is False and again["request_id"] == first["request_id"]
    assert_error(*server.post("/limits/requests", {**request, "amount": 2_000.0}, headers=own), 409, "client_key_reused")
    status, line = server.get("/limits/S001/B000003", headers=own)
    assert status == 200 and [e["event"] for e in line["events"]][:1] == ["requested"]
    status, by_id = server.get(f"/limits/requests/{first['request_id']}", headers=own)
    assert status == 200 and by_id["request_id"] == first["request_id"]
    status, listing = server.get("/limits", headers=own)
    assert status == 200 and {l["seller_id"] for l in listing["lines"]} == {"S001"}
    # Another seller's key sees nothing of S001's limits.
    assert_error(*server.get("/limits/S001/B000003", headers=other), 403, "forbidden")
    assert_error(*server.get(f"/limits/requests/{first['request_id']}", headers=other), 403, "forbidden")
    assert_error(*server.post("/limits/requests", {**request, "seller_id": "S001", "client_key": "x"}, headers=other), 403, "forbidden")
    status, theirs = server.get("/limits", headers=other)
    assert status == 200 and all(l["seller_id"] == "S002" for l in theirs["lines"])
    assert_error(*server.post("/limits/requests", {**request, "amount": -1}, headers=own), 400, "invalid_field", field="amount")
    assert_error(*server.post("/limits/requests", {**request, "buyer_id": "NOBODY-SECRET"}, headers=own), 404, "unknown_buyer", secret="NOBODY-SECRET")
    assert_error(*server.get("/limits/requests/" + "0" * 32, headers=own), 404, "unknown_request")
    assert_error(*server.post("/limits/requests", {k: v for k, v in request.items() if k != "seller_id"}), 400, "invalid_field", field="seller_id")  # an admin names the seller
