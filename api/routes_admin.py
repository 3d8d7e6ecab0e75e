"""Admin routes: ingestion jobs (Clearance.Admin role)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query

from api.auth import AdminPrincipal, RuntimeDep
from api.schemas import IngestJobRequest
from clearance.errors import InvalidInputError, NotFoundError
from ingest.source import FilesystemSource

router = APIRouter(prefix="/v1/ingest", tags=["admin"])


@router.post("/jobs", status_code=202, summary="Start an ingestion job for a folder (runs in the background)")
def start_job(body: IngestJobRequest, admin: AdminPrincipal, runtime: RuntimeDep) -> dict[str, Any]:
    folder = Path(body.path).expanduser().resolve()
    roots = [root.expanduser().resolve() for root in runtime.settings.ingest.allowed_roots]
    if not any(folder == root or folder.is_relative_to(root) for root in roots):
        raise InvalidInputError("path is outside the folders allowed for ingestion (CLEARANCE_INGEST__ALLOWED_ROOTS)")
    # An admin ingests into their own tenant only: ACL entries are qualified with it.
    source = FilesystemSource(root=folder, tenant_id=admin.tenant_id)
    return runtime.background.submit(source).to_dict()


@router.get("/jobs", summary="Recent ingestion jobs, newest first")
def list_jobs(
    admin: AdminPrincipal, runtime: RuntimeDep, limit: int = Query(default=20, ge=1, le=200)
) -> dict[str, Any]:
    return {"jobs": [job.to_dict() for job in runtime.jobs.list(limit=limit) if job.tenant_id == admin.tenant_id]}


@router.get("/jobs/{job_id}", summary="One ingestion job: status, counts, per-file errors, timings")
def get_job(job_id: str, admin: AdminPrincipal, runtime: RuntimeDep) -> dict[str, Any]:
    job = runtime.jobs.get(job_id)
    if job.tenant_id != admin.tenant_id:
        raise NotFoundError(f"no job {job_id!r}")  # another tenant's jobs do not exist for this admin
    return job.to_dict()
