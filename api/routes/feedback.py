"""Feedback on answers: the asker rates an answer they received (thumbs up or down, a reason, a comment)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentPrincipal, FeedbackDeskDep
from store.feedback import MAX_COMMENT_CHARS, FeedbackReason, Rating

router = APIRouter(prefix="/v1", tags=["feedback"])
# Ids are hex (uuid4); free text may be anything but NUL, which PostgreSQL text cannot hold.
ID_PATTERN = r"^[0-9A-Za-z_-]+$"
NO_NUL = r"^[^\x00]*$"


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer_id: str = Field(
        min_length=1, max_length=64, pattern=ID_PATTERN, description="the answer's id (ChatResponse.answer_id)"
    )
    rating: Rating
    reason: FeedbackReason | None = None
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS, pattern=NO_NUL)


class FeedbackCreated(BaseModel):
    id: str


@router.post(
    "/feedback",
    status_code=201,
    response_model=FeedbackCreated,
    summary="Rate an answer you received; a second rating replaces the first",
    responses={404: {"description": "no answer of yours has this id"}},
)
def submit_feedback(body: FeedbackRequest, principal: CurrentPrincipal, desk: FeedbackDeskDep) -> FeedbackCreated:
    saved = desk.submit(
        principal, answer_id=body.answer_id, rating=body.rating, reason=body.reason, comment=body.comment
    )
    return FeedbackCreated(id=saved.id)
