"""Admin routes: ingestion jobs (Clearance.Admin role). Policy lives in the ingestion service."""

from __future__ import annotations

from fastapi import APIRouter, Query

from api.deps import AdminPrincipal, Audit, Ingestion
from api.schemas import IngestJobRequest, JobList, JobOut

router = APIRouter(prefix="/v1/ingest", tags=["admin"])


@router.post("/jobs", status_code=202, summary="Start an ingestion job for a folder (runs in the background)")
def start_job(body: IngestJobRequest, admin: AdminPrincipal, ingestion: Ingestion, audit: Audit) -> JobOut:
    job = ingestion.start(tenant_id=admin.tenant_id, path=body.path)
    # Who asked for the job: the job record's own start and finish are audited by the job store.
    audit.log.record_admin_action(
        tenant_id=admin.tenant_id,
        actor=admin.object_id,
        action="ingest.job.request",
        target=job.id,
        detail={"source": job.source},
        private={"path": body.path},
    )
    return JobOut.of(job)


@router.post(
    "/jobs/{job_id}/cancel",
    status_code=202,
    summary="Cancel an ingestion job: a queued one never starts, a running one stops after the files in hand",
)
def cancel_job(job_id: str, admin: AdminPrincipal, ingestion: Ingestion, audit: Audit) -> JobOut:
    job = ingestion.cancel(tenant_id=admin.tenant_id, job_id=job_id)
    # Who asked; the job's own end (status cancelled) is audited by the job store when it comes.
    audit.log.record_admin_action(
        tenant_id=admin.tenant_id,
        actor=admin.object_id,
        action="ingest.job.cancel",
        target=job.id,
        detail={"source": job.source, "status": job.status.value},
    )
    return JobOut.of(job)


@router.get("/jobs", summary="Recent ingestion jobs of your tenant, newest first")
def list_jobs(admin: AdminPrincipal, ingestion: Ingestion, limit: int = Query(default=20, ge=1, le=200)) -> JobList:
    return JobList(jobs=[JobOut.of(job) for job in ingestion.list(tenant_id=admin.tenant_id, limit=limit)])


@router.get("/jobs/{job_id}", summary="One ingestion job: status, counts, per-file errors, timings")
def get_job(job_id: str, admin: AdminPrincipal, ingestion: Ingestion) -> JobOut:
    return JobOut.of(ingestion.get(tenant_id=admin.tenant_id, job_id=job_id))
