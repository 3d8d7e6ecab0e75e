"""The asyncio client: the same calls as :class:`clearance.client.Client`, awaited."""

from __future__ import annotations

import asyncio
import builtins
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
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


class AsyncClient:
    """An asyncio Clearance API client acting as one caller (see :class:`clearance.client.Client`).

    A ``token`` function is called on the event loop before each request: it
    should return a cached token (msal's ``acquire_token_silent`` does) rather
    than block on the network.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: TokenSource,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        verify: ssl.SSLContext | str | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        allow_insecure_http: bool = False,
    ) -> None:
        url = _http.checked_base_url(base_url, allow_insecure_http=allow_insecure_http)
        self._http = httpx.AsyncClient(
            **_http.client_options(base_url=url, token=token), timeout=timeout, verify=verify, transport=transport
        )
        self.jobs = AsyncJobs(self)

    async def search(self, query: str, *, top_k: int = 5) -> SearchResponse:
        """Passages the caller may read, nearest first."""
        return await self._send(_http.search_call(query, top_k), SearchResponse)

    async def chat(self, question: str, *, history: Sequence[Turn] = ()) -> ChatResponse:
        """A cited answer built only from passages the caller may read."""
        return await self._send(_http.chat_call(question, history, stream=False), ChatResponse)

    async def chat_stream(self, question: str, *, history: Sequence[Turn] = ()) -> AsyncChatStream:
        """The answer as typed events; a refusal raises here. Iterate it in ``async with``."""
        call = _http.chat_call(question, history, stream=True)
        request = self._http.build_request(call.method, call.path, json=call.body, headers=_http.SSE_HEADERS)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise TransportError(f"{call.method} {call.path} failed: {type(exc).__name__}") from exc
        if response.is_error:
            try:
                body = await _read_bounded(response)
            finally:
                await response.aclose()
            raise _http.error_for(response, body)
        return AsyncChatStream(response)

    async def me(self) -> Me:
        return await self._send(_http.me_call(), Me)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _send(self, call: Call, model: type[M]) -> M:
        try:
            response = await self._http.request(call.method, call.path, json=call.body, params=call.params or None)
        except httpx.TransportError as exc:
            raise TransportError(f"{call.method} {call.path} failed: {type(exc).__name__}") from exc
        return _http.parsed(response, model)


class AsyncJobs:
    """Ingestion jobs of the caller's tenant (admin role required)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def start(self, path: str) -> Job:
        return await self._client._send(_http.start_job_call(path), Job)

    async def list(self, *, limit: int = 20) -> builtins.list[Job]:
        return list((await self._client._send(_http.list_jobs_call(limit), JobList)).jobs)

    async def get(self, job_id: str) -> Job:
        return await self._client._send(_http.get_job_call(job_id), Job)

    async def wait(self, job_id: str, *, timeout: float = 300.0, interval: float = 0.5) -> Job:
        """Polls until the job has finished; TimeoutError when it has not after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            job = await self.get(job_id)
            if job.finished:
                return job
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(interval)
        raise TimeoutError(f"job {job_id} has not finished after {timeout} s")


class AsyncChatStream(AsyncIterator[ChatEvent]):
    """The events of one streamed answer, in order. Use ``async with`` (or ``aclose()``): a stream
    dropped unfinished is closed only when the event loop finalizes it, and one never iterated not at all."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._answer = StreamedAnswer()
        self._events = _events(response, self._answer)  # holds the response, never this object

    def __aiter__(self) -> AsyncChatStream:
        return self

    async def __anext__(self) -> ChatEvent:
        return await anext(self._events)

    async def collect(self) -> ChatResponse:
        """Reads the rest of the stream; the answer as ``chat`` would have returned it."""
        async for _ in self:
            pass
        return self._answer.response()

    async def aclose(self) -> None:
        """Closes the connection, whatever has been read: the server stops generating."""
        await self._events.aclose()
        await self._response.aclose()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


async def _events(response: httpx.Response, answer: StreamedAnswer) -> AsyncGenerator[ChatEvent, None]:
    try:
        async for message in EventSource(response).aiter_sse():
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
        await response.aclose()
    raise AnswerStreamError("the answer stream ended before its done event")


async def _read_bounded(response: httpx.Response) -> bytes:
    body = b""
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= _http.MAX_ERROR_BODY_BYTES:
            break
    return body
