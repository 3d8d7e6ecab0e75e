"""Search and chat for employees: every result is trimmed to what the caller may open."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from api.auth import CurrentPrincipal, RuntimeDep
from api.schemas import ChatRequest, ChatResponse, CitationOut, MeResponse, SearchHit, SearchRequest, SearchResponse
from clearance.errors import ClearanceError
from retrieval.answer import AnswerResult, snippet

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
    )


@router.post("/search", response_model=SearchResponse, summary="Passages you may read, nearest first")
def search(body: SearchRequest, principal: CurrentPrincipal, runtime: RuntimeDep) -> SearchResponse:
    passages = runtime.answers.search(principal, body.query, top_k=body.top_k)
    return SearchResponse(
        results=[
            SearchHit(
                chunk_id=p.chunk_id,
                source=p.source,
                title=p.title,
                section=p.section,
                page=p.page,
                snippet=snippet(p.text),
                score=round(p.score, 4),
            )
            for p in passages
        ]
    )


def _response(result: AnswerResult) -> ChatResponse:
    return ChatResponse(
        answer=result.answer,
        citations=[CitationOut(**c.to_dict()) for c in result.citations],
        outcome=result.outcome.value,
        generator=result.generator,
        prompt=result.prompt,
        timings_ms=result.timings_ms,
    )


@router.post(
    "/chat",
    response_model=ChatResponse,
    summary="A cited answer from documents you may read",
    description=(
        "With `stream: true` the response is `text/event-stream`: `token` events with text as it is "
        "generated, an optional `replace` event carrying the checked answer when it differs, then "
        "`citations`, then `done` (outcome, generator, prompt, timings)."
    ),
    responses={200: {"content": {"text/event-stream": {}}}},
)
def chat(body: ChatRequest, principal: CurrentPrincipal, runtime: RuntimeDep) -> ChatResponse | StreamingResponse:
    history = [(turn.role.value, turn.content) for turn in body.history]
    if not body.stream:
        return _response(runtime.answers.answer(principal, body.question, history=history))

    def events() -> Iterator[str]:
        try:
            for event, payload in runtime.answers.stream(principal, body.question, history=history):
                if event == "token":
                    yield _sse("token", {"text": payload})
                elif event == "replace":
                    yield _sse("replace", {"answer": payload})
                elif event == "result":
                    response = _response(payload)
                    yield _sse("citations", {"citations": [c.model_dump() for c in response.citations]})
                    yield _sse("done", response.model_dump(exclude={"citations"}))
        except ClearanceError as exc:
            log.warning("streamed answer failed: %s", type(exc).__name__)
            yield _sse("error", {"title": "The answer could not be completed"})
        except Exception:
            log.exception("streamed answer failed")
            yield _sse("error", {"title": "The answer could not be completed"})

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


def _sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
