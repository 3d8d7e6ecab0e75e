"""Request and response bodies. Requests forbid unknown fields: nothing can widen access.

Response models are built from the domain records (``from_attributes``), so a
field has one shape from the service to the client.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from acl.principal import Principal
from core.records import Passage
from ingest.jobs import JobRecord
from retrieval.citations import snippet
from retrieval.records import AnswerResult


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchRequest(Strict):
    query: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(default=5, ge=1, le=50)


class SearchHit(BaseModel):
    chunk_id: str
    source: str
    title: str
    section: str | None
    page: int | None
    snippet: str
    score: float

    @classmethod
    def of(cls, passage: Passage) -> Self:
        return cls(
            chunk_id=passage.chunk_id,
            source=passage.source,
            title=passage.title,
            section=passage.section,
            page=passage.page,
            snippet=snippet(passage.text),
            score=round(passage.score, 4),
        )


class AccessOut(BaseModel):
    """Whether the caller's principals were narrowed (fail closed) and why; answers may then be incomplete."""

    narrowed: bool
    reasons: list[str] = Field(description="group_resolution_failed, guest_status_unknown")

    @classmethod
    def of(cls, principal: Principal) -> Self:
        reasons = list(principal.narrowing_reasons)
        return cls(narrowed=bool(reasons), reasons=reasons)


class SearchResponse(BaseModel):
    results: list[SearchHit]
    access: AccessOut


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


class Turn(Strict):
    role: Role
    content: str = Field(max_length=8000)


class ChatRequest(Strict):
    question: str = Field(min_length=1, max_length=2000)
    history: list[Turn] = Field(default_factory=list, max_length=20)
    stream: bool = False
    progress: bool = Field(
        default=False, description="with stream: a `progress` event (passages found) before the answer's text"
    )
    conversation_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="continue this conversation of yours (its turns are the history; send no `history` then); "
        "without it and without `history`, a new conversation is started",
    )

    @model_validator(mode="after")
    def _one_source_of_history(self) -> Self:
        if self.conversation_id is not None and self.history:
            raise ValueError("send either conversation_id or history, not both")
        return self


class CitationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    chunk_id: str
    source: str
    title: str
    section: str | None
    page: int | None
    snippet: str


class PolicyDecisionOut(BaseModel):
    """One content-policy rule that fired (never the text that made it fire)."""

    model_config = ConfigDict(from_attributes=True)

    rule: str = Field(description="the rule's id in the policy file")
    stage: str = Field(description="input, passage or output")
    action: str = Field(description="block, warn, neutralise, drop, flag, fallback or abstain")
    detail: str = Field(description="kinds of personal data, passage number or sentence count; may be empty")


class PolicyOut(BaseModel):
    """The content policy that applied to this answer, and what it decided."""

    version: str = Field(description="name/version@sha256:<policy file digest>")
    decisions: list[PolicyDecisionOut]

    @classmethod
    def of(cls, result: AnswerResult) -> Self:
        return cls(
            version=result.policy_version,
            decisions=[PolicyDecisionOut.model_validate(d) for d in result.policy],
        )


class ChatResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    answer_id: str = Field(description="the answer's id, also its audit record's: what feedback refers to")
    answer: str
    citations: list[CitationOut]
    outcome: str = Field(description="grounded, extractive_fallback, abstained or blocked (by the content policy)")
    generator: str
    prompt: str
    timings_ms: dict[str, float]
    access: AccessOut
    policy: PolicyOut | None = Field(default=None, description="the content policy's version and decisions")
    conversation_id: str | None = Field(
        default=None, description="the conversation this answer was kept in; null for a request that sent history"
    )

    @classmethod
    def of(cls, result: AnswerResult, principal: Principal, *, conversation_id: str | None = None) -> Self:
        return cls.model_validate(
            {
                "answer_id": result.id,
                "answer": result.answer,
                "citations": [CitationOut.model_validate(c) for c in result.citations],
                "outcome": result.outcome,
                "generator": result.generator,
                "prompt": result.prompt,
                "timings_ms": result.timings_ms,
                "access": AccessOut.of(principal),
                "policy": PolicyOut.of(result),
                "conversation_id": conversation_id,
            }
        )


class IngestJobRequest(Strict):
    path: str = Field(min_length=1, max_length=4096, description="a folder on the server, under an allowed root")


class FileIssueOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    path: str
    reason: str


class JobOut(BaseModel):
    """An ingestion job record: status, counts, per-file errors and warnings, stage timings."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    source: str
    tenant_id: str
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    duration_s: float | None
    files_total: int
    files_done: int
    counts: dict[str, int]
    chunks_written: int
    errors: list[FileIssueOut]
    warnings: list[FileIssueOut]
    timings: dict[str, float]
    failure: str | None
    cancel_requested_at: float | None = None

    @classmethod
    def of(cls, job: JobRecord) -> Self:
        return cls.model_validate(job)


class JobList(BaseModel):
    jobs: list[JobOut]


class MeResponse(BaseModel):
    tenant_id: str
    object_id: str
    name: str | None
    groups: int
    groups_complete: bool
    roles: list[str]
    guest: bool
    access: AccessOut
