"""The blocking client: ``Client(base_url, token=...)``, then search, chat, chat streaming and jobs."""

from __future__ import annotations

import builtins
import ssl
import time
import weakref
from collections.abc import Generator, Iterator, Sequence
from types import TracebackType
from typing import TypeVar

import httpx
from httpx_sse import EventSource, SSEError
from pydantic import BaseModel

from clearance.client import _http
from clearance.client._http import DEFAULT_TIMEOUT, Call, TokenSource
from clearance.client.errors import AnswerStreamError, TransportError, UnexpectedResponseError
from clearance.client.events import ChatEvent, DoneEvent, StreamedAnswer, decode_event
from clearance.client.models import ChatResponse, Job, JobList, Me, SearchResponse, Turn

M = TypeVar("M", bound=BaseModel)


class Client:
    """A Clearance API client acting as one caller: every request carries that caller's token.

    ``token`` is the caller's own Entra ID access token for the API (or a
    function returning a fresh one); the server trims every result to what
    that caller may read. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: TokenSource,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        verify: ssl.SSLContext | str | bool = True,
        transport: httpx.BaseTransport | None = None,
        allow_insecure_http: bool = False,
    ) -> None:
        url = _http.checked_base_url(base_url, allow_insecure_http=allow_insecure_http)
        self._http = httpx.Client(
            **_http.client_options(base_url=url, token=token), timeout=timeout, verify=verify, transport=transport
        )
        self.jobs = Jobs(self)

    def search(self, query: str, *, top_k: int = 5) -> SearchResponse:
        """Passages the caller may read, nearest first."""
        return self._send(_http.search_call(query, top_k), SearchResponse)

    def chat(self, question: str, *, history: Sequence[Turn] = ()) -> ChatResponse:
        """A cited answer built only from passages the caller may read."""
        return self._send(_http.chat_call(question, history, stream=False), ChatResponse)

    def chat_stream(self, question: str, *, history: Sequence[Turn] = ()) -> ChatStream:
        """The answer as typed events. The request is sent now, so a refusal (401, 422, ...) raises here.

        Iterate the returned :class:`ChatStream` inside ``with``; leaving early
        closes the connection, which stops generation on the server.
        """
        call = _http.chat_call(question, history, stream=True)
        request = self._http.build_request(call.method, call.path, json=call.body, headers=_http.SSE_HEADERS)
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise TransportError(f"{call.method} {call.path} failed: {type(exc).__name__}") from exc
        if response.is_error:
            try:
                body = _read_bounded(response)
            finally:
                response.close()
            raise _http.error_for(response, body)
        return ChatStream(response)

    def me(self) -> Me:
        """Who the token says the caller is."""
        return self._send(_http.me_call(), Me)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _send(self, call: Call, model: type[M]) -> M:
        try:
            response = self._http.request(call.method, call.path, json=call.body, params=call.params or None)
        except httpx.TransportError as exc:
            raise TransportError(f"{call.method} {call.path} failed: {type(exc).__name__}") from exc
        return _http.parsed(response, model)


class Jobs:
    """Ingestion jobs of the caller's tenant (the admin role is required: others get ForbiddenError)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def start(self, path: str) -> Job:
        """Starts ingesting a folder on the server (under a root the tenant may ingest); returns the queued job."""
        return self._client._send(_http.start_job_call(path), Job)

    def list(self, *, limit: int = 20) -> builtins.list[Job]:
        """Recent jobs, newest first."""
        return list(self._client._send(_http.list_jobs_call(limit), JobList).jobs)

    def get(self, job_id: str) -> Job:
        return self._client._send(_http.get_job_call(job_id), Job)

    def wait(self, job_id: str, *, timeout: float = 300.0, interval: float = 0.5) -> Job:
        """Polls until the job has finished; TimeoutError when it has not after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job.finished:
                return job
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
        raise TimeoutError(f"job {job_id} has not finished after {timeout} s")


class ChatStream(Iterator[ChatEvent]):
    """The events of one streamed answer, in order; the connection closes after ``done``, on error or on close().

    A stream dropped before its end is closed as soon as it is no longer
    referenced, read or not; ``with`` (or :meth:`close`) says when.
    """

    def __init__(self, response: httpx.Response) -> None:
        self._answer = StreamedAnswer()
        # The event generator holds the response, never this object: no reference cycle, so dropping
        # the stream frees (and closes) it at once rather than at the next garbage collection.
        self._events = _events(response, self._answer)
        self._closer = weakref.finalize(self, response.close)

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> ChatEvent:
        return next(self._events)

    def collect(self) -> ChatResponse:
        """Reads the rest of the stream; the answer as ``chat`` would have returned it."""
        for _ in self:
            pass
        return self._answer.response()

    def close(self) -> None:
        """Closes the connection, whatever has been read: the server stops generating."""
        self._events.close()
        self._closer()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _events(response: httpx.Response, answer: StreamedAnswer) -> Generator[ChatEvent, None, None]:
    try:
        for message in EventSource(response).iter_sse():
            event = decode_event(message.event, message.data)
            if event is None:
                continue
            answer.add(event)
            yield event
            if isinstance(event, DoneEvent):
                return
    except SSEError as exc:
        raise UnexpectedResponseError("the chat stream is not text/event-stream") from exc
    except httpx.TransportError as exc:
        raise TransportError(f"the answer stream broke: {type(exc).__name__}") from exc
    finally:
        response.close()
    raise AnswerStreamError("the answer stream ended before its done event")


def _read_bounded(response: httpx.Response) -> bytes:
    body = b""
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) >= _http.MAX_ERROR_BODY_BYTES:
            break
    return body
