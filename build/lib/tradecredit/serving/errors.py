"""One JSON error shape for every 4xx and 503 the service sends, and the guards that run before
BentoML sees a request.

BentoML answers bad input in its own shapes (a pydantic error list, a bare list, plain text);
:class:`GuardMiddleware` rewrites every error response into ``{"error": {"status", "code",
"message", "field"}}`` and never echoes the input. Before a request reaches BentoML it also
refuses any body that is not JSON (BentoML would otherwise pick a deserializer from the
Content-Type, pickle included), bodies over the size limit, and requests beyond the configured
concurrency (503 with Retry-After instead of an unbounded queue).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import JSONResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Requests that never queue behind scoring: probes, metrics, the documentation.
UNGUARDED_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/schema.json", "/"})
API_MEDIA = frozenset({"application/json"})
CONSOLE_MEDIA = frozenset({"application/json", "application/x-www-form-urlencoded"})
ERROR_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type", 422: "invalid_field", 429: "overloaded", 503: "overloaded"}


class ApiError(Exception):
    """An error a caller can act on, answered as :func:`error_response`."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def detail(self) -> dict[str, Any]:
        return {"status": self.status, "code": self.code, "message": self.message, "field": self.field}


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error.detail()}, status_code=error.status, headers=headers)


def field_path(loc: list[Any] | tuple[Any, ...]) -> str:
    """Pydantic's location as a dotted path, e.g. ``requests.3.order.amount``."""
    return ".".join(str(part) for part in loc if part not in ("body",))


def from_validation_errors(errors: list[dict[str, Any]]) -> ApiError:
    """The first pydantic error as an :class:`ApiError` naming its field (never the input)."""
    if not errors:
        return ApiError(400, "invalid_body", "the request body is not valid")
    first = errors[0]
    field = field_path(first.get("loc", ()))
    kind = first.get("type", "")
    if kind == "missing":
        message = f"'{field}' is required"
    elif kind == "extra_forbidden":
        message = f"'{field}' is not a known field"
    elif kind == "json_invalid":
        return ApiError(400, "invalid_json", "the request body is not valid JSON")
    else:
        message = f"'{field}': {first.get('msg', 'invalid value')}"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return ApiError(400, "invalid_field", message + more, field or None)


def normalise_error(status: int, body: bytes) -> ApiError:
    """Any of BentoML's error bodies as our shape."""
    try:
        parsed: Any = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, list) and len(parsed) == 1:  # BentoMLException bodies are a one-item list
        parsed = parsed[0]
    if isinstance(parsed, dict) and isinstance(parsed.get("detail"), list):
        return from_validation_errors(parsed["detail"])
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        return ApiError(**{k: parsed["error"][k] for k in ("status", "code", "message", "field")})
    if status == 404:
        return ApiError(404, "not_found", "no such endpoint: see /docs.json")
    if status == 405:
        return ApiError(405, "method_not_allowed", "this endpoint takes POST with a JSON body")
    if status == 400:
        # BentoML's JSON decoder errors carry the raw input in their message: say less.
        return ApiError(400, "invalid_body", "the request body is not a valid JSON object for this endpoint")
    if status >= 500 and status != 503:
        return ApiError(status, "internal_error", "the service failed on this request; it is in the server log")
    return ApiError(status, ERROR_CODES.get(status, "error"), "the request was refused")


class GuardMiddleware:
    """Content type, size and concurrency guards, and one error shape (see the module doc)."""

    def __init__(
        self, app: Callable[..., Awaitable[None]], max_request_bytes: int, max_concurrency: int, console_path: str | None = None
    ) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.max_concurrency = max_concurrency
        # The reviewer console posts HTML forms and answers in its own pages: under its path,
        # forms are accepted and its errors are not rewritten (size and concurrency still apply).
        self.console_path = console_path
        self.in_flight = 0

    def _in_console(self, path: str) -> bool:
        return self.console_path is not None and (path == self.console_path or path.startswith(self.console_path + "/"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNGUARDED_PATHS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        console = self._in_console(scope["path"])
        refusal = self._refusal(scope, headers, CONSOLE_MEDIA if console else API_MEDIA)
        if refusal is not None:
            extra = {"Retry-After": "1"} if refusal.status == 503 else None
            await error_response(refusal, extra)(scope, receive, send)
            return
        self.in_flight += 1
        state: dict[str, Any] = {"start": None, "body": b"", "too_large": False}
        try:
            await self.app(scope, self._limited(receive, state), send if console else self._rewriting(send, state))
        finally:
            self.in_flight -= 1

    def _refusal(self, scope: Scope, headers: dict[str, str], accepted: frozenset[str]) -> ApiError | None:
        if scope["method"] == "POST":
            media = headers.get("content-type", "application/json").split(";")[0].strip().lower()
            if media not in accepted:
                return ApiError(415, "unsupported_media_type", "send the body as application/json (pickle and other formats are refused)", None)
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_request_bytes):
                return ApiError(413, "too_large", f"the body is over {self.max_request_bytes:,} bytes: split the batch")
        if self.in_flight >= self.max_concurrency:
            return ApiError(503, "overloaded", f"the service is at its limit of {self.max_concurrency} requests in flight: retry shortly")
        return None

    def _limited(self, receive: Receive, state: dict[str, Any]) -> Receive:
        """A body sent without Content-Length (chunked) is counted as it arrives."""
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_request_bytes:
                    state["too_large"] = True
                    raise BodyTooLarge
            return message

        return wrapped

    def _rewriting(self, send: Send, state: dict[str, Any]) -> Send:
        """Buffer error responses and resend them in our shape; pass everything else through."""

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] < 400:
                    await send(message)
                else:
                    state["start"] = message
                return
            if message["type"] == "http.response.body" and state["start"] is not None:
                state["body"] += message.get("body", b"")
                if message.get("more_body"):
                    return
                status = state["start"]["status"]
                error = (
                    ApiError(413, "too_large", f"the body is over {self.max_request_bytes:,} bytes: split the batch")
                    if state["too_large"]
                    else normalise_error(status, state["body"])
                )
                payload = json.dumps({"error": error.detail()}).encode()
                headers = [(k, v) for k, v in state["start"].get("headers", []) if k.lower() not in (b"content-length", b"content-type")]
                headers += [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
                await send({"type": "http.response.start", "status": error.status, "headers": headers})
                await send({"type": "http.response.body", "body": payload})
                return
            await send(message)

        return wrapped


class BodyTooLarge(Exception):
    """Raised inside a request whose streamed body passes the limit."""
