"""Feedback on answers: one rating per user per answer (a second replaces the first).

Rows hold who rated (tenant and object id), which answer, the rating, an
optional reason from a fixed list and an optional comment. Who may rate which
answer is decided by :class:`store.review_desk.FeedbackDesk` (only the asker);
this module stores and deletes. ``delete_user`` and ``delete_older_than`` are
what "forget user" and retention call.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Double, Index, String, Text, UniqueConstraint, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.base import Base
from store.database import Database

MAX_COMMENT_CHARS = 2000


class Rating(StrEnum):
    UP = "up"
    DOWN = "down"


class FeedbackReason(StrEnum):
    INCORRECT = "incorrect"
    NOT_RELEVANT = "not_relevant"
    MISSING_CITATION = "missing_citation"
    OUTDATED = "outdated"
    HARMFUL = "harmful"
    OTHER = "other"


class FeedbackRow(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("tenant_id", "object_id", "answer_id"),
        Index("ix_feedback_tenant_answer", "tenant_id", "answer_id"),
        Index("ix_feedback_updated", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str] = mapped_column(String(200))
    answer_id: Mapped[str] = mapped_column(String(64))
    rating: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)


@dataclass(frozen=True, slots=True)
class Feedback:
    id: str
    answer_id: str
    rating: Rating
    reason: FeedbackReason | None
    comment: str | None
    created_at: float
    updated_at: float

    @classmethod
    def of(cls, row: FeedbackRow) -> Feedback:
        return cls(
            id=row.id,
            answer_id=row.answer_id,
            rating=Rating(row.rating),
            reason=FeedbackReason(row.reason) if row.reason else None,
            comment=row.comment,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class FeedbackStore:
    """Feedback rows; every query names its tenant."""

    def __init__(self, *, database: Database, clock: Callable[[], float] = time.time) -> None:
        self._database = database
        self._clock = clock

    def put_in(
        self,
        session: Session,
        *,
        tenant_id: str,
        object_id: str,
        answer_id: str,
        rating: Rating,
        reason: FeedbackReason | None,
        comment: str | None,
    ) -> Feedback:
        """The user's rating of the answer, inserted or replacing theirs, inside the caller's write transaction."""
        if comment is not None and len(comment) > MAX_COMMENT_CHARS:
            raise ValueError(f"a comment is at most {MAX_COMMENT_CHARS} characters")
        now = self._clock()
        query = (
            select(FeedbackRow)
            .where(
                FeedbackRow.tenant_id == tenant_id,
                FeedbackRow.object_id == object_id,
                FeedbackRow.answer_id == answer_id,
            )
            .with_for_update()
        )
        row = session.execute(query).scalar_one_or_none()
        if row is None:
            row = FeedbackRow(
                id=uuid.uuid4().hex,
                tenant_id=tenant_id,
                object_id=object_id,
                answer_id=answer_id,
                created_at=now,
            )
            session.add(row)
        row.rating, row.reason, row.comment, row.updated_at = rating.value, reason, comment, now
        session.flush()  # a racing insert of the same rating fails here, inside the caller's retry
        return Feedback.of(row)

    def for_answer(self, *, tenant_id: str, answer_id: str) -> list[Feedback]:
        """Every rating of one answer (in practice its asker's), oldest first."""
        query = (
            select(FeedbackRow)
            .where(FeedbackRow.tenant_id == tenant_id, FeedbackRow.answer_id == answer_id)
            .order_by(FeedbackRow.created_at, FeedbackRow.id)
        )
        with self._database.read() as session:
            return [Feedback.of(row) for row in session.execute(query).scalars()]

    def delete_user(self, *, tenant_id: str, object_id: str) -> int:
        """Forget user: every rating and comment this user gave; returns how many rows went."""
        with self._database.write() as session:
            result = session.execute(
                delete(FeedbackRow).where(FeedbackRow.tenant_id == tenant_id, FeedbackRow.object_id == object_id)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def delete_older_than(self, *, cutoff: float) -> int:
        """Retention: ratings last changed before ``cutoff`` (epoch seconds), every tenant; returns the count."""
        with self._database.write() as session:
            result = session.execute(delete(FeedbackRow).where(FeedbackRow.updated_at < cutoff))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]
