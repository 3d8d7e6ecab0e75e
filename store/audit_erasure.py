"""Erasing a person's personal fields from the audit without breaking the chain ("forget user").

A record chains only the digest of its personal fields (actor, principal keys,
question), so they can be removed and every hash still verifies. What remains
is what was used and decided: documents, chunks, prompt, model, outcome,
timings, the fingerprint of the group keys. The erased records get one random
pseudonym as their actor (still linkable to each other, no longer to the
person), and the erasure is itself an admin record listing the positions it
erased, so that the verifier can tell an audited erasure from a deletion.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select, update

from store.audit_log import AuditLog, lock_head, now_us
from store.audit_tables import AuditRecordRow
from store.audit_verify import ERASE_ACTION


def erase_user(log: AuditLog, *, tenant_id: str, object_id: str, actor: str) -> int:
    """Erases ``object_id``'s personal fields in ``tenant_id``'s chain; returns how many records were erased."""
    pseudonym = f"erased:{uuid.uuid4().hex}"
    with log.database.write() as session:
        lock_head(session, tenant_id)  # no append to this chain can slip between the listing and the erasure
        theirs = (
            AuditRecordRow.chain == tenant_id,
            AuditRecordRow.actor == object_id,
            AuditRecordRow.personal.is_not(None),
        )
        seqs = list(session.execute(select(AuditRecordRow.seq).where(*theirs).order_by(AuditRecordRow.seq)).scalars())
        if seqs:
            session.execute(
                update(AuditRecordRow).where(*theirs).values(personal=None, erased_at_us=now_us(), actor=pseudonym)
            )
        log.record_admin_action(
            tenant_id=tenant_id,
            actor=actor,
            action=ERASE_ACTION,
            target=pseudonym,
            detail={"erased": seqs, "count": len(seqs)},
            session=session,
        )
    return len(seqs)
