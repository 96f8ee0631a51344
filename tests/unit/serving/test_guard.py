"""The guard in front of BentoML, driven as an ASGI app: overload gets 503 in our shape and the
service keeps answering; non-JSON bodies never reach the app."""

from __future__ import annotations

import asyncio
import json

from starlette.responses import JSONResponse

from tradecredit.serving.errors import GuardMiddleware


def slow_app(gate: asyncio.Event):
    async def app(scope, receive, send):
        await receive()
        await gate.wait()
        await JSONResponse({"ok": True})(scope, receive, send)

    return app


async def call(app, content_type: str = "application/json", path: str = "/assess") -> tuple[int, dict, dict]:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": [(b"content-type", content_type.encode()), (b"content-length", b"2")]}
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start.get("headers", [])), json.loads(body)


def test_requests_beyond_the_limit_get_503_and_the_rest_are_served():
    async def scenario():
        gate = asyncio.Event()
        guard = GuardMiddleware(slow_app(gate), max_request_bytes=1000, max_concurrency=3)
        calls = [asyncio.create_task(call(guard)) for _ in range(8)]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(*calls)
        after = await call(guard)
        return results, after, guard.in_flight

    results, after, in_flight = asyncio.run(scenario())
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200] * 3 + [503] * 5
    refused = next(r for r in results if r[0] == 503)
    assert refused[2]["error"]["code"] == "overloaded" and refused[1][b"retry-after"] == b"1"
    assert after[0] == 200 and in_flight == 0, "the service answers again once the load passes"


def test_non_json_bodies_never_reach_the_app():
    reached = []

    async def app(scope, receive, send):
        reached.append(scope["path"])

    guard = GuardMiddleware(app, max_request_bytes=1000, max_concurrency=3)
    for media in ("application/vnd.bentoml+pickle", "application/octet-stream", "multipart/form-data; boundary=x", "text/plain"):
        status, _, body = asyncio.run(call(guard, media))
        assert status == 415 and body["error"]["code"] == "unsupported_media_type"
    assert reached == []


def test_the_console_takes_forms_and_keeps_its_own_error_pages():
    async def html_error(scope, receive, send):
        await receive()
        await JSONResponse({"console": "own shape"}, status_code=403)(scope, receive, send)

    async def scenario():
        guard = GuardMiddleware(html_error, max_request_bytes=1000, max_concurrency=3, console_path="/console")
        form = "application/x-www-form-urlencoded"
        return (
            await call(guard, form, "/console/buyers/B1/override"),
            await call(guard, form, "/assess"),
            await call(guard, "application/x-python-pickle", "/console/login"),
            await call(guard, form, "/consoleX/login"),
        )

    console_form, api_form, console_pickle, lookalike = asyncio.run(scenario())
    assert console_form[0] == 403 and console_form[2] == {"console": "own shape"}, "forms reach the console; its answer is not rewritten"
    assert api_form[0] == 415, "the API still takes JSON only"
    assert console_pickle[0] == 415, "the console takes forms and JSON, nothing else"
    assert lookalike[0] == 415, "only the console's own path is the console"
