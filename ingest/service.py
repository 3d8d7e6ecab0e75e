"""Ingestion as an admin uses it: which folders may be ingested, into which tenant, and the job history.

Policy lives here, not in routes: a job ingests a folder under an allowed root
into the admin's own tenant, and an admin only ever sees their tenant's jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from core.errors import InvalidInputError, NotFoundError
from ingest.jobs import JobRecord, JobStore
from ingest.runner import BackgroundJobs
from ingest.source import FilesystemSource


class IngestionService:
    """Starts, lists and reads ingestion jobs on behalf of a tenant's admin."""

    def __init__(self, *, runner: BackgroundJobs, jobs: JobStore, allowed_roots: Sequence[Path]) -> None:
        self._runner = runner
        self._jobs = jobs
        self._roots = tuple(root.expanduser().resolve() for root in allowed_roots)

    def start(self, *, tenant_id: str, path: str) -> JobRecord:
        """Queue a job for ``path``; its ACL entries are qualified with ``tenant_id``."""
        folder = Path(path).expanduser().resolve()
        if not any(folder == root or folder.is_relative_to(root) for root in self._roots):
            raise InvalidInputError(
                "path is outside the folders allowed for ingestion (CLEARANCE_INGEST__ALLOWED_ROOTS)"
            )
        return self._runner.submit(FilesystemSource(root=folder, tenant_id=tenant_id))

    def list(self, *, tenant_id: str, limit: int) -> list[JobRecord]:
        return self._jobs.list(limit=limit, tenant_id=tenant_id)

    def get(self, *, tenant_id: str, job_id: str) -> JobRecord:
        job = self._jobs.get(job_id)
        if job.tenant_id != tenant_id:
            raise NotFoundError(f"no job {job_id!r}")  # another tenant's jobs do not exist for this admin
        return job

    def wait_idle(self) -> None:
        """Blocks until every queued job has finished (tests, shutdown)."""
        self._runner.wait_idle()

    def close(self) -> None:
        self._runner.stop()
