"""Request bounds that hold before any route code runs: token first, then a bounded body.

FastAPI reads and parses a request body before it resolves a route's
dependencies, so without this a client with no token could make the server
read (and keep in memory) any amount of data. This ASGI middleware:

* answers 401 for ``/v1/`` requests without a valid bearer token before a
  single body byte is read; the principal it validated is handed to the route
  through the request scope, so the token is checked once;
* refuses a declared ``Content-Length`` above ``max_body_bytes`` with 413 at
  once, and a streamed (chunked) body as soon as it grows past the limit;
* refuses a body that is not fully received within ``body_timeout_seconds``
  with 408, so half-sent requests do not hold a worker.

Header size is bounded by the server (uvicorn's ``h11_max_incomplete_event_size``,
set by ``clearance serve``); a slow sender of headers is a reverse proxy's job
(see the README's production notes).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import anyio
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from acl.principal import Principal
from api.openai_errors import is_openai_path, openai_error_body
from core.errors import AuthenticationError

log = logging.getLogger(__name__)
PRINCIPAL_SCOPE_KEY = "clearance.principal"
NARROWED_HEADER = b"x-clearance-access-narrowed"
_PROTECTED_PREFIX = "/v1/"


class _BodyRefused(HTTPException):
    """Raised from ``receive``; FastAPI passes HTTP exceptions through to the problem+json handler."""


class RequestLimits:
    """Token first, bounded body, bounded body time: for every HTTP request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticate: Callable[[str], Principal],
        max_body_bytes: int,
        body_timeout_seconds: float,
    ) -> None:
        self._app = app
        self._authenticate = authenticate
        self._max_body = max_body_bytes
        self._body_timeout = body_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope.get("headers", [])}
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _problem(send, 400, "Bad Request", path=scope["path"])
                return
            if int(declared) > self._max_body:
                await _problem(send, 413, "Content Too Large", path=scope["path"])
                return
        if scope["path"].startswith(_PROTECTED_PREFIX):
            principal = await self._principal(headers.get(b"authorization"))
            if principal is None:
                await _problem(send, 401, "Unauthorized", path=scope["path"])
                return
            scope.setdefault("state", {})[PRINCIPAL_SCOPE_KEY] = principal
        await self._with_bounded_body(scope, receive, send)

    async def _principal(self, header: bytes | None) -> Principal | None:
        if not header:
            return None
        scheme, _, token = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            # Validation may fetch signing keys or resolve groups over the network: off the event loop.
            return await anyio.to_thread.run_sync(self._authenticate, token.strip())
        except AuthenticationError as exc:
            log.info("request refused before its body was read: %s", type(exc).__name__)
            return None

    async def _with_bounded_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        body_complete = False
        response_started = False

        async def bounded_receive() -> Message:
            nonlocal received, body_complete
            if body_complete:
                # After the body, receive() waits for a disconnect (streaming): no timeout there.
                return await receive()
            try:
                with anyio.fail_after(self._body_timeout):
                    message = await receive()
            except TimeoutError:
                raise _BodyRefused(408) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max_body:
                    raise _BodyRefused(413)
                body_complete = not message.get("more_body", False)
            return message

        principal = scope.get("state", {}).get(PRINCIPAL_SCOPE_KEY)
        narrowed = ",".join(principal.narrowing_reasons) if isinstance(principal, Principal) else ""

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                if narrowed:  # every channel says when a caller's access was narrowed
                    message = {
                        **message,
                        "headers": [*message.get("headers", []), (NARROWED_HEADER, narrowed.encode())],
                    }
            await send(message)

        try:
            await self._app(scope, bounded_receive, tracking_send)
        except _BodyRefused as exc:
            if not response_started:
                await _problem(send, exc.status_code, _TITLES[exc.status_code], path=scope["path"])


_TITLES = {408: "Request Timeout", 413: "Content Too Large"}


async def _problem(send: Send, status: int, title: str, *, path: str) -> None:
    problem = {"type": "about:blank", "title": title, "status": status}
    # OpenAI's clients read their own `error` member: the OpenAI-compatible routes add it.
    body = json.dumps(openai_error_body(status, title) if is_openai_path(path) else problem).encode()
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer error="invalid_token"'))
    if status in (408, 413, 400):
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
