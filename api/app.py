"""The FastAPI app factory: components in, an app with routes and problem+json errors out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from importlib.metadata import version
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse, JSONResponse

from api.deps import ApiComponents, audit_ready
from api.limits import RequestLimits
from api.mounts import MountedApp, add_mounted_routes
from api.problems import install_problem_handlers, problem
from api.routes import (
    admin,
    answers,
    audit,
    conversations,
    dev,
    documents,
    explain,
    feedback,
    openai_compat,
    privacy,
    prompts,
    review,
)
from core.errors import ClearanceError

STATIC = Path(__file__).parent / "static"
log = logging.getLogger(__name__)


def create_app(
    components: ApiComponents,
    *,
    on_shutdown: Callable[[], None] | None = None,
    on_startup: Callable[[], None] | None = None,
    mounts: Sequence[MountedApp] = (),
) -> FastAPI:
    """Build the app over ``components``; ``on_shutdown`` releases what the caller built for it.

    ``on_startup`` starts the caller's background work (the retention schedule) when the app starts
    serving, so an app that is built but never run starts nothing.

    ``mounts`` are other ASGI apps served at their exact paths on the same port (the MCP endpoint), each
    running from start-up to shutdown; see :mod:`api.mounts`.

    The development routes exist only when ``components.dev`` is set, which the
    composition root does in development mode alone.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if on_startup is not None:
            on_startup()
        async with AsyncExitStack() as running:
            for mounted in mounts:
                await running.enter_async_context(mounted.running())
            yield
        if on_shutdown is not None:
            on_shutdown()

    app = FastAPI(
        title="Clearance",
        version=version("clearance"),
        description="Permission-aware answers over enterprise documents. Every route but health needs "
        "`Authorization: Bearer <Entra ID access token>`.",
        lifespan=lifespan,
        docs_url="/docs" if components.docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if components.docs else None,
    )
    app.state.components = components
    app.add_middleware(
        RequestLimits,
        authenticate=components.authenticator.authenticate,
        max_body_bytes=components.bounds.max_body_bytes,
        body_timeout_seconds=components.bounds.body_timeout_seconds,
    )
    install_problem_handlers(app)
    # Answers are never returned unaudited: when the audit store is down they are refused (503) up front.
    app.include_router(answers.router, dependencies=[Depends(audit_ready)])
    # Reads of cited documents are audited too: refused up front when the audit store is down.
    app.include_router(documents.router, dependencies=[Depends(audit_ready)])
    # The OpenAI-compatible chat answers like /v1/chat, so it is refused up front the same way.
    app.include_router(openai_compat.router, dependencies=[Depends(audit_ready)])
    app.include_router(openai_compat.models_router)
    # Feedback and review write audit records with each change: refused up front when the audit store is down.
    app.include_router(feedback.router, dependencies=[Depends(audit_ready)])
    app.include_router(review.router, dependencies=[Depends(audit_ready)])
    app.include_router(admin.router)
    app.include_router(explain.router)
    app.include_router(audit.router)
    app.include_router(conversations.router)
    app.include_router(privacy.router)
    app.include_router(prompts.router)
    for mounted in mounts:
        add_mounted_routes(app, mounted)
    if components.dev is not None:
        log.warning("development mode: the bundled identity provider is trusted and /dev/token mints tokens")
        app.include_router(dev.router)

    @app.get("/healthz", tags=["health"], summary="The process is up")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="The index answers", response_model=None)
    def readyz() -> JSONResponse | dict[str, str]:
        try:
            components.readiness()
        except ClearanceError:
            return problem(503, "Index Unavailable")
        return {"status": "ready"}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    return app
