"""ASGI middleware: write rate limit, body size limit and Idempotency-Key replay.

Both are pure ASGI (no BaseHTTPMiddleware) so GET requests, including the permission check,
pass straight through at no cost.

Stored responses that carry a secret (``POST /v1/webhooks``) are kept sealed with the operator
key (``notify.secretbox``) and opened only to replay them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from freezedesk.notify.secretbox import SecretBox, SecretKeyError, idempotent_response_context, is_sealed
from freezedesk.notify.webhooks import WEBHOOKS_PATH
from freezedesk.services.api_keys import KeyRing, Principal
from freezedesk.store.tables import idempotency_keys
from freezedesk.store.uow import Store
from freezedesk.web.api.problems import problem
from freezedesk.web.api.ratelimit import RateLimiter


def _presented_key(headers: dict[bytes, bytes]) -> str:
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return headers.get(b"x-api-key", b"").decode("latin-1")


class BodyLimitAndIdempotency:
    """``max_body_bytes`` bounds every body; ``path_limits`` raises (or lowers) it for exact paths.

    The small default keeps a stray or hostile client from making the server buffer megabytes on
    any endpoint; the few endpoints that take batches (``POST /v1/events``) name a larger limit
    here, so the allowance is one visible table rather than a check scattered over the routes.
    """

    #: POSTs that only read: never rate-limited as writes, never stored for replay (a replayed
    #: permission verdict could predate a freeze committed since).
    READ_ONLY_POSTS = frozenset({"/v1/permissions/check", "/v1/screening/names"})
    #: POSTs whose responses carry a secret: stored for replay only sealed with the operator key.
    SEALED_RESPONSES = frozenset({WEBHOOKS_PATH})

    def __init__(self, app: ASGIApp, store: Store, keyring: KeyRing, max_body_bytes: int, limiter: RateLimiter,
                 path_limits: Mapping[str, int] | None = None, secret_box: SecretBox | None = None) -> None:
        self.app = app
        self.secret_box = secret_box
        self.store = store
        self.keyring = keyring
        self.max_body_bytes = max_body_bytes
        self.path_limits: dict[str, int] = dict(path_limits or {})
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        client = scope.get("client") or ("?", 0)
        # Authenticate first: unknown keys get no bucket of their own (else rotating made-up keys
        # would bypass the limit) and never reach the idempotency store.
        principal = await self._authenticate(_presented_key(headers))
        read_only = scope["path"] in self.READ_ONLY_POSTS
        wait = 0.0 if read_only else self.limiter.allow(principal.key_id if principal else f"ip:{client[0]}")
        if wait > 0:
            response = problem(429, "rate-limited", f"too many state-changing requests; retry in {wait:.1f} s")
            response.headers["Retry-After"] = str(max(1, round(wait + 0.5)))
            await response(scope, receive, send)
            return
        limit = self.path_limits.get(scope["path"], self.max_body_bytes)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, receive, send, limit)
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > limit:
                await self._too_large(scope, receive, send, limit)
                return
            if not message.get("more_body", False):
                break
        raw = bytes(body)

        async def replay_body() -> Message:
            return {"type": "http.request", "body": raw, "more_body": False}

        idem_key = headers.get(b"idempotency-key", b"").decode("latin-1").strip()
        if scope["method"] != "POST" or not idem_key or principal is None or read_only:
            await self.app(scope, replay_body, send)
            return
        if len(idem_key) > 255:
            await problem(422, "validation-error", "Idempotency-Key is longer than 255 characters")(
                scope, replay_body, send)
            return
        owner = principal.key_id
        fingerprint = hashlib.sha256(
            scope["method"].encode() + b" " + scope["path"].encode() + b"?"
            + scope.get("query_string", b"") + b"\n" + raw
        ).hexdigest()
        claimed, stored = await anyio.to_thread.run_sync(self._claim, owner, idem_key, scope, fingerprint)
        if not claimed:
            assert stored is not None
            if stored["request_hash"] != fingerprint:
                response = problem(422, "idempotency-key-reused",
                                   "this Idempotency-Key was already used with a different request")
            elif stored["status_code"] is None:
                response = problem(409, "idempotency-key-in-progress",
                                   "the first request with this Idempotency-Key has not finished; retry later")
            else:
                response = self._replay(scope, owner, idem_key, stored)
            await response(scope, replay_body, send)
            return

        captured: dict[str, Any] = {"status": 500, "body": bytearray()}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, replay_body, capture)
        finally:
            await anyio.to_thread.run_sync(
                self._finish, owner, idem_key, captured["status"], bytes(captured["body"]),
                self._box(scope) if scope["path"] in self.SEALED_RESPONSES else None,
                scope["path"] in self.SEALED_RESPONSES,
            )

    def _box(self, scope: Scope) -> SecretBox | None:
        """The operator key: given, or the application's runtime's."""
        if self.secret_box is not None:
            return self.secret_box
        runtime = getattr(getattr(scope.get("app"), "state", None), "runtime", None)
        box = getattr(runtime, "secret_box", None)
        return box if isinstance(box, SecretBox) else None

    def _replay(self, scope: Scope, owner: str, key: str, stored: dict[str, Any]) -> Response:
        body: str = stored["response_body"]
        if is_sealed(body):
            box = self._box(scope)
            try:
                if box is None:
                    raise SecretKeyError("no operator key is configured")
                body = box.open(body, idempotent_response_context(owner, key))
            except SecretKeyError:
                return problem(503, "webhook-secrets-unavailable",
                               "the stored response holds a secret and cannot be opened: "
                               "the operator key it was sealed with is not configured")
        media = "application/problem+json" if stored["status_code"] >= 400 else "application/json"
        return Response(body, status_code=stored["status_code"], media_type=media,
                        headers={"Idempotent-Replayed": "true"})

    async def _authenticate(self, key: str) -> Principal | None:
        if not key:
            return None
        known, principal = self.keyring.cached(key)
        if not known:
            principal = await anyio.to_thread.run_sync(self.keyring.authenticate, key)
        return principal

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem(413, "payload-too-large", f"request bodies to {scope['path']} are limited to {limit} bytes")
        await response(scope, receive, send)

    def _claim(self, owner: str, key: str, scope: Scope, fingerprint: str) -> tuple[bool, dict[str, Any] | None]:
        try:
            with self.store.unit_of_work() as uow:
                uow.conn.execute(insert(idempotency_keys).values(
                    api_key_id=owner, key=key, method=scope["method"], path=scope["path"],
                    request_hash=fingerprint, created_at=datetime.now(UTC)))
            return True, None
        except IntegrityError:
            with self.store.read() as uow:
                row = uow.conn.execute(select(idempotency_keys).where(
                    idempotency_keys.c.api_key_id == owner, idempotency_keys.c.key == key)).one()
            return False, dict(row._mapping)

    def _finish(self, owner: str, key: str, status: int, body: bytes, box: SecretBox | None = None,
                sealed: bool = False) -> None:
        where = (idempotency_keys.c.api_key_id == owner) & (idempotency_keys.c.key == key)
        text = body.decode("utf-8")
        if sealed and box is not None:
            text = box.seal(text, idempotent_response_context(owner, key))
        # A secret-bearing success that cannot be sealed is not kept at all (never stored in clear).
        transient = status >= 500 or status in (409, 429) or (sealed and box is None and status < 400)
        with self.store.unit_of_work() as uow:
            if transient:  # let the client retry with the same key
                uow.conn.execute(delete(idempotency_keys).where(where))
            else:
                uow.conn.execute(update(idempotency_keys).where(where).values(
                    status_code=status, response_body=text))
