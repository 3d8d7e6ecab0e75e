"""Request and response bodies. Requests forbid unknown fields: nothing can widen access."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


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


class SearchResponse(BaseModel):
    results: list[SearchHit]


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


class CitationOut(BaseModel):
    id: int
    chunk_id: str
    source: str
    title: str
    section: str | None
    page: int | None
    snippet: str


class ChatResponse(BaseModel):
    answer: str
    citations: list[CitationOut]
    outcome: str = Field(description="grounded, extractive_fallback or abstained")
    generator: str
    prompt: str
    timings_ms: dict[str, float]


class IngestJobRequest(Strict):
    path: str = Field(min_length=1, max_length=4096, description="a folder on the server, under an allowed root")


class MeResponse(BaseModel):
    tenant_id: str
    object_id: str
    name: str | None
    groups: int
    groups_complete: bool
    roles: list[str]
    guest: bool
