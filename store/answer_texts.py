"""The text of each answer, kept beside its audit record for feedback and review.

The audit chains what an answer used (chunk ids, documents, prompt, outcome),
not what it said; a reviewer judging an answer needs its words. They are
written in the same transaction as the answer's audit record (see
:mod:`store.review_sink`), keyed by the answer id, with the asker so that
"forget user" and retention can remove them.
"""

from __future__ import annotations

from sqlalchemy import Double, Index, String, Text, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.base import Base

MAX_ANSWER_CHARS = 20_000  # an answer is bounded by the generator's token limit; this bounds a row whatever it is


class AnswerTextRow(Base):
    __tablename__ = "answer_texts"
    __table_args__ = (
        Index("ix_answer_texts_tenant_user", "tenant_id", "object_id"),
        Index("ix_answer_texts_created", "created_at"),
    )

    answer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Double)
    answer: Mapped[str] = mapped_column(Text)


def add_answer_text(
    session: Session, *, answer_id: str, tenant_id: str, object_id: str, answer: str, at: float
) -> None:
    session.add(
        AnswerTextRow(
            answer_id=answer_id,
            tenant_id=tenant_id,
            object_id=object_id,
            created_at=at,
            answer=answer[:MAX_ANSWER_CHARS],
        )
    )


def answer_text(session: Session, *, tenant_id: str, answer_id: str) -> str | None:
    """The answer's text, or None when it was never kept (older answers) or has been deleted since."""
    query = select(AnswerTextRow.answer).where(
        AnswerTextRow.answer_id == answer_id, AnswerTextRow.tenant_id == tenant_id
    )
    return session.execute(query).scalar_one_or_none()


def delete_user_answer_texts(session: Session, *, tenant_id: str, object_id: str) -> int:
    result = session.execute(
        delete(AnswerTextRow).where(AnswerTextRow.tenant_id == tenant_id, AnswerTextRow.object_id == object_id)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def delete_answer_texts_before(session: Session, *, cutoff: float) -> int:
    result = session.execute(delete(AnswerTextRow).where(AnswerTextRow.created_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
