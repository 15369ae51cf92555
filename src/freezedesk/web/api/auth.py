"""API-key authentication and per-scope authorisation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from fastapi import Request

from freezedesk.services.api_keys import KeyRing, Principal
from freezedesk.web.api.problems import ApiProblem

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="freezedesk"'}


async def principal_of(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    key = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    if not key:
        raise ApiProblem(401, "unauthenticated", "send your API key as 'Authorization: Bearer <key>'",
                         headers=_CHALLENGE)
    keyring: KeyRing = request.app.state.runtime.keyring
    known, found = keyring.cached(key)
    if not known:  # a database read, off the event loop
        found = await anyio.to_thread.run_sync(keyring.authenticate, key)
    if found is None:
        raise ApiProblem(401, "invalid-api-key", "the API key is not valid or has been revoked",
                         headers=_CHALLENGE)
    return found


def require(scope: str, staff: bool = False) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the caller's principal, which must hold ``scope`` (and be staff if asked)."""

    async def dependency(request: Request) -> Principal:
        found = await principal_of(request)
        if scope not in found.scopes:
            raise ApiProblem(403, "insufficient-scope", f"this API key lacks the {scope!r} scope",
                             required_scope=scope)
        if found.role == "auditor" and scope.endswith(":write"):
            raise ApiProblem(403, "role-not-allowed", "auditors have read-only access")
        if staff and found.staff_id is None:
            raise ApiProblem(403, "staff-key-required",
                             "this action is taken by a person: use a staff API key (created with --role and --staff)")
        return found

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency
