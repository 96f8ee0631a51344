"""Our error responses in the OpenAPI document.

BentoML generates ``/docs.json`` from the API signatures, with its own error schemas. Every
error this service sends has our shape (:class:`~tradecredit.serving.schemas.ErrorBody`), so
this middleware replaces the documented 4xx/5xx responses of our endpoints with it: the
document then says what a client will really receive.
"""

from __future__ import annotations

import json
from typing import Any

from tradecredit.serving.errors import Receive, Scope, Send
from tradecredit.serving.schemas import ErrorBody

API_PATHS = ("/assess", "/assess_batch", "/status")
ERROR_RESPONSES: dict[str, str] = {
    "400": "A field is missing, of the wrong type or out of bounds (the field is named), or the body is not JSON.",
    "404": "Unknown buyer: it has no features in the online store (/assess only; a batch reports it per item).",
    "413": "The body or the batch is over its configured limit.",
    "415": "The body is not application/json (pickle and other formats are refused).",
    "503": "Over the configured number of requests in flight: retry after the Retry-After seconds.",
}


def with_error_responses(spec: dict[str, Any], responses: dict[str, str]) -> dict[str, Any]:
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(body.pop("$defs", {}))
    schemas["ErrorBody"] = body
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path in API_PATHS:
        operation = spec.get("paths", {}).get(path, {}).get("post")
        if operation is None:
            continue
        kept = {code: r for code, r in operation.get("responses", {}).items() if not code.startswith(("4", "5"))}
        kept.update({code: {"description": text, "content": {"application/json": {"schema": ref}}} for code, text in responses.items()})
        operation["responses"] = kept
    return spec


class OpenApiErrors:
    def __init__(self, app: Any, responses: dict[str, str]) -> None:
        self.app = app
        self.responses = responses

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/docs.json":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    body = b"".join(chunks)
                    if start.get("status") == 200:
                        body = json.dumps(with_error_responses(json.loads(body), self.responses)).encode()
                    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                    headers.append((b"content-length", str(len(body)).encode()))
                    await send({"type": "http.response.start", "status": start["status"], "headers": headers})
                    await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)
