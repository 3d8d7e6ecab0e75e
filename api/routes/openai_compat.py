"""OpenAI-compatible chat: `POST /v1/chat/completions` and `GET /v1/models` for existing SDKs and chat front ends.

The caller's Entra ID token is the bearer (what OpenAI's clients call the API
key), so every answer is trimmed to what that person may read, exactly as on
`/v1/chat`. The answer text carries the same `[n]` markers; the cited passages
are the extension field `citations`, and `clearance` holds the answer id (its
audit record's), the outcome and whether the caller's access was narrowed.

System (and developer) messages are ignored: the product's prompt is governed
(versioned, evaluated, audited), so a client cannot replace it; the response
says how many were ignored. The last message must be the user's question;
earlier user and assistant messages are the history.

Streaming sends only sentences that passed the citation check, as they pass.
When the answer that stands differs from what was sent (the model's answer
failed the check and was replaced, or the service abstained), an OpenAI stream
cannot take text back: the last content delta then says so in words and carries
the checked answer, and the final chunk's ``clearance.replaced`` is true with
``clearance.answer`` the whole answer that stands. A client that shows deltas
shows the correction; a client that reads the extension replaces the text.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from typing import Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.exceptions import HTTPException as StarletteHTTPException

from acl.principal import Principal
from api.deps import Answers, CurrentPrincipal
from api.openai_errors import openai_error, openai_error_body
from api.problems import status_for
from api.schemas import AccessOut, CitationOut
from core.cancel import Cancellation
from core.errors import ClearanceError
from retrieval.records import AnswerEvent, AnswerResult, ReplaceEvent, ResultEvent, TokenEvent

log = logging.getLogger(__name__)

MODEL_ID = "clearance"
MAX_QUESTION_CHARS = 2000  # as /v1/chat
MAX_TURN_CHARS = 8000
MAX_MESSAGES = 200
HISTORY_TURNS = 20  # the most recent turns are used; a long conversation is not refused
REPLACED_NOTICE = "(Correction: the text above did not pass the citation check and is replaced by this answer.)"
STREAM_FAILED = "The answer could not be completed"


class OpenAIErrorRoute(APIRoute):
    """Answers failures of these routes (authentication, validation, domain errors) in OpenAI's error shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def in_openai_shape(request: Request) -> Response:
            try:
                return await handler(request)
            except ClearanceError as exc:
                status, title = status_for(exc)
                log.info("openai-compatible request failed: %s (%s)", status, type(exc).__name__)
                return openai_error(status, title, message=str(exc) if exc.public else None)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                # The field and the rule, never the offending input.
                where = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
                message = f"{where}: {first.get('msg', 'invalid')}" if where else None
                return openai_error(422, "Unprocessable Content", message=message, param=where)
            except StarletteHTTPException as exc:
                return openai_error(exc.status_code, _HTTP_TITLES.get(exc.status_code, "Error"))

        return in_openai_shape


# Completions are answers (included behind the audit check); the model list is not.
_HTTP_TITLES = {408: "Request Timeout", 413: "Content Too Large"}  # what the body limits raise while it is read

router = APIRouter(prefix="/v1", tags=["openai-compatible"], route_class=OpenAIErrorRoute)
models_router = APIRouter(prefix="/v1", tags=["openai-compatible"], route_class=OpenAIErrorRoute)


# -- request ----------------------------------------------------------------------------------------


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str = Field(max_length=MAX_TURN_CHARS)


