"""Every failure as application/problem+json (RFC 9457), mapped in this one place.

Clients get a status, a fixed title and, only for errors whose message is
written for users, a detail. Internal exception text never leaves the server.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import (
    AccessDeniedError,
    AuthenticationError,
    AuthorizationError,
    ClearanceError,
    GenerationError,
    IndexUnavailableError,
    InvalidInputError,
    ModelBusyError,
    NotFoundError,
    StoreUnavailableError,
)

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"

_STATUS: dict[type[ClearanceError], tuple[int, str]] = {
    AuthenticationError: (401, "Unauthorized"),
    AuthorizationError: (403, "Forbidden"),
    AccessDeniedError: (403, "Forbidden"),
    NotFoundError: (404, "Not Found"),
    InvalidInputError: (422, "Unprocessable Content"),
    IndexUnavailableError: (503, "Index Unavailable"),
    GenerationError: (503, "Answer Generator Unavailable"),
    ModelBusyError: (503, "Model Busy"),
    StoreUnavailableError: (503, "State Store Unavailable"),
}


def problem(
    status: int, title: str, detail: str | None = None, *, retry_after: int | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers or None)


def status_for(exc: ClearanceError) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 500, "Internal Server Error"


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ClearanceError)
    async def domain_error(request: Request, exc: ClearanceError) -> JSONResponse:
        status, title = status_for(exc)
        log.info("request failed: %s %s -> %s (%s)", request.method, request.url.path, status, type(exc).__name__)
        retry_after = exc.retry_after if isinstance(exc, ModelBusyError) else None
        return problem(status, title, str(exc) if exc.public else None, retry_after=retry_after)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Field locations and messages only: the offending input is not echoed back.
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
            for err in exc.errors()
        ]
        return problem(422, "Unprocessable Content", "request body is invalid", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {
            400: "Bad Request",
            401: "Unauthorized",
            403: "Forbidden",
            404: "Not Found",
            405: "Method Not Allowed",
            408: "Request Timeout",
            413: "Content Too Large",
        }
        return problem(exc.status_code, titles.get(exc.status_code, "Error"))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal Server Error")
