"""A small HTTP client for the console (a logged-in reviewer without a browser): used by the
demo, the benchmark and the tests."""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Answer:
    status: int
    body: str
    location: str | None

    def json(self) -> Any:
        return json.loads(self.body)


class ConsoleClient:
    """Cookies kept between calls; redirects are returned, not followed (callers check them)."""

    def __init__(self, server_url: str, base: str = "/console", timeout: float = 60.0) -> None:
        self.root = server_url.rstrip("/") + base
        self.cookies = http.cookiejar.CookieJar()
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect())
        self.csrf: str | None = None

    def request(self, method: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Answer:
        request = urllib.request.Request(self.root + path, data=data, method=method, headers=headers or {})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return Answer(response.status, response.read().decode("utf-8"), response.headers.get("Location"))
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, exc.read().decode("utf-8", "replace"), exc.headers.get("Location"))

    def get(self, path: str) -> Answer:
        answer = self.request("GET", path)
        found = CSRF_FIELD.search(answer.body)
        if found:
            self.csrf = found.group(1)
        return answer

    def post_form(self, path: str, fields: dict[str, str], with_csrf: bool = True) -> Answer:
        if with_csrf and self.csrf is not None:
            fields = {"csrf": self.csrf, **fields}
        data = urllib.parse.urlencode(fields).encode()
        return self.request("POST", path, data, {"Content-Type": "application/x-www-form-urlencoded"})

    def post_json(self, path: str, body: Any, with_csrf: bool = True) -> Answer:
        headers = {"Content-Type": "application/json"}
        if with_csrf and self.csrf is not None:
            headers["X-CSRF-Token"] = self.csrf
        return self.request("POST", path, json.dumps(body).encode(), headers)

    def login(self, user_name: str, password: str) -> Answer:
        answer = self.post_form("/login", {"user_name": user_name, "password": password}, with_csrf=False)
        if answer.status == 303:
            self.get("/")  # picks up the session's CSRF token
        return answer
