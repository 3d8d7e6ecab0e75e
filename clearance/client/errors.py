"""The client's exception tree: every failure a caller can meet, one class per kind.

The server answers every error as ``application/problem+json`` (RFC 9457);
:func:`problem_error` turns such a response into the :class:`ProblemError`
subclass of its status, so callers write ``except ForbiddenError`` rather
than compare status codes. Messages carry the server's status, title and
detail only: never the bearer token, never request content.

::

    ClearanceClientError
    ├── ProblemError                 the server refused or failed (status, title, detail, errors)
    │   ├── BadRequestError          400
    │   ├── UnauthorizedError        401 no token, or one the server does not accept
    │   ├── ForbiddenError           403 a role (admin) is required
    │   ├── NotFoundError            404
    │   ├── RequestTimeoutError      408 the body was not received in time
    │   ├── ContentTooLargeError     413 the request body is over the server's bound
    │   ├── InvalidRequestError      422 a field is out of bounds (see ``errors``)
    │   ├── ServiceUnavailableError  503 index or answer generator unavailable
    │   └── ServerError              500 and any other 5xx
    ├── AnswerStreamError            a streamed answer failed or ended before its ``done`` event
    ├── UnexpectedResponseError      a response not of the documented shape (a proxy, a version skew)
    └── TransportError               the server could not be reached, or the connection broke
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class FieldError(BaseModel):
    """One invalid field of a 422: where (``["body", "top_k"]``), what and which rule. The input is never echoed."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    loc: tuple[str | int, ...]
    msg: str
    type: str


class ClearanceClientError(Exception):
    """Base of every error this client raises."""


class ProblemError(ClearanceClientError):
    """The server answered with an error status; its problem+json body, parsed."""

    def __init__(
        self,
        *,
        status: int,
        title: str,
        detail: str | None = None,
        problem_type: str = "about:blank",
        errors: tuple[FieldError, ...] = (),
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.problem_type = problem_type
        self.errors = errors
        message = f"{status} {title}" + (f": {detail}" if detail else "")
        super().__init__(message)


class BadRequestError(ProblemError):
    """400: the request was malformed (for example a non-numeric Content-Length)."""


class UnauthorizedError(ProblemError):
    """401: no bearer token, or one the server does not accept (expired, wrong audience or tenant)."""


class ForbiddenError(ProblemError):
    """403: the caller lacks the role the route requires (ingestion jobs need the admin role)."""


class NotFoundError(ProblemError):
    """404: no such route, or no such job in the caller's tenant."""


class RequestTimeoutError(ProblemError):
    """408: the server did not receive the whole request body in time."""


class ContentTooLargeError(ProblemError):
    """413: the request body is larger than the server accepts."""


class InvalidRequestError(ProblemError):
    """422: a field is missing or out of bounds; ``errors`` says which."""


class ServiceUnavailableError(ProblemError):
    """503: the index or the answer generator is unavailable; retrying later may succeed."""


class ServerError(ProblemError):
    """500 or another 5xx: the server failed; it does not say why (by design)."""


class AnswerStreamError(ClearanceClientError):
    """A streamed answer failed on the server (an ``error`` event) or ended before its ``done`` event."""


class UnexpectedResponseError(ClearanceClientError):
    """A response that is not of the documented shape: a proxy's page, or a server of another version."""


class TransportError(ClearanceClientError):
    """The server could not be reached, did not answer in time, or the connection broke."""


_BY_STATUS: dict[int, type[ProblemError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    408: RequestTimeoutError,
    413: ContentTooLargeError,
    422: InvalidRequestError,
    503: ServiceUnavailableError,
}


class _Problem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str = "about:blank"
    title: str | None = None
    detail: str | None = None
    errors: tuple[FieldError, ...] = ()


def problem_error(status: int, body: bytes, reason: str) -> ProblemError:
    """The exception for an error response; ``reason`` (the HTTP reason phrase) titles a body that is not a problem.

    A body that is not problem+json (a reverse proxy's HTML page) is not
    quoted in the message: its status and reason phrase are enough.
    """
    problem = _Problem()
    try:
        parsed: Any = json.loads(body) if body else None
        if isinstance(parsed, dict):
            problem = _Problem.model_validate(parsed)
    except (ValueError, ValidationError):
        pass
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ProblemError)
    return cls(
        status=status,
        title=problem.title or reason or "Error",
        detail=problem.detail,
        problem_type=problem.type,
        errors=problem.errors,
    )
