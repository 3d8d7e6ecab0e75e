"""The human review queue: one item per answer that needs a person's eyes, open until a reviewer resolves it.

Items are fed by negative feedback (:class:`store.review_desk.FeedbackDesk`) and,
as answers are audited, by answers that fell back to the extractive answer,
were weakly grounded, or met the content policy (:mod:`store.review_sink`).
An item keeps why it was queued, the answer's outcome, and, once resolved, the
reviewer's verdict and expectation (the evaluation item an export writes).
Question, passages and asker stay in the audit and the index: an item points
at its answer by id. ``delete_user`` and ``delete_older_than`` are what
"forget user" and retention call.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Double, Index, String, Text, UniqueConstraint, delete, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.answer_texts import delete_answer_texts_before, delete_user_answer_texts
from store.base import Base
from store.database import Database

MAX_PAGE = 200


class ReviewStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class ReviewReason(StrEnum):
    NEGATIVE_FEEDBACK = "negative_feedback"  # the asker rated it down
    EXTRACTIVE_FALLBACK = "extractive_fallback"  # the model's answer failed the citation check and was replaced
    WEAK_GROUNDING = "weak_grounding"  # an answer that stands on little: see store.review_sink.review_reasons
    POLICY = "policy"  # the content policy decided something about it


class Resolution(StrEnum):
    CORRECT = "correct"
    INCORRECT = "incorrect"
    NEEDS_CONTENT = "needs_content"  # no document answers it: the right answer today is an abstention
    POLICY_OK = "policy_ok"
    POLICY_VIOLATION = "policy_violation"


class ReviewItemRow(Base):
    __tablename__ = "review_items"
    __table_args__ = (
        UniqueConstraint("tenant_id", "answer_id"),
        Index("ix_review_items_tenant_status", "tenant_id", "status", "updated_at"),
        Index("ix_review_items_tenant_asker", "tenant_id", "asker"),
        Index("ix_review_items_updated", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    answer_id: Mapped[str] = mapped_column(String(64))
    asker: Mapped[str] = mapped_column(String(200))  # the answer's audit actor: for forget-user, never shown
    status: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[str] = mapped_column(Text)  # JSON list of ReviewReason values, sorted
    feedback_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    outcome: Mapped[str] = mapped_column(String(32))  # the answer's outcome
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)
    resolved_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    resolver: Mapped[str | None] = mapped_column(String(200), nullable=True)
    resolution: Mapped[str | None] = mapped_column(String(32), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    expected_answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    expected_sources: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of document sources


@dataclass(frozen=True, slots=True)
class ReviewItem:
    id: str
    tenant_id: str
    answer_id: str
    asker: str
    status: ReviewStatus
    reasons: tuple[ReviewReason, ...]
    feedback_reason: str | None
    outcome: str
    created_at: float
    updated_at: float
    resolved_at: float | None
    resolver: str | None
    resolution: Resolution | None
    note: str | None
    expected_answer: str | None
    expected_sources: tuple[str, ...]

    @classmethod
    def of(cls, row: ReviewItemRow) -> ReviewItem:
        return cls(
            id=row.id,
            tenant_id=row.tenant_id,
            answer_id=row.answer_id,
            asker=row.asker,
            status=ReviewStatus(row.status),
            reasons=tuple(ReviewReason(r) for r in json.loads(row.reasons)),
            feedback_reason=row.feedback_reason,
            outcome=row.outcome,
            created_at=row.created_at,
            updated_at=row.updated_at,
            resolved_at=row.resolved_at,
            resolver=row.resolver,
            resolution=Resolution(row.resolution) if row.resolution else None,
            note=row.note,
            expected_answer=row.expected_answer,
            expected_sources=tuple(json.loads(row.expected_sources or "[]")),
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """A reviewer's resolution of an item."""

    resolution: Resolution
    note: str
    expected_answer: str | None = None
    expected_sources: tuple[str, ...] = ()


def _reasons_json(reasons: Iterable[ReviewReason]) -> str:
    return json.dumps(sorted({ReviewReason(r).value for r in reasons}))


