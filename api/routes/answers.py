"""Search and chat for employees: every result is trimmed to what the caller may open."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable, Generator

import anyio
from anyio import to_thread
from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from acl.principal import Principal
from api import chat_history
from api.deps import Answers, CurrentPrincipal, MaybeConversations, components_of
from api.schemas import (
    AccessOut,
    ChatRequest,
    ChatResponse,
    CitationOut,
    MeResponse,
    SearchHit,
    SearchRequest,
    SearchResponse,
)
from core.cancel import Cancellation
from core.errors import ClearanceError, ModelBusyError
from retrieval.records import (
    AnswerEvent,
    AnswerOutcome,
    AnswerResult,
    QueuedEvent,
    ReplaceEvent,
    ResultEvent,
    RetrievedEvent,
    TokenEvent,
)

log = logging.getLogger(__name__)
_DISCONNECT_POLL_SECONDS = 0.25
router = APIRouter(prefix="/v1", tags=["answers"])


@router.get("/me", response_model=MeResponse, summary="Who the token says you are")
def me(principal: CurrentPrincipal) -> MeResponse:
    return MeResponse(
        tenant_id=principal.tenant_id,
        object_id=principal.object_id,
        name=principal.name,
        groups=len(principal.groups),
        groups_complete=principal.groups_complete,
        roles=sorted(principal.roles),
        guest=principal.guest,
        access=AccessOut.of(principal),
    )


@router.post("/search", response_model=SearchResponse, summary="Passages you may read, nearest first")
def search(body: SearchRequest, principal: CurrentPrincipal, answers: Answers) -> SearchResponse:
    passages = answers.search(principal, body.query, top_k=body.top_k)
    return SearchResponse(results=[SearchHit.of(p) for p in passages], access=AccessOut.of(principal))


@router.post(
    "/chat",
    response_model=ChatResponse,
    summary="A cited answer from documents you may read",
    description=(
        "With `stream: true` the response is `text/event-stream`: `token` events with text as it is "
        "generated, an optional `replace` event carrying the checked answer when it differs, then "
        "`citations`, then `done` (outcome, generator, prompt, timings, conversation_id). Closing the "
        "connection stops generation; an answer abandoned that way is not kept in the conversation. "
        "With `progress: true`, `progress` events come first (`reading` with the passage count, then "
        "`queued` with the place in the model's line, 1 = next, 0 = its turn) and a `sources` event "
        "lists the passages the model reads, shaped like citations. When the model's line is full the "
        "answer is 503 with `Retry-After`; a stream that waits past the bound ends with an `error` event "
        "carrying `status: 503` and `retry_after`."
    ),
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat(
    body: ChatRequest,
    principal: CurrentPrincipal,
    answers: Answers,
    conversations: MaybeConversations,
    request: Request,
) -> ChatResponse | EventSourceResponse:
    answers.ensure_room()  # a full line for the model is a 503 with Retry-After, before anything is stored
    readable = chat_history.readable_now(components_of(request).documents, principal)
    exchange = await to_thread.run_sync(
        functools.partial(chat_history.begin, conversations, principal, body, readable=readable)
    )
    history = list(exchange.history)
    keep = functools.partial(chat_history.finish, conversations, exchange, body.question)
    if not body.stream:
        cancel = Cancellation()
        result = await _unless_client_leaves(
            request, cancel, lambda: answers.answer(principal, body.question, history=history, cancel=cancel)
        )
        # Nobody reads an abandoned answer (the client left): it is audited, never kept in the conversation.
        kept = None if result.outcome is AnswerOutcome.ABANDONED else await to_thread.run_sync(keep, result)
        return ChatResponse.of(result, principal, conversation_id=kept)
    cancel = Cancellation()
    events = answers.stream(principal, body.question, history=history, cancel=cancel, progress=body.progress)
    return EventSourceResponse(
        _sse_events(events, cancel, principal, keep),
        headers={"Cache-Control": "no-store"},
        sep="\n",
        send_timeout=30,
        ping=15,
    )


async def _unless_client_leaves(
    request: Request, cancel: Cancellation, work: Callable[[], AnswerResult]
) -> AnswerResult:
    """``work`` in a worker thread; when the client disconnects meanwhile, ``cancel`` is set.

    A plain answer has no stream whose closing tells the server the client left;
    this watches the connection instead, so a request waiting for the model
    leaves the line and a model writing for nobody stops.
    """
    async with anyio.create_task_group() as watchers:

        async def watch() -> None:
            while not cancel.cancelled:
                if await request.is_disconnected():
                    cancel.cancel()
                    return
                await anyio.sleep(_DISCONNECT_POLL_SECONDS)

        watchers.start_soon(watch)
        try:
            result = await to_thread.run_sync(work)
        finally:
            watchers.cancel_scope.cancel()
    return result


def _next_event(events: Generator[AnswerEvent, None, None], cancel: Cancellation) -> AnswerEvent | None:
    """The stream's next event, read in a worker thread; None at its end or once the client has left.

    When the client leaves while this thread is inside ``next()``, the response
    abandons it and cannot close the generator (it is running). The thread
    closes it itself on its way out, so a suspended generator never keeps the
    model's lock until garbage collection.
    """
    event = next(events, None)
    if cancel.cancelled:
        with contextlib.suppress(ValueError):  # the response's own close() may be running right now
            events.close()
        return None
    return event


async def _sse_events(
    events: Generator[AnswerEvent, None, None],
    cancel: Cancellation,
    principal: Principal,
    keep: Callable[[AnswerResult], str | None],
) -> AsyncIterator[ServerSentEvent]:
    """Runs the blocking answer stream in a worker thread, one event at a time.

    When the client goes away the response cancels this generator; ``finally``
    then sets the cancellation flag (the model stops at its next token and
    releases its lock) and closes the stream.
    """
    try:
        while True:
            # abandon_on_cancel: when the client leaves while the model is still writing a sentence,
            # this await ends at once; `finally` then sets the flag the generator checks per token.
            event = await to_thread.run_sync(_next_event, events, cancel, abandon_on_cancel=True)
            if event is None:
                return
            # Only a complete answer is kept: a client that left never reaches its result event.
            kept = await to_thread.run_sync(keep, event.result) if isinstance(event, ResultEvent) else None
            for sse in _encode(event, principal, kept):
                yield sse
    except ModelBusyError as exc:
        # The response has started (200): the wait bound is told in the stream, as a problem would tell it.
        log.info("streamed answer refused: the model's line did not move within its bound")
        yield _sse("error", {"title": "Model Busy", "status": 503, "detail": str(exc), "retry_after": exc.retry_after})
    except ClearanceError as exc:
        log.warning("streamed answer failed: %s", type(exc).__name__)
        yield _sse("error", {"title": "The answer could not be completed"})
    except Exception:
        log.exception("streamed answer failed")
        yield _sse("error", {"title": "The answer could not be completed"})
    finally:
        cancel.cancel()
        # A generator suspended inside the model's lock releases it on close; one still running in its
        # thread cannot be closed (ValueError), and the flag stops it at its next token instead.
        with contextlib.suppress(ValueError):
            events.close()


def _encode(event: AnswerEvent, principal: Principal, conversation_id: str | None = None) -> list[ServerSentEvent]:
    match event:
        case TokenEvent(text=text):
            return [_sse("token", {"text": text})]
        case ReplaceEvent(answer=answer):
            return [_sse("replace", {"answer": answer})]
        case RetrievedEvent(passages=count, sources=sources):
            progress = _sse("progress", {"stage": "reading", "passages": count})
            if not sources:
                return [progress]
            # The passages the model reads, as their citations would show them: shown while it reads.
            shown = [CitationOut.model_validate(source).model_dump() for source in sources]
            return [progress, _sse("sources", {"sources": shown})]
        case QueuedEvent(position=position):
            return [_sse("progress", {"stage": "queued", "position": position})]
        case ResultEvent(result=result):
            response = ChatResponse.of(result, principal, conversation_id=conversation_id)
            return [
                _sse("citations", {"citations": [c.model_dump() for c in response.citations]}),
                _sse("done", response.model_dump(mode="json", exclude={"citations"})),
            ]


def _sse(event: str, data: object) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(data, ensure_ascii=False), event=event)
