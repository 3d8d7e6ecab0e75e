"""Ingestion job records in the store: the same calls as ``ingest.jobs.JobStore``, shared by every replica.

A job's start and finish are admin actions: each is chained into the tenant's
audit in the same transaction that saves the record, so the two cannot
disagree. The record itself is kept whole as JSON (``JobRecord.to_dict``, whose
text is always valid UTF-8), with the columns a listing filters and sorts on.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Double, Index, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.errors import NotFoundError
from ingest.jobs import CANCELLED_BEFORE_START, FINISHED, JobIds, JobRecord, JobStatus
from store.audit_log import AuditLog
from store.base import Base
from store.database import Database

INGESTION_ACTOR = "system:ingestion"
_FINISHED = FINISHED


class JobRow(Base):
    __tablename__ = "ingest_jobs"
    __table_args__ = (Index("ix_ingest_jobs_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[float] = mapped_column(Double)
    data: Mapped[str] = mapped_column(Text)  # JobRecord.to_dict() as ASCII JSON


class SqlJobStore:
    """Job records as rows (implements ``ingest.jobs.JobRecordStore``); with ``audit``, starts and finishes
    are admin records of the job's tenant."""

    def __init__(self, *, database: Database, audit: AuditLog | None = None) -> None:
        self._database = database
        self._audit = audit
        self._ids = JobIds()

    def create(self, *, source: str, tenant_id: str) -> JobRecord:
        """A new queued record under an id no other record has (an insert, never an overwrite)."""
        while True:
            job = JobRecord(id=self._new_id(), source=source, tenant_id=tenant_id)
            try:
                with self._database.write() as session:
                    session.add(_row(job))
                    self._audit_transition(session, job, None)
            except IntegrityError:  # another process made the same id in the same microsecond
                continue
            return job

    def _new_id(self) -> str:
        return self._ids.next()  # the file store's format: ids sort in creation order

    def save(self, job: JobRecord) -> None:
        """Replaces the record of ``job.id`` whole; a change to running or finished is audited with it.

        Two things of the stored record survive a save, read in the same locked transaction:
        a cancellation request (the runner's copy may predate it), and a ``cancelled``
        status (a queued job cancelled while a runner was about to start it stays cancelled).
        """
        with self._database.write() as session:
            row = session.execute(select(JobRow).where(JobRow.id == job.id).with_for_update()).scalar_one_or_none()
            before = JobStatus(row.status) if row is not None else None
            if row is not None:
                stored = _record(row)
                if before is JobStatus.CANCELLED:
                    return
                job.cancel_requested_at = job.cancel_requested_at or stored.cancel_requested_at
            if row is None:
                session.add(_row(job))
            else:
                row.status, row.data = job.status.value, _data(job)
            self._audit_transition(session, job, before)

    def _audit_transition(self, session: Session, job: JobRecord, before: JobStatus | None) -> None:
        if self._audit is None or before is job.status:
            return
        if job.status is JobStatus.RUNNING:
            action, detail = "ingest.job.start", {"source": job.source}
        elif job.status in _FINISHED and before not in _FINISHED:
            action, detail = "ingest.job.finish", _summary(job)
        else:
            return
        self._audit.record_admin_action(
            tenant_id=job.tenant_id,
            actor=INGESTION_ACTOR,
            action=action,
            target=job.id,
            detail=detail,
            outcome=job.status.value,
            session=session,
        )

    def request_cancel(self, job_id: str) -> JobRecord:
        """See ``JobRecordStore.request_cancel``; a queued job's cancellation is audited as its finish."""
        with self._database.write() as session:
            row = session.execute(select(JobRow).where(JobRow.id == job_id).with_for_update()).scalar_one_or_none()
            if row is None:
                raise NotFoundError(f"no job {job_id!r}")
            job = _record(row)
            if job.status in _FINISHED:
                return job
            before, now = job.status, time.time()
            job.cancel_requested_at = job.cancel_requested_at or now
            if before is JobStatus.QUEUED:
                job.status, job.finished_at, job.failure = JobStatus.CANCELLED, now, CANCELLED_BEFORE_START
            row.status, row.data = job.status.value, _data(job)
            self._audit_transition(session, job, before)
            return job

    def get(self, job_id: str) -> JobRecord:
        with self._database.read() as session:
            row = session.get(JobRow, job_id)
        if row is None:
            raise NotFoundError(f"no job {job_id!r}")
        return _record(row)

    def list(self, *, limit: int = 50, tenant_id: str | None = None) -> list[JobRecord]:
        """Newest first; with ``tenant_id``, that tenant's jobs only (filtered before the limit)."""
        query = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(limit)
        if tenant_id is not None:
            query = query.where(JobRow.tenant_id == tenant_id)
        with self._database.read() as session:
            return [_record(row) for row in session.execute(query).scalars()]


def _data(job: JobRecord) -> str:
    return json.dumps(job.to_dict(), ensure_ascii=True, separators=(",", ":"))


def _row(job: JobRecord) -> JobRow:
    return JobRow(
        id=job.id, tenant_id=job.tenant_id, status=job.status.value, created_at=job.created_at, data=_data(job)
    )


def _record(row: JobRow) -> JobRecord:
    return JobRecord.from_dict(json.loads(row.data))


def _summary(job: JobRecord) -> dict[str, Any]:
    """What a finish record keeps: counts and timings, not the per-file messages (they name files)."""
    return {
        "source": job.source,
        "counts": dict(job.counts),
        "chunks_written": job.chunks_written,
        "errors": len(job.errors),
        "warnings": len(job.warnings),
        "duration_s": job.duration_s,
        "failure": job.failure is not None,
    }