class Message(BaseModel):
    # Clients send back whole assistant messages (refusal, annotations, ...): fields we do not use are ignored.
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(part.text for part in self.content)
        return self.content or ""

    @model_validator(mode="after")
    def _bounded(self) -> Message:
        if len(self.text) > MAX_TURN_CHARS:
            raise ValueError(f"a message has at most {MAX_TURN_CHARS} characters")
        return self


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat request. Sampling parameters are accepted and ignored (the generator is configured on
    the server); what Clearance cannot honour (tools, several choices, JSON output) is refused."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(default=MODEL_ID, min_length=1, max_length=200)
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    n: int = Field(default=1, ge=1, le=1, description="one choice only")
    tools: list[Any] | None = Field(default=None, max_length=0, description="not supported: must be empty")
    functions: list[Any] | None = Field(default=None, max_length=0, description="not supported: must be empty")
    response_format: dict[str, Any] | None = None

    @field_validator("response_format")
    @classmethod
    def _text_only(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and value.get("type") != "text":
            raise ValueError("only text responses are supported")
        return value

    @field_validator("messages")
    @classmethod
    def _ends_with_a_question(cls, messages: list[Message]) -> list[Message]:
        last = messages[-1]
        if last.role != "user" or not last.text.strip():
            raise ValueError("the last message must be the user's question")
        if len(last.text) > MAX_QUESTION_CHARS:
            raise ValueError(f"the question has at most {MAX_QUESTION_CHARS} characters")
        return messages

    @property
    def question(self) -> str:
        return self.messages[-1].text

    @property
    def history(self) -> list[tuple[str, str]]:
        turns = [(str(m.role), m.text) for m in self.messages[:-1] if m.role in ("user", "assistant")]
        return turns[-HISTORY_TURNS:]

    @property
    def ignored_system_messages(self) -> int:
        return sum(1 for m in self.messages if m.role in ("system", "developer"))


# -- response ---------------------------------------------------------------------------------------


class ClearanceInfo(BaseModel):
    """The extension every completion carries: what Clearance decided about this answer."""

    answer_id: str = Field(description="the answer's id, also its audit record's")
    outcome: str = Field(description="grounded, extractive_fallback or abstained")
    generator: str
    prompt: str
    access: AccessOut
    ignored_system_messages: int = Field(description="system and developer messages are not used")
    replaced: bool = Field(default=False, description="streaming: the text sent was replaced by `answer`")
    answer: str | None = Field(default=None, description="streaming: the whole answer that stands")


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    citations: list[CitationOut] = Field(description="the passages the answer's [n] markers refer to")
    clearance: ClearanceInfo


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "clearance"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def _info(result: AnswerResult, principal: Principal, body: ChatCompletionRequest) -> ClearanceInfo:
    return ClearanceInfo(
        answer_id=result.id,
        outcome=result.outcome.value,
        generator=result.generator,
        prompt=result.prompt,
        access=AccessOut.of(principal),
        ignored_system_messages=body.ignored_system_messages,
    )


def _citations(result: AnswerResult) -> list[CitationOut]:
    return [CitationOut.model_validate(c) for c in result.citations]


# -- routes -----------------------------------------------------------------------------------------


@models_router.get("/models", response_model=ModelList, summary="The one model this endpoint answers as")
def models(principal: CurrentPrincipal) -> ModelList:  # any authenticated caller
    return ModelList(data=[ModelCard(id=MODEL_ID)])


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    summary="OpenAI-compatible chat: a cited answer from documents you may read",
    description=__doc__,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(
    body: ChatCompletionRequest, principal: CurrentPrincipal, answers: Answers
) -> ChatCompletion | EventSourceResponse:
    if not body.stream:
        result = await to_thread.run_sync(lambda: answers.answer(principal, body.question, history=body.history))
        return ChatCompletion(
            id=f"chatcmpl-{result.id}",
            created=int(time.time()),
            model=body.model,
            choices=[Choice(message=AssistantMessage(content=result.answer))],
            citations=_citations(result),
            clearance=_info(result, principal, body),
        )
    answers.ensure_room()  # a full line for the model is a 503 with Retry-After, before the stream starts
    cancel = Cancellation()
    events = answers.stream(principal, body.question, history=body.history, cancel=cancel)
    chunks = _Chunks(completion_id=f"chatcmpl-{uuid.uuid4().hex}", model=body.model)
    return EventSourceResponse(
        _stream(events, cancel, chunks, principal, body),
        headers={"Cache-Control": "no-store"},
        sep="\n",
        send_timeout=30,
        ping=15,
    )


class _Chunks:
    """chat.completion.chunk objects of one stream: one id, one creation time."""

    def __init__(self, *, completion_id: str, model: str) -> None:
        self._id = completion_id
        self._model = model
        self._created = int(time.time())

    def chunk(self, delta: dict[str, str], *, finish: str | None = None, **extension: Any) -> ServerSentEvent:
        data: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extension,
        }
        return ServerSentEvent(data=json.dumps(data, ensure_ascii=False))


def _next_event(events: Generator[AnswerEvent, None, None]) -> AnswerEvent | None:
    return next(events, None)


async def _stream(
    events: Generator[AnswerEvent, None, None],
    cancel: Cancellation,
    chunks: _Chunks,
    principal: Principal,
    body: ChatCompletionRequest,
) -> AsyncIterator[ServerSentEvent]:
    """The answer stream as OpenAI chunks, run one event at a time in a worker thread.

    When the client leaves, the response cancels this generator; ``finally``
    sets the flag the model checks at every token and closes the stream, as
    `/v1/chat` does.
    """
    shown = ""
    replaced = False
    try:
        yield chunks.chunk({"role": "assistant", "content": ""})
        while True:
            event = await to_thread.run_sync(_next_event, events, abandon_on_cancel=True)
            match event:
                case None:
                    return
                case TokenEvent(text=text):
                    shown += text
                    yield chunks.chunk({"content": text})
                case ReplaceEvent(answer=answer):
                    # Deltas only append: say in the text itself that what was shown is superseded.
                    replaced = bool(shown)
                    yield chunks.chunk({"content": f"\n\n{REPLACED_NOTICE}\n\n{answer}" if shown else answer})
                case ResultEvent(result=result):
                    info = _info(result, principal, body).model_copy(
                        update={"replaced": replaced, "answer": result.answer}
                    )
                    yield chunks.chunk(
                        {},
                        finish="stop",
                        citations=[c.model_dump() for c in _citations(result)],
                        clearance=info.model_dump(mode="json"),
                    )
                    yield ServerSentEvent(data="[DONE]")
    except ClearanceError as exc:
        log.warning("streamed openai-compatible answer failed: %s", type(exc).__name__)
        yield ServerSentEvent(data=json.dumps(_stream_error()))
    except Exception:
        log.exception("streamed openai-compatible answer failed")
        yield ServerSentEvent(data=json.dumps(_stream_error()))
    finally:
        cancel.cancel()
        # A generator suspended in the model's lock releases it on close; one still running in its thread
        # cannot be closed (ValueError) and stops at its next token on the flag instead.
        with contextlib.suppress(ValueError):
            events.close()


def _stream_error() -> dict[str, Any]:
    """OpenAI's mid-stream error event: ``data: {"error": {...}}`` (the SDK raises APIError with its message)."""
    return {"error": openai_error_body(500, message=STREAM_FAILED)["error"]}
