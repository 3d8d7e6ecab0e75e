"""Search and chat for employees: every result is trimmed to what the caller may open."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Generator

from anyio import to_thread
from fastapi import APIRouter
from sse_starlette import EventSourceResponse, ServerSentEvent

from acl.principal import Principal
from api.deps import Answers, CurrentPrincipal
from api.schemas import AccessOut, ChatRequest, ChatResponse, MeResponse, SearchHit, SearchRequest, SearchResponse
from core.cancel import Cancellation
from core.errors import ClearanceError
from retrieval.records import AnswerEvent, ReplaceEvent, ResultEvent, TokenEvent

log = logging.getLogger(__name__)
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
        "`citations`, then `done` (outcome, generator, prompt, timings). Closing the connection stops "
        "generation."
    ),
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat(body: ChatRequest, principal: CurrentPrincipal, answers: Answers) -> ChatResponse | EventSourceResponse:
    history = [(turn.role.value, turn.content) for turn in body.history]
    if not body.stream:
        result = await to_thread.run_sync(lambda: answers.answer(principal, body.question, history=history))
        return ChatResponse.of(result, principal)
    cancel = Cancellation()
    events = answers.stream(principal, body.question, history=history, cancel=cancel)
    return EventSourceResponse(
        _sse_events(events, cancel, principal),
        headers={"Cache-Control": "no-store"},
        sep="\n",
        send_timeout=30,
        ping=15,
    )


def _next_event(events: Generator[AnswerEvent, None, None]) -> AnswerEvent | None:
    return next(events, None)


async def _sse_events(
    events: Generator[AnswerEvent, None, None], cancel: Cancellation, principal: Principal
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
            event = await to_thread.run_sync(_next_event, events, abandon_on_cancel=True)
            if event is None:
                return
            for sse in _encode(event, principal):
                yield sse
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


def _encode(event: AnswerEvent, principal: Principal) -> list[ServerSentEvent]:
    match event:
        case TokenEvent(text=text):
            return [_sse("token", {"text": text})]
        case ReplaceEvent(answer=answer):
            return [_sse("replace", {"answer": answer})]
        case ResultEvent(result=result):
            response = ChatResponse.of(result, principal)
            return [
                _sse("citations", {"citations": [c.model_dump() for c in response.citations]}),
                _sse("done", response.model_dump(mode="json", exclude={"citations"})),
            ]


def _sse(event: str, data: object) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(data, ensure_ascii=False), event=event)
