"""Feedback and review as the API offers them: who may rate, what a reviewer sees, and the audit of both.

Rules, all of them scoped to the caller's tenant (taken from the token):

- Only the asker rates an answer. Anyone else, and any id that is not an answer of
  theirs, gets the same "not found": a rating never confirms that an answer exists.
- A reviewer sees the question as the audit stored it (after the content policy),
  the answer, and **only the passages the asker could see**: the chunks recorded
  in the answer's audit record, read from the index under the asker's principal
  keys as recorded then (:func:`acl.recorded.principal_from_keys`), never under the
  reviewer's own keys and never without the security filter. A chunk deleted,
  replaced or re-permissioned since, or a record whose keys were erased, shows as
  unavailable. A reviewer who may read less than the asker still sees what the
  asker saw: judging an answer needs its sources, the answer's words already carry
  them, and the role is granted for that (every inspection is audited). A reviewer
  who may read more never sees more than the asker could.
- Ratings, inspections, resolutions and exports are admin records in the tenant's
  audit chain, written in the same transaction as the change (reads: before
  anything is returned).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from qdrant_client import models
from sqlalchemy.exc import IntegrityError

from acl.principal import Principal
from acl.recorded import principal_from_keys
from core.errors import NotFoundError
from core.records import Passage
from index.ports import ChunkIndex
from store.answer_records import answer_record, asked_by
from store.answer_texts import answer_text
from store.audit_log import AuditLog
from store.audit_query import AuditRecord
from store.database import Database
from store.feedback import Feedback, FeedbackReason, FeedbackStore, Rating
from store.review import MAX_PAGE, ReviewItem, ReviewQueue, ReviewReason, ReviewStatus, Verdict
from store.review_export import evaluation_item

_ATTEMPTS = 5
_NOT_FOUND = "answer not found"
_ITEM_NOT_FOUND = "review item not found"


@dataclass(frozen=True, slots=True)
class ShownPassage:
    """One retrieved chunk of the answer; text and place only when the asker may still read it."""

    number: int  # the [n] the answer cites it by
    chunk_id: str
    cited: bool
    available: bool
    source: str | None = None
    title: str | None = None
    section: str | None = None
    page: int | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Inspection:
    item: ReviewItem
    question: str | None  # None once erased from the audit
    answer: str | None  # None when its text was not kept or has been deleted
    asked_at_us: int | None
    passages: tuple[ShownPassage, ...]
    feedback: tuple[Feedback, ...]


class FeedbackDesk:
    def __init__(self, *, database: Database, audit: AuditLog, feedback: FeedbackStore, queue: ReviewQueue) -> None:
        self._database = database
        self._audit = audit
        self._feedback = feedback
        self._queue = queue

    def submit(
        self,
        principal: Principal,
        *,
        answer_id: str,
        rating: Rating,
        reason: FeedbackReason | None,
        comment: str | None,
    ) -> Feedback:
        """Rates an answer the caller received; NotFoundError for every other id. A thumbs-down queues it."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self._database.write() as session:
                    record = answer_record(session, tenant_id=principal.tenant_id, answer_id=answer_id)
                    if record is None or not asked_by(
                        record, tenant_id=principal.tenant_id, object_id=principal.object_id
                    ):
                        raise NotFoundError(_NOT_FOUND)
                    saved = self._feedback.put_in(
                        session,
                        tenant_id=principal.tenant_id,
                        object_id=principal.object_id,
                        answer_id=record.id,
                        rating=rating,
                        reason=reason,
                        comment=comment,
                    )
                    if rating is Rating.DOWN:
                        self._queue.add_reasons_in(
                            session,
                            tenant_id=principal.tenant_id,
                            answer_id=record.id,
                            asker=record.actor,
                            outcome=record.outcome,
                            reasons=(ReviewReason.NEGATIVE_FEEDBACK,),
                            feedback_reason=reason.value if reason else None,
                        )
                    else:
                        self._queue.withdraw_in(
                            session,
                            tenant_id=principal.tenant_id,
                            answer_id=record.id,
                            reason=ReviewReason.NEGATIVE_FEEDBACK,
                        )
                    self._audit.record_admin_action(
                        tenant_id=principal.tenant_id,
                        actor=principal.object_id,
                        action="feedback.submit",
                        target=record.id,
                        # The comment is the user's own words: kept in the feedback row, never chained.
                        detail={
                            "rating": rating.value,
                            "reason": reason.value if reason else None,
                            "comment": comment is not None,
                        },
                        session=session,
                    )
                    return saved
            except IntegrityError:
                if attempt == _ATTEMPTS:
                    raise  # two first ratings of one answer raced: the second try replaces the first
        raise AssertionError("unreachable")


