"""The answer service's audit sink with review attached: chain the record, keep the text, queue what needs a look.

One write transaction per answer, as before: the chained audit record, the
answer's text (:mod:`store.answer_texts`) and, when :func:`review_reasons`
finds any, its review item. Nothing is read back and no second commit is
made, so the answer path pays a row or two more inside the commit it already
waits for (measured in ``benchmarks/review_sink.py``). A failure fails the
append, as before: no answer leaves without its record.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError

from retrieval.audit import AnswerAudit
from store.answer_texts import add_answer_text
from store.audit_log import AuditLog, RecordKind, answer_entry
from store.review import ReviewQueue, ReviewReason

log = logging.getLogger(__name__)
_APPEND_ATTEMPTS = 5
_OUTCOME_FALLBACK = "extractive_fallback"
_OUTCOME_GROUNDED = "grounded"
_POLICY_STAGES = ("input:", "passage:", "output:")  # decisions as retrieval.policy writes them: stage:rule:action


def review_reasons(audit: AnswerAudit) -> tuple[ReviewReason, ...]:
    """Why an answer should be queued for review as it is audited; empty for most answers.

    - the model's answer failed the citation check and the extractive answer replaced it;
    - weak grounding: an answer presented as grounded that cites nothing;
    - the content policy decided something (any stage; metadata entries such as a policy version do not count).
    Searches and abstentions are not answers to review unless someone rates them.
    """
    if audit.kind != RecordKind.ANSWER.value:
        return ()
    reasons: list[ReviewReason] = []
    if audit.outcome == _OUTCOME_FALLBACK:
        reasons.append(ReviewReason.EXTRACTIVE_FALLBACK)
    if audit.outcome == _OUTCOME_GROUNDED and not audit.cited:
        reasons.append(ReviewReason.WEAK_GROUNDING)
    if any(decision.startswith(_POLICY_STAGES) for decision in audit.policy):
        reasons.append(ReviewReason.POLICY)
    return tuple(reasons)


class ReviewingAuditSink:
    """retrieval.audit.AuditSink over the store: the audit record, plus what review needs, in one commit."""

    def __init__(self, *, log: AuditLog, queue: ReviewQueue) -> None:
        self._log = log
        self._queue = queue

    def record(self, entry: AnswerAudit) -> None:
        chained = answer_entry(entry)
        reasons = review_reasons(entry)
        for attempt in range(1, _APPEND_ATTEMPTS + 1):
            try:
                with self._log.database.write() as session:
                    self._log.append_in(session, chained)
                    if entry.kind != RecordKind.ANSWER.value:
                        return
                    add_answer_text(
                        session,
                        answer_id=entry.id,
                        tenant_id=entry.tenant_id,
                        object_id=entry.object_id,
                        answer=entry.answer,
                        at=entry.at,
                    )
                    if reasons:
                        self._queue.add_reasons_in(
                            session,
                            tenant_id=entry.tenant_id,
                            answer_id=entry.id,
                            asker=entry.object_id,
                            outcome=entry.outcome,
                            reasons=reasons,
                        )
                return
            except IntegrityError:
                # As in AuditLog.append: only a head row created by a racing first append lands here.
                if attempt == _APPEND_ATTEMPTS:
                    raise
                log.info("audit append raced on chain %r; retrying", entry.tenant_id)
