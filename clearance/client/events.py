"""The typed events of a streamed answer (``POST /v1/chat`` with ``stream: true``), decoded from SSE.

A stream is ``token``* (checked sentences as they are written), then an
optional ``replace`` (the checked answer, when it differs from the text
streamed so far), then ``citations``, then ``done``. An ``error`` event
becomes :class:`~clearance.client.errors.AnswerStreamError`; event names this
client does not know (a newer server) are skipped.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from clearance.client.errors import AnswerStreamError, UnexpectedResponseError
from clearance.client.models import Access, ChatResponse, Citation, ResponseModel


class TokenEvent(ResponseModel):
    """A piece of the answer's text, in order."""

    text: str


class ReplaceEvent(ResponseModel):
    """The checked answer, replacing everything streamed before it."""

    answer: str


class CitationsEvent(ResponseModel):
    """The passages the final answer cites."""

    citations: tuple[Citation, ...]


class DoneEvent(ResponseModel):
    """The last event: the answer as it stands and how it was made."""

    answer: str
    outcome: str
    generator: str
    prompt: str
    timings_ms: dict[str, float]
    access: Access
    answer_id: str | None = None  # what feedback refers to (servers before it was added send none)


ChatEvent = TokenEvent | ReplaceEvent | CitationsEvent | DoneEvent

_EVENTS: dict[str, type[ChatEvent]] = {
    "token": TokenEvent,
    "replace": ReplaceEvent,
    "citations": CitationsEvent,
    "done": DoneEvent,
}


def decode_event(name: str, data: str) -> ChatEvent | None:
    """The typed event for one SSE message; None for a name this client does not know."""
    if name == "error":
        raise AnswerStreamError(_error_title(data))
    model = _EVENTS.get(name)
    if model is None:
        return None
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        # The field names only: event data is answer text, which stays out of exception messages.
        fields = sorted({".".join(str(part) for part in err["loc"]) for err in exc.errors()})
        raise UnexpectedResponseError(f"a {name!r} event of an unexpected shape (fields: {fields})") from None


def _error_title(data: str) -> str:
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    title = body.get("title") if isinstance(body, dict) else None
    return title if isinstance(title, str) and title else "The answer could not be completed"


class StreamedAnswer:
    """Folds a stream's events into the :class:`ChatResponse` that ``chat`` would have returned."""

    def __init__(self) -> None:
        self._citations: tuple[Citation, ...] = ()
        self._done: DoneEvent | None = None

    def add(self, event: ChatEvent) -> None:
        if isinstance(event, CitationsEvent):
            self._citations = event.citations
        elif isinstance(event, DoneEvent):
            self._done = event

    def response(self) -> ChatResponse:
        if self._done is None:
            raise AnswerStreamError("the answer stream ended before its done event")
        done = self._done
        return ChatResponse(
            answer=done.answer,
            citations=self._citations,
            outcome=done.outcome,
            generator=done.generator,
            prompt=done.prompt,
            timings_ms=done.timings_ms,
            access=done.access,
            answer_id=done.answer_id,
        )
