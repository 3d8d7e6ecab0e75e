"""Reviewer routes (Clearance.Reviewer role): the review queue of the reviewer's own tenant.

The tenant comes from the token, never from the request. Inspecting an item
shows the passages the asker could see, read under the asker's recorded keys
(see :mod:`store.review_desk`); every read, resolution and export is audited.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Self

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ReviewDeskDep, ReviewerPrincipal
from api.routes.feedback import ID_PATTERN, NO_NUL
from core.errors import InvalidInputError
from store.feedback import FeedbackReason
from store.review import MAX_PAGE, Resolution, ReviewItem, ReviewReason, ReviewStatus, Verdict
from store.review_desk import Inspection, ShownPassage

router = APIRouter(prefix="/v1/review", tags=["review"])
NDJSON = "application/x-ndjson"
_ITEM_ID = Path(min_length=1, max_length=64, pattern=ID_PATTERN)


class ReviewItemOut(BaseModel):
    id: str
    answer_id: str
    status: ReviewStatus
    reasons: list[ReviewReason]
    feedback_reason: str | None
    outcome: str = Field(description="the answer's outcome")
    created_at: float
    updated_at: float
    resolution: Resolution | None
    resolved_at: float | None
    note: str | None
    expected_answer: str | None
    expected_sources: list[str]

    @classmethod
    def of(cls, item: ReviewItem) -> Self:
        return cls(
            id=item.id,
            answer_id=item.answer_id,
            status=item.status,
            reasons=list(item.reasons),
            feedback_reason=item.feedback_reason,
            outcome=item.outcome,
            created_at=item.created_at,
            updated_at=item.updated_at,
            resolution=item.resolution,
            resolved_at=item.resolved_at,
            note=item.note,
            expected_answer=item.expected_answer,
            expected_sources=list(item.expected_sources),
        )


class ReviewItemList(BaseModel):
    items: list[ReviewItemOut]


class PassageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int = Field(description="the [n] the answer cites it by")
    chunk_id: str
    cited: bool
    available: bool = Field(description="false: deleted, replaced or no longer readable by the asker")
    source: str | None
    title: str | None
    section: str | None
    page: int | None
    text: str | None


class FeedbackOut(BaseModel):
    rating: str
    reason: str | None
    comment: str | None
    at: float


class InspectionOut(BaseModel):
    item: ReviewItemOut
    question: str | None = Field(description="as the audit stored it (after the content policy); null once erased")
    answer: str | None = Field(description="null when its text was not kept or has been deleted")
    asked_at_us: int | None
    citations: list[PassageOut] = Field(description="the passages the answer cites, as in `passages`")
    passages: list[PassageOut] = Field(description="every passage the answer was given: only what the asker saw")
    feedback: list[FeedbackOut]

    @classmethod
    def of(cls, seen: Inspection) -> Self:
        passages = [_passage(p) for p in seen.passages]
        return cls(
            item=ReviewItemOut.of(seen.item),
            question=seen.question,
            answer=seen.answer,
            asked_at_us=seen.asked_at_us,
            citations=[p for p in passages if p.cited],
            passages=passages,
            feedback=[
                FeedbackOut(
                    rating=f.rating.value,
                    reason=f.reason.value if f.reason else None,
                    comment=f.comment,
                    at=f.updated_at,
                )
                for f in seen.feedback
            ],
        )


def _passage(shown: ShownPassage) -> PassageOut:
    return PassageOut.model_validate(shown)


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: Resolution
    note: str = Field(default="", max_length=4000, pattern=NO_NUL)
    expected_answer: str | None = Field(default=None, max_length=4000, pattern=NO_NUL)
    expected_sources: list[str] = Field(default_factory=list, max_length=20)


def _reason(value: str | None) -> ReviewReason | FeedbackReason | None:
    if value is None:
        return None
    for kind in (ReviewReason, FeedbackReason):
        try:
            return kind(value)
        except ValueError:
            continue
    known = [r.value for r in ReviewReason] + [r.value for r in FeedbackReason]
    raise InvalidInputError(f"reason must be one of {', '.join(known)}")


@router.get("/items", response_model=ReviewItemList, summary="Your tenant's review items, most recently changed first")
def list_items(
    reviewer: ReviewerPrincipal,
    desk: ReviewDeskDep,
    status: ReviewStatus | None = Query(default=None),
    reason: str | None = Query(default=None, max_length=32, description="a queue reason or a feedback reason"),
    offset: int = Query(default=0, ge=0, le=100_000),
    limit: int = Query(default=50, ge=1, le=MAX_PAGE),
) -> ReviewItemList:
    found = desk.items(reviewer, status=status, reason=_reason(reason), offset=offset, limit=limit)
    return ReviewItemList(items=[ReviewItemOut.of(item) for item in found])


@router.get(
    "/items/{item_id}",
    response_model=InspectionOut,
    summary="One item: question, answer, outcome, and only the passages the asker could see",
)
def inspect_item(reviewer: ReviewerPrincipal, desk: ReviewDeskDep, item_id: str = _ITEM_ID) -> InspectionOut:
    return InspectionOut.of(desk.inspect(reviewer, item_id))


def _strings(values: list[str]) -> tuple[str, ...]:
    cleaned = tuple(v.strip() for v in values)
    if any(not v or len(v) > 1024 or "\x00" in v for v in cleaned):
        raise InvalidInputError("expected_sources must be document sources of 1 to 1024 characters")
    return cleaned


@router.post("/items/{item_id}/resolve", response_model=ReviewItemOut, summary="Resolve an item (again: replaces)")
def resolve_item(
    body: ResolveRequest, reviewer: ReviewerPrincipal, desk: ReviewDeskDep, item_id: str = _ITEM_ID
) -> ReviewItemOut:
    verdict = Verdict(
        resolution=body.resolution,
        note=body.note,
        expected_answer=body.expected_answer or None,
        expected_sources=_strings(body.expected_sources),
    )
    return ReviewItemOut.of(desk.resolve(reviewer, item_id, verdict))


@router.get(
    "/export",
    summary="Resolved items as evaluation items (JSON lines, the format `clearance.evaluation.reviewed` loads)",
    response_class=StreamingResponse,
    responses={200: {"content": {NDJSON: {}}}},
)
def export_items(reviewer: ReviewerPrincipal, desk: ReviewDeskDep) -> StreamingResponse:
    items = desk.export(reviewer)  # audited before the first line leaves
    return StreamingResponse(
        _lines(items),
        media_type=NDJSON,
        headers={"Content-Disposition": 'attachment; filename="clearance-review.jsonl"', "Cache-Control": "no-store"},
    )


def _lines(items: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    for item in items:
        yield json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
