"""Where a chain's retained records start once audit retention has removed its oldest ones.

Retention removes a chain's oldest records as a prefix, never from the middle.
Before it deletes anything it appends a ``audit.truncate`` admin record to the
same chain whose chained detail names the last removed position and its hash,
``{"through_seq": N, "through_hash": H}``. That record is the checkpoint: the
verifier starts at position N + 1 expecting ``prev_hash == H`` instead of at
position 1 after the genesis hash, and re-hashes everything from there.

Why this keeps the audit tamper-evident:

- the checkpoint is itself a chained record (after the records it removes), so
  editing it breaks its own hash, and deleting it makes the retained part start
  at a position nothing explains (``missing``);
- the first retained record must link to the checkpoint's hash, so records
  removed beyond what the checkpoint names are still ``missing``;
- an anchor an operator kept that falls inside the removed part cannot be checked
  any more; the verifier reports it (``anchor_mismatch``) instead of skipping it,
  because a forged truncation would otherwise hide a rewrite. Save new anchors
  after a retention run (``clearance audit verify --save-anchors``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.audit_tables import AuditRecordRow

TRUNCATE_ACTION = "audit.truncate"  # an admin record whose detail names the last position retention removed
_ADMIN = "admin"  # store.audit_log.RecordKind.ADMIN (not imported: audit_log imports nothing of retention)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The last removed record of a chain: the retained part starts at ``seq + 1``, linked to ``hash``."""

    seq: int
    hash: str


def latest_checkpoint(session: Session, chain: str) -> Checkpoint | None:
    """What the chain's newest truncation record names; None without one, or when it cannot be read as one."""
    text = session.execute(
        select(AuditRecordRow.record)
        .where(AuditRecordRow.chain == chain, AuditRecordRow.kind == _ADMIN, AuditRecordRow.action == TRUNCATE_ACTION)
        .order_by(AuditRecordRow.seq.desc())
        .limit(1)
    ).scalar_one_or_none()
    if text is None:
        return None
    try:
        detail = json.loads(text)["detail"]
        seq, hash_ = detail["through_seq"], detail["through_hash"]
    except (ValueError, KeyError, TypeError):
        return None  # verified from the genesis instead: the gap then shows as missing records
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1 or not isinstance(hash_, str):
        return None
    return Checkpoint(seq=seq, hash=hash_)


def retained_start(session: Session, chain: str) -> Checkpoint | None:
    """Where verification of ``chain`` starts: its checkpoint when the records it names are gone, else None.

    When records at or before the checkpoint are still present, the chain is
    verified from its genesis: nothing is skipped that is there to be checked.
    """
    mark = latest_checkpoint(session, chain)
    if mark is None:
        return None
    first = session.execute(select(func.min(AuditRecordRow.seq)).where(AuditRecordRow.chain == chain)).scalar()
    return mark if first is not None and first > mark.seq else None
