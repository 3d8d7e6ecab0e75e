"""The FastAPI app factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse

from api import routes_admin, routes_answers, routes_dev
from api.problems import install_problem_handlers, problem
from clearance import __version__
from clearance.errors import ClearanceError
from clearance.runtime import Runtime, build_runtime
from clearance.settings import Mode, Settings

STATIC = Path(__file__).parent / "static"
log = logging.getLogger(__name__)


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> FastAPI:
    """Build the app; pass ``runtime`` to share already-loaded components (tests, benchmarks)."""
    owned = runtime is None
    runtime = runtime or build_runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            runtime.close()

    app = FastAPI(
        title="Clearance",
        version=__version__,
        description="Permission-aware answers over enterprise documents. Every route but health needs "
        "`Authorization: Bearer <Entra ID access token>`.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    install_problem_handlers(app)
    app.include_router(routes_answers.router)
    app.include_router(routes_admin.router)
    if settings.mode is Mode.DEVELOPMENT:
        log.warning("development mode: the bundled identity provider is trusted and /dev/token mints tokens")
        app.include_router(routes_dev.router)

    @app.get("/healthz", tags=["health"], summary="The process is up")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="The index answers", response_model=None)
    def readyz() -> JSONResponse | dict[str, str]:
        try:
            runtime.index.ping()
        except ClearanceError:
            return problem(503, "Index Unavailable")
        return {"status": "ready"}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    return app
