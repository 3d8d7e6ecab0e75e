"""The typed answer path: outcomes, citations, results and stream events.

A citation has one shape from the service to the client: the API builds its
response models from these records (``from_attributes``), never by hand.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from retrieval.policy.decisions import PolicyDecision


class AnswerOutcome(StrEnum):
    GROUNDED = "grounded"  # the configured generator's answer passed the citation check
    EXTRACTIVE_FALLBACK = "extractive_fallback"  # the model's answer was replaced
    ABSTAINED = "abstained"  # nothing relevant the caller may read answers the question
    ABANDONED = "abandoned"  # the client left before the answer was complete (streaming only)
    SEARCH = "search"  # not an answer: a search, recorded in the audit with what it returned
    BLOCKED = "blocked"  # an input rule of the content policy refused the question: nothing was searched


@dataclass(frozen=True, slots=True)
class Citation:
    """A passage an answer cites, as the caller may see it (no ACL fields)."""

    id: int  # the [n] in the answer text
    chunk_id: str
    source: str
    title: str
    section: str | None
    page: int | None
    snippet: str


@dataclass(frozen=True, slots=True)
class AnswerResult:
    answer: str
    citations: tuple[Citation, ...]
    outcome: AnswerOutcome
    generator: str
    prompt: str
    retrieved: tuple[str, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    # The answer's audit record has the same id: feedback, review and conversations refer to answers by it.
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    policy: tuple[PolicyDecision, ...] = ()  # what the content policy decided, stage by stage
    policy_version: str = ""  # the policy that applied: name/version@sha256:<file digest>


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """A piece of answer text, in order."""

    text: str


@dataclass(frozen=True, slots=True)
class ReplaceEvent:
    """The checked answer, when it differs from the text streamed so far."""

    answer: str


@dataclass(frozen=True, slots=True)
class ResultEvent:
    """The last event of every stream: the answer as it stands, with citations."""

    result: AnswerResult


@dataclass(frozen=True, slots=True)
class RetrievedEvent:
    """Sent before generation when the caller asks for progress: how many permitted passages were found.

    ``sources`` are those passages as citations (numbered as the model reads them): what the answer's
    citations would show this caller anyway, sent while the model is still reading.
    """

    passages: int
    sources: tuple[Citation, ...] = ()


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """Sent (with progress) while the question waits for the model: its place in line, 1 = next.

    After waiting, position 0 says its turn has come (the model now reads the passages).
    """

    position: int


AnswerEvent = TokenEvent | ReplaceEvent | ResultEvent | RetrievedEvent | QueuedEvent
