"""The store's records as retention sees them: what a dry run counts and a run deletes, per kind.

Conversations count and delete themselves. Feedback and review items delete
themselves (:meth:`FeedbackStore.delete_older_than`,
:meth:`ReviewQueue.delete_older_than`); what a dry run reports for them is
counted here on the same column and the same strict comparison those deletes
use (``updated_at < cutoff``).
"""

from __future__ import annotations

from sqlalchemy import func, select

from store.database import Database
from store.feedback import FeedbackRow, FeedbackStore
from store.retention import ExpiringRecords, PersonalRecords, RetainedKind
from store.review import ReviewItemRow, ReviewQueue
from store.state import Store


class _CountedFeedback:
    def __init__(self, *, database: Database, feedback: FeedbackStore) -> None:
        self._database = database
        self._feedback = feedback

    def count_older_than(self, *, cutoff: float) -> int:
        with self._database.read() as session:
            query = select(func.count()).select_from(FeedbackRow).where(FeedbackRow.updated_at < cutoff)
            return int(session.execute(query).scalar_one())

    def delete_older_than(self, *, cutoff: float) -> int:
        return self._feedback.delete_older_than(cutoff=cutoff)


class _CountedReview:
    def __init__(self, *, database: Database, review: ReviewQueue) -> None:
        self._database = database
        self._review = review

    def count_older_than(self, *, cutoff: float) -> int:
        with self._database.read() as session:
            query = select(func.count()).select_from(ReviewItemRow).where(ReviewItemRow.updated_at < cutoff)
            return int(session.execute(query).scalar_one())

    def delete_older_than(self, *, cutoff: float) -> int:
        return self._review.delete_older_than(cutoff=cutoff)


def expiring_records(store: Store) -> dict[RetainedKind, ExpiringRecords]:
    """Every kind retention deletes by age, except the audit (cut by :mod:`store.audit_retention`)."""
    return {
        RetainedKind.CONVERSATIONS: store.conversations,
        RetainedKind.FEEDBACK: _CountedFeedback(database=store.database, feedback=store.feedback),
        RetainedKind.REVIEW: _CountedReview(database=store.database, review=store.review),
    }


def personal_records(store: Store) -> dict[str, PersonalRecords]:
    """What "forget user" deletes outright: the person's conversations, their ratings, the review items of
    their answers (with the answers' kept texts)."""
    return {"conversations": store.conversations, "feedback": store.feedback, "review_items": store.review}
