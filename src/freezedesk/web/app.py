"""The ASGI application: partner API under /v1, problem details, health, OpenAPI."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from freezedesk import __version__
from freezedesk.runtime import Runtime
from freezedesk.web.api import problems
from freezedesk.web.api.fastpath import PermissionFastPath
from freezedesk.web.api.middleware import BodyLimitAndIdempotency
from freezedesk.web.api.monitoring_routes import EVENTS_PATH
from freezedesk.web.api.monitoring_routes import router as monitoring_router
from freezedesk.web.api.ratelimit import RateLimiter
from freezedesk.web.api.routes import router
from freezedesk.web.api.screening_routes import router as screening_router


def create_app(runtime: Runtime | None = None) -> FastAPI:
    rt = runtime or Runtime()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt.start()
        # Everything loaded so far lives as long as the process: keep it out of the collector's
        # full passes, which otherwise pause every request for tens of milliseconds.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            rt.stop()

    app = FastAPI(
        title="FreezeDesk partner API",
        version=__version__,
        description=(
            "Restrict accounts for the right reason with the right scope, ask at high rate whether an "
            "action is allowed, and lift with the right approvals. Authenticate with "
            "`Authorization: Bearer <API key>`. Every POST honours `Idempotency-Key`. Errors are RFC 9457 "
            "problem details."
        ),
        lifespan=lifespan,
    )
    app.state.runtime = rt
    problems.install(app)
    app.include_router(router)
    app.include_router(screening_router)
    app.include_router(monitoring_router)
    limiter = RateLimiter(rt.settings.write_rate_per_second, rt.settings.write_burst)
    app.add_middleware(BodyLimitAndIdempotency, store=rt.store, keyring=rt.keyring,
                       max_body_bytes=rt.settings.max_body_bytes,
                       limiter=limiter, path_limits={EVENTS_PATH: rt.settings.max_events_body_bytes})
    app.add_middleware(PermissionFastPath, runtime=rt)  # outermost: the hot path skips everything else

    @app.get("/healthz", tags=["ops"], include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "restricted_accounts": rt.view.restricted_accounts()}

    @app.get("/problems", tags=["ops"], summary="Every problem type the API returns")
    async def problem_index() -> dict[str, Any]:
        return {"items": [{"type": f"/problems/{slug}", "title": title}
                          for slug, title in sorted(problems.problem_types().items())]}

    @app.get("/problems/{slug}", tags=["ops"], include_in_schema=False)
    async def problem_type(slug: str) -> Response:
        title = problems.problem_types().get(slug)
        if title is None:
            return problems.problem(404, "not-found", f"no problem type {slug!r}")
        return JSONResponse({"type": f"/problems/{slug}", "title": title})

    return app
