"""One error shape: BentoML's error bodies become ours, naming the field and never the input."""

from __future__ import annotations

import json

from tradecredit.serving.errors import from_validation_errors, normalise_error


def test_a_pydantic_error_names_the_field_and_not_the_input():
    secret = "DROP TABLE buyers; <script>"
    errors = [{"type": "float_parsing", "loc": ("body", "order", "amount"), "msg": "Input should be a valid number", "input": secret}]
    error = from_validation_errors(errors)
    assert (error.status, error.code, error.field) == (400, "invalid_field", "order.amount")
    assert secret not in json.dumps(error.detail())


def test_missing_and_unknown_fields():
    missing = from_validation_errors([{"type": "missing", "loc": ("buyer_id",), "msg": "Field required"}])
    assert missing.message == "'buyer_id' is required" and missing.field == "buyer_id"
    extra = from_validation_errors([{"type": "extra_forbidden", "loc": ("order", "x"), "msg": ""}, {"type": "missing", "loc": ("y",), "msg": ""}])
    assert extra.message == "'order.x' is not a known field (and 1 more problem)"


def test_bentoml_bodies_are_rewritten():
    validation = json.dumps({"error": "1 validation error", "detail": [{"type": "missing", "loc": ["requests", 2, "buyer_id"], "msg": "x"}]})
    assert normalise_error(400, validation.encode()).field == "requests.2.buyer_id"
    bento_list = json.dumps([{"error": "application/vnd.bentoml+pickle is not allowed"}]).encode()
    assert normalise_error(415, bento_list).code == "unsupported_media_type"
    assert normalise_error(404, b"Not Found").code == "not_found"
    raw_json_error = b'{"error": "Expecting value: line 1 column 1 (char 0) near \'secret\'"}'
    rewritten = normalise_error(400, raw_json_error)
    assert rewritten.code == "invalid_body" and "secret" not in rewritten.message
    assert normalise_error(500, b"boom").code == "internal_error"
