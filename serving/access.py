"""Who is calling the service: API keys for applications (an ERP, an order system), one per
seller, and the middleware that checks them before BentoML sees a request.

Keys live in the console users store (``WORKSPACE/console/users.db``, or the database
``backends.users_url`` names) as SHA-256 hashes: the
key is 256 random bits, so a fast hash is enough and a stolen database opens nothing. A key
names its seller; an administrator key names none and may act for any seller. Health,
readiness, metrics and the documentation stay open; the console has its own logins.

The middleware replaces any caller headers a client sent with the ones it resolved, so the
handlers read who is calling from trusted headers (:func:`caller_of`).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from tradecredit.serving.errors import UNGUARDED_PATHS, ApiError, Receive, Scope, Send, error_response
from tradecredit.sql_stores import sql_engine

KEY_PREFIX = "tc_"
KEY_ID_HEADER = "x-tradecredit-key-id"
SELLER_HEADER = "x-tradecredit-seller"
ADMIN_HEADER = "x-tradecredit-admin"
TRUSTED_HEADERS = frozenset({KEY_ID_HEADER.encode(), SELLER_HEADER.encode(), ADMIN_HEADER.encode()})

api_keys_table = sa.Table(
    "api_keys", sa.MetaData(),
    sa.Column("key_id", sa.String(16), primary_key=True),  # public: shown in listings, logged with every decision
    sa.Column("key_sha256", sa.String(64), unique=True, nullable=False),  # the key itself is never stored
    sa.Column("seller_id", sa.String(64)),  # null: an administrator key
    sa.Column("admin", sa.Integer, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("revoked_at", sa.String(40)),
)


@dataclass(frozen=True)
class ApiCaller:
    key_id: str
    seller_id: str | None
    admin: bool


@dataclass(frozen=True)
class ApiKeyRow:
    key_id: str
    seller_id: str | None
    admin: bool
    created_at: str
    revoked_at: str | None


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyError(ValueError):
    """A key cannot be added or revoked as asked (the message says why)."""


class ApiKeys:
    """The keys table of the users store."""

    def __init__(self, url: str) -> None:
        self._engine = sql_engine(url, writer=False)
        api_keys_table.create(self._engine, checkfirst=True)

    def close(self) -> None:
        self._engine.dispose()

    def add(self, seller_id: str | None, admin: bool = False) -> tuple[str, str]:
        """A new key: (key_id, secret). The secret is shown once and never stored."""
        if admin == (seller_id is not None):
            raise ApiKeyError("a key is either a seller's (give the seller id) or an administrator's (--admin, no seller)")
        key_id, secret = secrets.token_hex(4), KEY_PREFIX + secrets.token_urlsafe(32)
        with self._engine.begin() as con:
            con.execute(
                api_keys_table.insert(),
                {"key_id": key_id, "key_sha256": _sha256(secret), "seller_id": seller_id, "admin": int(admin), "created_at": datetime.now(UTC).isoformat()},
            )
        return key_id, secret

    def revoke(self, key_id: str) -> None:
        t = api_keys_table.c
        with self._engine.begin() as con:
            changed = con.execute(
                api_keys_table.update().where(t.key_id == key_id, t.revoked_at.is_(None)).values(revoked_at=datetime.now(UTC).isoformat())
            ).rowcount
        if not changed:
            raise ApiKeyError(f"no active key '{key_id}': see `tradecredit console keys`")

    def rows(self) -> list[ApiKeyRow]:
        t = api_keys_table.c
        with self._engine.connect() as con:
            rows = con.execute(sa.select(t.key_id, t.seller_id, t.admin, t.created_at, t.revoked_at).order_by(t.created_at)).all()
        return [ApiKeyRow(k, s, bool(a), c, r) for k, s, a, c, r in rows]

    def resolve(self, secret: str) -> ApiCaller | None:
        """The caller of a key; None for an unknown or revoked one."""
        if not secret.startswith(KEY_PREFIX):
            return None
        t = api_keys_table.c
        with self._engine.connect() as con:
            row = con.execute(sa.select(t.key_id, t.seller_id, t.admin).where(t.key_sha256 == _sha256(secret), t.revoked_at.is_(None))).first()
        return None if row is None else ApiCaller(row[0], row[1], bool(row[2]))


def presented_key(headers: Mapping[str, str]) -> str | None:
    """``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return headers.get("x-api-key") or None


def caller_of(headers: Mapping[str, str]) -> ApiCaller:
    """The caller the middleware resolved (trusted: it replaced anything the client sent)."""
    key_id = headers.get(KEY_ID_HEADER)
    if not key_id:
        raise ApiError(401, "api_key_required", "send an API key: Authorization: Bearer <key> (tradecredit console add-key SELLER)")
    return ApiCaller(key_id, headers.get(SELLER_HEADER) or None, headers.get(ADMIN_HEADER) == "1")


def acting_seller(caller: ApiCaller, named: str | None, what: str) -> str:
    """The seller a call acts for: a seller key's own (naming another is 403); an administrator
    key must name one (400). ``what`` says what the call does, for the refusal."""
    if caller.admin:
        if not named:
            raise ApiError(400, "invalid_field", "an administrator key must name the seller_id", "seller_id")
        return named
    if named is not None and named != caller.seller_id:
        raise ApiError(403, "forbidden", f"this API key belongs to another seller: it cannot {what} for this seller", "seller_id")
    return str(caller.seller_id)


class ApiKeyMiddleware:
    """Refuses a request without a valid key (401) before BentoML sees it, and passes the
    caller on in trusted headers. Resolved keys are cached for ``cache_seconds``: a revoked
    key stops working within that time."""

    def __init__(self, app: Any, users_url: str, console_path: str, required: bool = True, cache_seconds: float = 5.0) -> None:
        self.app = app
        self.users_url = users_url
        self.console_path = console_path
        self.required = required
        self.cache_seconds = cache_seconds
        self._keys: ApiKeys | None = None
        self._cache: dict[str, tuple[float, ApiCaller | None]] = {}

    def _resolve(self, secret: str) -> ApiCaller | None:
        now = time.monotonic()
        hit = self._cache.get(secret)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        if self._keys is None:
            self._keys = ApiKeys(self.users_url)
        caller = self._keys.resolve(secret)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[secret] = (now, caller)
        return caller

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in UNGUARDED_PATHS or path == self.console_path or path.startswith(self.console_path + "/"):
            await self.app(scope, receive, send)
            return
        raw = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in TRUSTED_HEADERS]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}
        secret = presented_key(headers)
        caller = None
        if secret is None:
            if self.required:
                await error_response(ApiError(401, "api_key_required", "send an API key: Authorization: Bearer <key> (tradecredit console add-key SELLER)"))(scope, receive, send)
                return
            caller = ApiCaller("none", None, True)  # a gateway in front authenticates (serving.api_keys.required: false)
        else:
            caller = self._resolve(secret)
            if caller is None:
                await error_response(ApiError(401, "invalid_api_key", "this API key is unknown or revoked"))(scope, receive, send)
                return
        raw += [(KEY_ID_HEADER.encode(), caller.key_id.encode()), (ADMIN_HEADER.encode(), b"1" if caller.admin else b"0")]
        if caller.seller_id is not None:
            raw.append((SELLER_HEADER.encode(), caller.seller_id.encode("latin-1")))
        await self.app({**scope, "headers": raw}, receive, send)