class ReviewQueue:
    """Review items; every query names its tenant (the operator's retention calls excepted)."""

    def __init__(self, *, database: Database, clock: Callable[[], float] = time.time) -> None:
        self._database = database
        self._clock = clock

    # -- feeding (inside the caller's write transaction) -----------------------

    def add_reasons_in(
        self,
        session: Session,
        *,
        tenant_id: str,
        answer_id: str,
        asker: str,
        outcome: str,
        reasons: Sequence[ReviewReason],
        feedback_reason: str | None = None,
    ) -> ReviewItem:
        """Queues the answer for ``reasons`` (an existing item gains them and, if resolved, opens again)."""
        now = self._clock()
        row = self._locked(session, tenant_id=tenant_id, answer_id=answer_id)
        if row is None:
            row = ReviewItemRow(
                id=uuid.uuid4().hex,
                tenant_id=tenant_id,
                answer_id=answer_id,
                asker=asker,
                status=ReviewStatus.OPEN.value,
                reasons=_reasons_json(reasons),
                outcome=outcome,
                created_at=now,
                expected_sources="[]",
            )
            session.add(row)
        else:
            known = {ReviewReason(r) for r in json.loads(row.reasons)}
            if row.status == ReviewStatus.RESOLVED.value and not set(reasons) <= known:
                row.status = ReviewStatus.OPEN.value  # a new reason to look again; the earlier verdict stays shown
            row.reasons = _reasons_json(known | set(reasons))
        if feedback_reason is not None or ReviewReason.NEGATIVE_FEEDBACK in reasons:
            row.feedback_reason = feedback_reason
        row.updated_at = now
        session.flush()
        return ReviewItem.of(row)

    def withdraw_in(self, session: Session, *, tenant_id: str, answer_id: str, reason: ReviewReason) -> None:
        """The reason no longer holds (the asker changed a thumbs-down to up): an open item without reasons goes."""
        row = self._locked(session, tenant_id=tenant_id, answer_id=answer_id)
        if row is None or row.status != ReviewStatus.OPEN.value:
            return
        left = {ReviewReason(r) for r in json.loads(row.reasons)} - {reason}
        if not left:
            session.delete(row)
            return
        row.reasons = _reasons_json(left)
        if reason is ReviewReason.NEGATIVE_FEEDBACK:
            row.feedback_reason = None
        row.updated_at = self._clock()

    def _locked(self, session: Session, *, tenant_id: str, answer_id: str) -> ReviewItemRow | None:
        query = (
            select(ReviewItemRow)
            .where(ReviewItemRow.tenant_id == tenant_id, ReviewItemRow.answer_id == answer_id)
            .with_for_update()
        )
        return session.execute(query).scalar_one_or_none()

    # -- reviewers ----------------------------------------------------------------

    def page(
        self,
        *,
        tenant_id: str,
        status: ReviewStatus | None = None,
        reason: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> list[ReviewItem]:
        """Items of one tenant, most recently changed first; ``reason``: a queue reason or a feedback reason."""
        query = select(ReviewItemRow).where(ReviewItemRow.tenant_id == tenant_id)
        if status is not None:
            query = query.where(ReviewItemRow.status == status.value)
        if reason is not None:
            # Values are checked against the enums by the caller; quoted, one value cannot match inside another.
            query = query.where(
                or_(
                    ReviewItemRow.reasons.contains(json.dumps(reason), autoescape=True),
                    ReviewItemRow.feedback_reason == reason,
                )
            )
        query = query.order_by(ReviewItemRow.updated_at.desc(), ReviewItemRow.id.desc())
        query = query.offset(max(offset, 0)).limit(min(max(limit, 1), MAX_PAGE))
        with self._database.read() as session:
            return [ReviewItem.of(row) for row in session.execute(query).scalars()]

    def get(self, *, tenant_id: str, item_id: str) -> ReviewItem | None:
        with self._database.read() as session:
            row = session.execute(
                select(ReviewItemRow).where(ReviewItemRow.tenant_id == tenant_id, ReviewItemRow.id == item_id)
            ).scalar_one_or_none()
            return ReviewItem.of(row) if row is not None else None

    def resolve_in(
        self, session: Session, *, tenant_id: str, item_id: str, reviewer: str, verdict: Verdict
    ) -> ReviewItem | None:
        """Records the verdict (a later one replaces it); None when the tenant has no such item."""
        query = (
            select(ReviewItemRow)
            .where(ReviewItemRow.tenant_id == tenant_id, ReviewItemRow.id == item_id)
            .with_for_update()
        )
        row = session.execute(query).scalar_one_or_none()
        if row is None:
            return None
        now = self._clock()
        row.status = ReviewStatus.RESOLVED.value
        row.resolution = verdict.resolution.value
        row.note = verdict.note
        row.expected_answer = verdict.expected_answer
        row.expected_sources = json.dumps(list(verdict.expected_sources))
        row.resolver, row.resolved_at, row.updated_at = reviewer, now, now
        session.flush()
        return ReviewItem.of(row)

    def resolved(self, *, tenant_id: str, after_id: str = "", limit: int = MAX_PAGE) -> list[ReviewItem]:
        """Resolved items of one tenant in id order, a page at a time (export)."""
        query = (
            select(ReviewItemRow)
            .where(
                ReviewItemRow.tenant_id == tenant_id,
                ReviewItemRow.status == ReviewStatus.RESOLVED.value,
                ReviewItemRow.id > after_id,
            )
            .order_by(ReviewItemRow.id)
            .limit(limit)
        )
        with self._database.read() as session:
            return [ReviewItem.of(row) for row in session.execute(query).scalars()]

    # -- forget user and retention --------------------------------------------------

    def delete_user(self, *, tenant_id: str, object_id: str) -> int:
        """Forget user: the review items of this user's answers and the answers' stored texts; returns items gone."""
        with self._database.write() as session:
            result = session.execute(
                delete(ReviewItemRow).where(ReviewItemRow.tenant_id == tenant_id, ReviewItemRow.asker == object_id)
            )
            delete_user_answer_texts(session, tenant_id=tenant_id, object_id=object_id)
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def delete_older_than(self, *, cutoff: float) -> int:
        """Retention: items last changed before ``cutoff`` and answer texts kept since before it; returns items gone."""
        with self._database.write() as session:
            result = session.execute(delete(ReviewItemRow).where(ReviewItemRow.updated_at < cutoff))
            delete_answer_texts_before(session, cutoff=cutoff)
            return int(result.rowcount or 0)  # type: ignore[attr-defined]
