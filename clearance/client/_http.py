"""What the sync and async clients share: the calls of the API, the bearer token, response reading.

Each API operation is a :class:`Call` (method, path, body) built here once;
``Client`` and ``AsyncClient`` only send it, so the two cannot drift apart.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from clearance import __version__
from clearance.client.errors import ProblemError, UnexpectedResponseError, problem_error
from clearance.client.models import Turn

#: A bearer token, or a function returning a current one (asked before every request, so an msal
#: ``acquire_token_silent`` wrapper can refresh it); None sends no token (health checks only).
TokenSource = str | Callable[[], str] | None
M = TypeVar("M", bound=BaseModel)

# Answers from a local model take seconds; a stream is pinged by the server every 15 s.
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
# An error body is a small problem+json document; one that is not is not read past this.
MAX_ERROR_BODY_BYTES = 64 * 1024
SSE_HEADERS = {"Accept": "text/event-stream", "Cache-Control": "no-store"}


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    body: dict[str, Any] | None = None
    params: dict[str, str | int] = field(default_factory=dict)


def search_call(query: str, top_k: int) -> Call:
    return Call("POST", "/v1/search", {"query": query, "top_k": top_k})


def chat_call(question: str, history: Sequence[Turn], *, stream: bool) -> Call:
    turns = [Turn.model_validate(turn).model_dump() for turn in history]
    return Call("POST", "/v1/chat", {"question": question, "history": turns, "stream": stream})


def me_call() -> Call:
    return Call("GET", "/v1/me")


def start_job_call(path: str) -> Call:
    return Call("POST", "/v1/ingest/jobs", {"path": path})


def list_jobs_call(limit: int) -> Call:
    return Call("GET", "/v1/ingest/jobs", params={"limit": limit})


def get_job_call(job_id: str) -> Call:
    # Quoted whole: an id holding "/" or ".." must name a job, never reach another route.
    return Call("GET", f"/v1/ingest/jobs/{quote(job_id, safe='')}")


class BearerToken(httpx.Auth):
    """Puts the caller's own token on each request. Its repr never shows the token."""

    def __init__(self, token: TokenSource) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._token() if callable(self._token) else self._token
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def __repr__(self) -> str:
        return "BearerToken(<hidden>)"


def checked_base_url(base_url: str, *, allow_insecure_http: bool) -> httpx.URL:
    """The API's URL; plain http only to loopback unless asked, because the token would travel in clear."""
    url = httpx.URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an http(s) URL with a host, got {base_url!r}")
    if url.scheme == "http" and not allow_insecure_http and not _is_loopback(url.host):
        raise ValueError(
            "refusing to send bearer tokens over plain http to a non-loopback host; "
            "use https, or pass allow_insecure_http=True on a network you trust"
        )
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def client_options(*, base_url: httpx.URL, token: TokenSource) -> dict[str, Any]:
    """Options both httpx clients share. Redirects are not followed: a token goes only where it was sent."""
    return {
        "base_url": base_url,
        "auth": BearerToken(token),
        "follow_redirects": False,
        "headers": {"User-Agent": f"clearance-client/{__version__}", "Accept": "application/json"},
    }


def parsed(response: httpx.Response, model: type[M]) -> M:
    """The response body as ``model``; the typed error for an error status."""
    if response.is_error:
        raise error_for(response, response.content)
    try:
        return model.model_validate_json(response.content)
    except ValidationError:
        raise UnexpectedResponseError(
            f"{response.request.method} {response.request.url.path} answered {response.status_code} "
            f"with a body that is not a {model.__name__}"
        ) from None


def error_for(response: httpx.Response, body: bytes) -> ProblemError:
    return problem_error(response.status_code, body[:MAX_ERROR_BODY_BYTES], response.reason_phrase)
