"""The permission check served ahead of the router.

``GET /v1/accounts/{account_id}/permissions`` is the exchange's hot path. Routed through
FastAPI it costs ~150 µs of CPU per call (route matching, dependency resolution, JSON encoding)
against ~1 µs for the check itself, which is what limits tail latency at a few thousand requests
per second on one worker. This ASGI layer answers it directly with the same rules as the
documented route: the account-id pattern, API-key authentication, the ``permissions:read`` scope,
``reduce_only`` parsed like FastAPI parses booleans, and RFC 9457 problems for every error.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

import anyio
import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from freezedesk.domain.errors import DomainError
from freezedesk.domain.scopes import parse_action
from freezedesk.runtime import Runtime
from freezedesk.web.api.problems import problem
from freezedesk.web.api.schemas import ACCOUNT_ID_PATTERN

_PATH = re.compile(r"^/v1/accounts/([^/]+)/permissions$")
_ACCOUNT = re.compile(ACCOUNT_ID_PATTERN)
_TRUE = frozenset({"1", "true", "on", "yes", "t", "y"})
_FALSE = frozenset({"0", "false", "off", "no", "f", "n"})
_CHALLENGE = [(b"www-authenticate", b'Bearer realm="freezedesk"')]
_JSON_HEADERS = [(b"content-type", b"application/json")]
SCOPE_NEEDED = "permissions:read"


class PermissionFastPath:
    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _PATH.match(scope["path"]) if scope["type"] == "http" and scope["method"] == "GET" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        status, body, extra_headers = await self._answer(match.group(1), scope)  # path is already decoded
        headers = (_JSON_HEADERS if status == 200 else [(b"content-type", b"application/problem+json")])
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(body)).encode()), *extra_headers]})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, account_id: str, scope: Scope) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        key = _presented_key(scope)
        if not key:
            return _problem(401, "unauthenticated", "send your API key as 'Authorization: Bearer <key>'",
                            _CHALLENGE)
        keyring = self.runtime.keyring
        known, principal = keyring.cached(key)
        if not known:  # a database read, off the event loop
            principal = await anyio.to_thread.run_sync(keyring.authenticate, key)
        if principal is None:
            return _problem(401, "invalid-api-key", "the API key is not valid or has been revoked", _CHALLENGE)
        if SCOPE_NEEDED not in principal.scopes:
            return _problem(403, "insufficient-scope", f"this API key lacks the {SCOPE_NEEDED!r} scope",
                            extra={"required_scope": SCOPE_NEEDED})
        if len(account_id) > 128 or not _ACCOUNT.match(account_id):
            return _validation("path.account_id", "String should match pattern " + repr(ACCOUNT_ID_PATTERN))
        params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        action = params.get("action")
        if action is None:
            return _validation("query.action", "Field required")
        raw_reduce = params.get("reduce_only", "false").lower()
        if raw_reduce not in _TRUE and raw_reduce not in _FALSE:
            return _validation("query.reduce_only", "Input should be a valid boolean")
        try:
            verdict = self.runtime.view.check(account_id, parse_action(action), raw_reduce in _TRUE)
        except DomainError as exc:
            return _problem(exc.status, exc.type, exc.detail, title=exc.title, extra=exc.extra)
        return 200, orjson.dumps(verdict), []


def _presented_key(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            text: str = value.decode("latin-1")
            if text[:7].lower() == "bearer ":
                return text[7:].strip()
        elif name == b"x-api-key":
            return str(value.decode("latin-1"))
    return ""


def _problem(status: int, slug: str, detail: str, headers: list[tuple[bytes, bytes]] | None = None,
             title: str | None = None, extra: dict[str, Any] | None = None
             ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    return status, bytes(problem(status, slug, detail, title, extra).body), headers or []


def _validation(field: str, message: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    return _problem(422, "validation-error", f"{field}: {message}",
                    extra={"errors": [{"field": field, "message": message}]})
