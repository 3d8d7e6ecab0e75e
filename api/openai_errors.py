"""Errors in OpenAI's shape for the OpenAI-compatible routes, so that its SDKs and chat front ends read them.

OpenAI's clients map the HTTP status to an exception class and read
``{"error": {"message", "type", "param", "code"}}`` from the body, whatever its
media type. These routes therefore answer the API's usual problem+json (type,
title, status) with OpenAI's ``error`` object as an extension member: one body
that problem+json clients and OpenAI's SDKs both read. Like every other error of
the API, the message is a fixed text per status (or a public domain message):
internal exception text never leaves the server.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"

OPENAI_PATHS = frozenset({"/v1/chat/completions", "/v1/models"})

# status -> (type, code, message): OpenAI's error types where it has one for the case.
_KINDS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "The request is malformed."),
    401: ("invalid_request_error", "invalid_api_key", "A valid Microsoft Entra ID access token is required."),
    403: ("permission_error", None, "The token does not grant access to this operation."),
    404: ("invalid_request_error", "not_found", "Not found."),
    405: ("invalid_request_error", None, "Method not allowed."),
    408: ("invalid_request_error", "timeout", "The request body was not received in time."),
    413: ("invalid_request_error", "request_too_large", "The request body is too large."),
    422: ("invalid_request_error", "invalid_value", "The request body is invalid."),
    503: ("server_error", "service_unavailable", "The service cannot answer now; try again later."),
}


def is_openai_path(path: str) -> bool:
    return path in OPENAI_PATHS


def openai_error_body(
    status: int,
    title: str = "Error",
    *,
    message: str | None = None,
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    kind, default_code, default_message = _KINDS.get(status, ("server_error", None, "The request failed."))
    return {
        "type": "about:blank",
        "title": title,
        "status": status,
        "error": {
            "message": message or default_message,
            "type": kind,
            "param": param,
            "code": code or default_code,
        },
    }


def openai_error(
    status: int, title: str, *, message: str | None = None, param: str | None = None, code: str | None = None
) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else None
    body = openai_error_body(status, title, message=message, param=param, code=code)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)
