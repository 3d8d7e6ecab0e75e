"""Ingestion job records in the store: the file store's calls, each tenant's own, starts and finishes audited."""

from __future__ import annotations

import json

import pytest

from core.errors import NotFoundError
from ingest.jobs import FileIssue, FileOutcome, JobRecordStore, JobStatus
from store.audit_query import AuditQuery
from store.audit_verify import verify
from store.state import Store
from tests import store_fixtures
from tests.conftest import OTHER_TENANT, TENANT

# Fixtures shared by the store's test modules (each runs on SQLite and on PostgreSQL).
target = store_fixtures.target
state_store = store_fixtures.state_store


def test_a_job_is_saved_and_read_back_whole(state_store: Store) -> None:
    job = state_store.jobs.create(source="corpus", tenant_id=TENANT)
    job.status, job.started_at = JobStatus.RUNNING, job.created_at + 1
    job.record(FileOutcome.ADDED)
    job.errors.append(FileIssue("bad-\udcff.pdf", "encrypted PDF (password required)"))
    state_store.jobs.save(job)
    again = state_store.jobs.get(job.id)
    assert again.status is JobStatus.RUNNING and again.counts["added"] == 1
    assert again.errors == [FileIssue("bad-\\xff.pdf", "encrypted PDF (password required)")]


def test_listing_is_newest_first_and_per_tenant(state_store: Store) -> None:
    ours = [state_store.jobs.create(source=f"s{n}", tenant_id=TENANT) for n in range(3)]
    state_store.jobs.create(source="theirs", tenant_id=OTHER_TENANT)
    assert [j.id for j in state_store.jobs.list(tenant_id=TENANT)] == [j.id for j in reversed(ours)]
    assert [j.id for j in state_store.jobs.list(tenant_id=TENANT, limit=2)] == [ours[2].id, ours[1].id]
    assert len(state_store.jobs.list()) == 4


def test_the_sql_store_is_a_job_record_store(state_store: Store) -> None:
    records: JobRecordStore = state_store.jobs  # mypy checks the protocol; the call checks it runs
    assert records.list(limit=1) == []


def test_an_unknown_job_is_not_found(state_store: Store) -> None:
    with pytest.raises(NotFoundError):
        state_store.jobs.get("job-20990101-000000-000000-abcdef")


def test_a_job_start_and_finish_are_admin_records_of_its_tenant(state_store: Store) -> None:
    job = state_store.jobs.create(source="corpus", tenant_id=TENANT)
    job.status = JobStatus.RUNNING
    state_store.jobs.save(job)
    state_store.jobs.save(job)  # progress saves while running record nothing new
    job.status = JobStatus.COMPLETED_WITH_ERRORS
    job.errors.append(FileIssue("secret-plans.docx", "unreadable"))
    state_store.jobs.save(job)
    state_store.jobs.save(job)  # saving a finished job again is not a second finish
    records = state_store.reader.page(AuditQuery(tenant_id=TENANT))
    assert [(r.action, r.outcome, r.actor) for r in records] == [
        ("ingest.job.start", "running", "system:ingestion"),
        ("ingest.job.finish", "completed_with_errors", "system:ingestion"),
    ]
    finish = records[1].record
    assert finish["target"] == job.id and finish["detail"]["errors"] == 1
    assert "secret-plans" not in json.dumps(finish)  # counts, not file names
    assert state_store.reader.page(AuditQuery(tenant_id=OTHER_TENANT)) == []
    assert verify(state_store.database).ok
