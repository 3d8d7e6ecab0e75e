"""Audit retention: removing a chain's oldest records while the rest still verifies.

A chain is cut as a prefix: every record up to the last one before the first
record inside the window. (Records are chained in the order they were written;
an answer's time is when it started, so times are nearly but not strictly in
chain order, and a record older than the window can outlive it briefly behind
a younger one.) In one write transaction, holding the chain's head lock, the
cut appends an ``audit.truncate`` admin record naming the last removed position
and its hash (the checkpoint, :mod:`store.audit_checkpoint`), then deletes the
removed records and their document-index rows. ``clearance audit verify`` then
starts from the checkpoint.

A chain that does not verify is never cut: removing its oldest records could
remove the evidence of tampering. Its problem is reported instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from store.audit_checkpoint import TRUNCATE_ACTION, retained_start
from store.audit_log import AuditLog, lock_head
from store.audit_tables import AuditChunkRow, AuditHead, AuditRecordRow
from store.audit_verify import verify


@dataclass(frozen=True, slots=True)
class Truncation:
    """What audit retention did to one chain (or would do, on a dry run)."""

    chain: str
    removed: int  # records removed (to be removed, on a dry run)
    through_seq: int  # the last removed position; 0 when nothing was removed
    refused: str | None = None  # why the chain was left whole: it does not verify


def truncate_before(log: AuditLog, *, chain: str, cutoff_us: int, actor: str, dry_run: bool = False) -> Truncation:
    """Removes ``chain``'s oldest records written before ``cutoff_us`` (microseconds since the epoch)."""
    with log.database.read() as session:
        base, through = _cut(session, chain, cutoff_us)
        pending = _count(session, chain, base, through)
    if dry_run or pending == 0:
        return Truncation(chain=chain, removed=pending, through_seq=through if pending else 0)
    checked = verify(log.database, chains=[chain])
    if not checked.ok:
        return Truncation(chain=chain, removed=0, through_seq=0, refused=checked.problems[0].describe())
    with log.database.write() as session:
        lock_head(session, chain)  # no append slips between choosing the cut and making it
        base, through = _cut(session, chain, cutoff_us)
        removed = _count(session, chain, base, through)
        if removed == 0:
            return Truncation(chain=chain, removed=0, through_seq=0)
        through_hash = session.execute(
            select(AuditRecordRow.hash).where(AuditRecordRow.chain == chain, AuditRecordRow.seq == through)
        ).scalar_one()
        # The checkpoint first: it is chained after the records it names, in the transaction that removes them.
        log.record_admin_action(
            tenant_id=chain,
            actor=actor,
            action=TRUNCATE_ACTION,
            detail={"through_seq": through, "through_hash": through_hash, "removed": removed, "before_us": cutoff_us},
            session=session,
        )
        session.execute(delete(AuditChunkRow).where(AuditChunkRow.chain == chain, AuditChunkRow.seq <= through))
        session.execute(delete(AuditRecordRow).where(AuditRecordRow.chain == chain, AuditRecordRow.seq <= through))
    return Truncation(chain=chain, removed=removed, through_seq=through)


def chains(log: AuditLog) -> list[str]:
    """Every chain that has a head (every tenant that was ever audited, and the system chain)."""
    with log.database.read() as session:
        return list(session.execute(select(AuditHead.chain).order_by(AuditHead.chain)).scalars())


def _cut(session: Session, chain: str, cutoff_us: int) -> tuple[int, int]:
    """(base, through): the chain now starts after ``base``; a cut would remove up to ``through``."""
    start = retained_start(session, chain)
    base = start.seq if start is not None else 0
    head = session.execute(select(AuditHead.seq).where(AuditHead.chain == chain)).scalar_one_or_none() or 0
    first_kept = session.execute(
        select(func.min(AuditRecordRow.seq)).where(
            AuditRecordRow.chain == chain, AuditRecordRow.seq > base, AuditRecordRow.at_us >= cutoff_us
        )
    ).scalar()
    through = head if first_kept is None else int(first_kept) - 1
    return base, through


def _count(session: Session, chain: str, base: int, through: int) -> int:
    """Records present in (base, through]: what a cut removes."""
    if through <= base:
        return 0
    query = select(func.count()).select_from(AuditRecordRow)
    where = (AuditRecordRow.chain == chain, AuditRecordRow.seq > base, AuditRecordRow.seq <= through)
    return int(session.execute(query.where(*where)).scalar_one())
