"""Ingestion as an admin uses it: which folders may be ingested, into which tenant, and the job history.

Policy lives here, not in routes. Allowed roots are bound to a tenant: an admin
may only start a job for a folder under one of their own tenant's roots (never
another tenant's documents published under their tenant's ACL keys), and only
ever sees their own tenant's jobs. A job for a subfolder is scoped to it, but
its ACLs are resolved from the allowed root down, so a deny set above the
subfolder still applies and a file has one identity whichever job indexed it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from core.errors import InvalidInputError, NotFoundError
from ingest.jobs import JobRecord, JobRecordStore
from ingest.runner import JobRunner
from ingest.source import FilesystemSource


class IngestionService:
    """Starts, lists and reads ingestion jobs on behalf of a tenant's admin."""

    def __init__(self, *, runner: JobRunner, jobs: JobRecordStore, allowed_roots: Mapping[str, Sequence[Path]]) -> None:
        self._runner = runner
        self._jobs = jobs
        self._roots = {
            tenant: tuple(root.expanduser().resolve() for root in roots) for tenant, roots in allowed_roots.items()
        }

    def start(self, *, tenant_id: str, path: str) -> JobRecord:
        """Queue a job for ``path``, a folder under one of ``tenant_id``'s allowed roots."""
        try:
            # No `~` expansion: the path is the server's, named by a remote admin.
            folder = Path(path).resolve()
        except (ValueError, RuntimeError, OSError):  # a NUL byte, a symlink loop, an unreadable component
            folder = None
        if folder is None or "\x00" in path:
            raise InvalidInputError(
                "path is outside the folders your tenant may ingest (CLEARANCE_INGEST__ALLOWED_ROOTS)"
            )
        root = next(
            (r for r in self._roots.get(tenant_id, ()) if folder == r or folder.is_relative_to(r)),
            None,
        )
        if root is None:
            # The same answer whether the folder belongs to another tenant or to nobody: no probing.
            raise InvalidInputError(
                "path is outside the folders your tenant may ingest (CLEARANCE_INGEST__ALLOWED_ROOTS)"
            )
        return self._runner.submit(FilesystemSource(root=root, tenant_id=tenant_id, scope=folder))

    def list(self, *, tenant_id: str, limit: int) -> list[JobRecord]:
        return self._jobs.list(limit=limit, tenant_id=tenant_id)

    def get(self, *, tenant_id: str, job_id: str) -> JobRecord:
        job = self._jobs.get(job_id)
        if job.tenant_id != tenant_id:
            raise NotFoundError(f"no job {job_id!r}")  # another tenant's jobs do not exist for this admin
        return job

    def cancel(self, *, tenant_id: str, job_id: str) -> JobRecord:
        """Ask for one of ``tenant_id``'s jobs to stop (see ``JobRecordStore.request_cancel``); a finished job is
        returned unchanged."""
        self.get(tenant_id=tenant_id, job_id=job_id)  # another tenant's job does not exist for this admin
        return self._jobs.request_cancel(job_id)

    def wait_idle(self) -> None:
        """Blocks until every queued job has finished (tests, shutdown)."""
        self._runner.wait_idle()

    def close(self) -> None:
        self._runner.stop()
