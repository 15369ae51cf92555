"""RFC 9457 problem details for every error the API returns.

``type`` is a stable URI (``/problems/<slug>``) a client can switch on; ``title`` is its
human summary; ``detail`` explains this occurrence. Extra members carry machine-readable
context (the offending field, the approvals still needed, ...).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from freezedesk.domain.errors import DomainError
from freezedesk.store.repositories import ConcurrentUpdate

log = logging.getLogger("freezedesk.web")
PROBLEM_JSON = "application/problem+json"

#: Every problem type the API can return, with its title: published at /problems.
PROBLEM_TYPES: dict[str, str] = {
    "malformed-json": "The body is not valid JSON",
    "validation-error": "The request does not match the schema",
    "payload-too-large": "The body is larger than the limit",
    "unauthenticated": "An API key is required",
    "invalid-api-key": "The API key is not valid or has been revoked",
    "insufficient-scope": "The API key lacks the scope this needs",
    "staff-key-required": "This needs a staff API key",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "idempotency-key-reused": "The Idempotency-Key was used with a different request",
    "idempotency-key-in-progress": "A request with this Idempotency-Key is still running",
    "concurrent-update": "Someone else changed this at the same time; retry",
    "rate-limited": "Too many requests",
    "internal-error": "Internal error",
}


def problem_types() -> dict[str, str]:
    """The edge's own problem types and every domain error's, by slug."""
    found = dict(PROBLEM_TYPES)
    pending: list[type[DomainError]] = [DomainError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.type, cls.title)
        pending.extend(cls.__subclasses__())
    return found


def problem(status: int, slug: str, detail: str, title: str | None = None,
            extra: dict[str, Any] | None = None) -> Response:
    body = {
        # extension members never overwrite the standard ones
        **(extra or {}),
        "type": f"/problems/{slug}",
        "title": title or PROBLEM_TYPES.get(slug, slug.replace("-", " ").capitalize()),
        "status": status,
        "detail": detail,
    }
    return Response(orjson.dumps(body, default=str), status_code=status, media_type=PROBLEM_JSON)


class ApiProblem(Exception):
    """Raised by the web edge for errors that are not domain rules (auth, scopes)."""

    def __init__(self, status: int, slug: str, detail: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.slug, self.detail, self.headers, self.extra = status, slug, detail, headers, extra


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> Response:
        return problem(exc.status, exc.type, exc.detail, exc.title, exc.extra)

    @app.exception_handler(ApiProblem)
    async def _api(_: Request, exc: ApiProblem) -> Response:
        response = problem(exc.status, exc.slug, exc.detail, extra=exc.extra)
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(ConcurrentUpdate)
    async def _concurrent(_: Request, exc: ConcurrentUpdate) -> Response:
        return problem(409, "concurrent-update", f"{exc} changed while this request ran; retry it")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem(400, "malformed-json", "the request body is not valid JSON")
        return problem(
            422,
            "validation-error",
            "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:5]),
            extra={"errors": [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in errors]},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem(exc.status_code, slug, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        # The detail never echoes the exception: it could carry data of another customer.
        return problem(500, "internal-error", "an unexpected error occurred; it has been logged")
