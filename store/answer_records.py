"""An answer's audit record by its id, within one tenant's chain: what feedback and review refer to."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.audit_log import RecordKind
from store.audit_query import AuditRecord
from store.audit_tables import AuditRecordRow

MAX_ANSWER_ID_CHARS = 64


def answer_record(session: Session, *, tenant_id: str, answer_id: str) -> AuditRecord | None:
    """The answer (not a search, not an admin action) ``answer_id`` of ``tenant_id``; None when there is none."""
    if not answer_id or len(answer_id) > MAX_ANSWER_ID_CHARS:
        return None
    query = select(AuditRecordRow).where(
        AuditRecordRow.chain == tenant_id,
        AuditRecordRow.id == answer_id,
        AuditRecordRow.kind == RecordKind.ANSWER.value,
    )
    row = session.execute(query).scalar_one_or_none()
    return AuditRecord.of(row) if row is not None else None


def asked_by(record: AuditRecord | None, *, tenant_id: str, object_id: str) -> bool:
    """Whether ``record`` is an answer given to this user of this tenant (an erased record belongs to nobody)."""
    return (
        record is not None and record.chain == tenant_id and record.actor == object_id and record.erased_at_us is None
    )
