"""What the Clearance HTTP API sends and accepts, as typed, frozen models.

These mirror ``api/schemas.py`` without importing it: the client runs where
only httpx and pydantic are installed. Response models ignore fields they do
not know, so a newer server that adds a field does not break an older client;
values with a documented but open set (``outcome``, job ``status``) stay
strings for the same reason, with the known values named here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: ``ChatResponse.outcome`` values: the model's answer passed the citation check, was replaced by
#: sentences selected from the passages, or nothing the caller may read answers the question.
OUTCOMES = ("grounded", "extractive_fallback", "abstained")
#: Job statuses after which a job no longer changes.
FINISHED_JOB_STATUSES = frozenset({"succeeded", "completed_with_errors", "failed"})


class ResponseModel(BaseModel):
    """Base of what the server sends: frozen, and tolerant of fields added by a newer server."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Access(ResponseModel):
    """Whether the caller's access was narrowed (fail closed), and why: results may then be incomplete."""

    narrowed: bool
    reasons: tuple[str, ...] = Field(description="group_resolution_failed, guest_status_unknown")


class SearchHit(ResponseModel):
    """A passage the caller may read. ``snippet`` is its first 300 characters; ACL fields are never sent."""

    chunk_id: str
    source: str
    title: str
    section: str | None
    page: int | None
    snippet: str
    score: float


class SearchResponse(ResponseModel):
    results: tuple[SearchHit, ...]
    access: Access


class Citation(ResponseModel):
    """A passage an answer cites; ``id`` is the ``[n]`` in the answer text."""

    id: int
    chunk_id: str
    source: str
    title: str
    section: str | None
    page: int | None
    snippet: str


class ChatResponse(ResponseModel):
    answer: str
    citations: tuple[Citation, ...]
    outcome: str = Field(description="grounded, extractive_fallback or abstained")
    generator: str
    prompt: str
    timings_ms: dict[str, float]
    access: Access
    answer_id: str | None = None  # what feedback refers to (servers before it was added send none)


class Turn(BaseModel):
    """One earlier turn of the conversation, sent with a question as ``history``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["user", "assistant"]
    content: str

    @classmethod
    def user(cls, content: str) -> Turn:
        return cls(role="user", content=content)

    @classmethod
    def assistant(cls, content: str) -> Turn:
        return cls(role="assistant", content=content)


class FileIssue(ResponseModel):
    path: str
    reason: str


class Job(ResponseModel):
    """An ingestion job: status, counts, per-file errors and warnings, stage timings."""

    id: str
    source: str
    tenant_id: str
    status: str = Field(description="queued, running, succeeded, completed_with_errors or failed")
    created_at: float
    started_at: float | None
    finished_at: float | None
    duration_s: float | None
    files_total: int
    files_done: int
    counts: dict[str, int]
    chunks_written: int
    errors: tuple[FileIssue, ...]
    warnings: tuple[FileIssue, ...]
    timings: dict[str, float]
    failure: str | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_JOB_STATUSES


class JobList(ResponseModel):
    jobs: tuple[Job, ...]


class Me(ResponseModel):
    """Who the token says the caller is (group ids are counted, never listed)."""

    tenant_id: str
    object_id: str
    name: str | None
    groups: int
    groups_complete: bool
    roles: tuple[str, ...]
    guest: bool
    access: Access