class ReviewDesk:
    def __init__(
        self,
        *,
        database: Database,
        audit: AuditLog,
        feedback: FeedbackStore,
        queue: ReviewQueue,
        index: ChunkIndex,
    ) -> None:
        self._database = database
        self._audit = audit
        self._feedback = feedback
        self._queue = queue
        self._index = index

    def items(
        self,
        reviewer: Principal,
        *,
        status: ReviewStatus | None,
        reason: ReviewReason | FeedbackReason | None,
        offset: int = 0,
        limit: int = 50,
    ) -> list[ReviewItem]:
        found = self._queue.page(
            tenant_id=reviewer.tenant_id,
            status=status,
            reason=reason.value if reason is not None else None,
            offset=offset,
            limit=limit,
        )
        self._audit.record_admin_action(
            tenant_id=reviewer.tenant_id,
            actor=reviewer.object_id,
            action="review.list",
            detail={
                "status": status.value if status else None,
                "reason": reason.value if reason else None,
                "returned": len(found),
            },
        )
        return found

    def inspect(self, reviewer: Principal, item_id: str) -> Inspection:
        item = self._queue.get(tenant_id=reviewer.tenant_id, item_id=item_id)
        if item is None:
            raise NotFoundError(_ITEM_NOT_FOUND)
        with self._database.read() as session:
            record = answer_record(session, tenant_id=reviewer.tenant_id, answer_id=item.answer_id)
            text = answer_text(session, tenant_id=reviewer.tenant_id, answer_id=item.answer_id)
        passages = passages_as_asked(self._index, record)
        self._audit.record_admin_action(
            tenant_id=reviewer.tenant_id,
            actor=reviewer.object_id,
            action="review.inspect",
            target=item.id,
            detail={
                "answer": item.answer_id,
                "passages": len(passages),
                "shown": sum(1 for p in passages if p.available),
            },
        )
        personal = record.personal if record is not None else None
        question = personal.get("question") if personal else None
        return Inspection(
            item=item,
            question=question if isinstance(question, str) else None,
            answer=text,
            asked_at_us=record.at_us if record is not None else None,
            passages=passages,
            feedback=tuple(self._feedback.for_answer(tenant_id=reviewer.tenant_id, answer_id=item.answer_id)),
        )

    def resolve(self, reviewer: Principal, item_id: str, verdict: Verdict) -> ReviewItem:
        with self._database.write() as session:
            item = self._queue.resolve_in(
                session, tenant_id=reviewer.tenant_id, item_id=item_id, reviewer=reviewer.object_id, verdict=verdict
            )
            if item is None:
                raise NotFoundError(_ITEM_NOT_FOUND)
            self._audit.record_admin_action(
                tenant_id=reviewer.tenant_id,
                actor=reviewer.object_id,
                action="review.resolve",
                target=item.id,
                detail={
                    "answer": item.answer_id,
                    "resolution": verdict.resolution.value,
                    "expected_sources": len(verdict.expected_sources),
                },
                session=session,
            )
            return item

    def export(self, reviewer: Principal) -> Iterator[dict[str, Any]]:
        """The tenant's resolved items as evaluation items; the export is audited before anything is read."""
        self._audit.record_admin_action(
            tenant_id=reviewer.tenant_id, actor=reviewer.object_id, action="review.export", detail={}
        )
        return self._evaluation_items(reviewer.tenant_id)

    def _evaluation_items(self, tenant_id: str) -> Iterator[dict[str, Any]]:
        after = ""
        while True:
            page = self._queue.resolved(tenant_id=tenant_id, after_id=after, limit=MAX_PAGE)
            for item in page:
                with self._database.read() as session:
                    record = answer_record(session, tenant_id=tenant_id, answer_id=item.answer_id)
                    text = answer_text(session, tenant_id=tenant_id, answer_id=item.answer_id)
                exported = evaluation_item(item, record, text)
                if exported is not None:
                    yield exported
            if len(page) < MAX_PAGE:
                return
            after = page[-1].id


def passages_as_asked(index: ChunkIndex, record: AuditRecord | None) -> tuple[ShownPassage, ...]:
    """The answer's retrieved chunks, in the order it was given them, with text only for those the asker's
    recorded keys still read now (through the index's security filter); the rest are unavailable."""
    if record is None:
        return ()
    retrieved = [c for c in record.record.get("retrieved") or () if isinstance(c, dict)]
    cited = set(record.record.get("cited") or ())
    keys = record.personal.get("principals") if record.personal else None
    asker = principal_from_keys(tenant_id=record.chain, object_id=record.actor, keys=keys or ())
    readable = _read_as(index, asker, [str(c.get("chunk_id", "")) for c in retrieved])
    shown = []
    for number, chunk in enumerate(retrieved, start=1):
        chunk_id = str(chunk.get("chunk_id", ""))
        found = readable.get(chunk_id)
        if found is None or found.doc_id != chunk.get("doc_id"):
            shown.append(ShownPassage(number=number, chunk_id=chunk_id, cited=chunk_id in cited, available=False))
            continue
        shown.append(
            ShownPassage(
                number=number,
                chunk_id=chunk_id,
                cited=chunk_id in cited,
                available=True,
                source=found.source,
                title=found.title,
                section=found.section,
                page=found.page,
                text=found.text,
            )
        )
    return tuple(shown)


def _read_as(index: ChunkIndex, asker: Principal | None, chunk_ids: Sequence[str]) -> dict[str, Passage]:
    if asker is None:
        return {}  # no keys we can trust (erased, malformed): nobody's view, so nothing
    ids = sorted({c for c in chunk_ids if _is_uuid(c)})  # the index's ids are UUIDs; anything else matches none
    if not ids:
        return {}
    narrowing = models.Filter(must=[models.HasIdCondition(has_id=list(ids))])
    chunks = index.read(asker, narrowing=narrowing, limit=len(ids))
    return {c.passage.chunk_id: c.passage for c in chunks}


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class ReviewServices:
    """What the API's feedback and review routes use, built once by the composition root."""

    feedback: FeedbackDesk
    review: ReviewDesk


def review_services(
    *, database: Database, audit: AuditLog, feedback: FeedbackStore, queue: ReviewQueue, index: ChunkIndex
) -> ReviewServices:
    return ReviewServices(
        feedback=FeedbackDesk(database=database, audit=audit, feedback=feedback, queue=queue),
        review=ReviewDesk(database=database, audit=audit, feedback=feedback, queue=queue, index=index),
    )
