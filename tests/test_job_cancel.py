"""Cancelling ingestion jobs: a queued job never starts, a running one stops between files and ends ``cancelled``.

The request lives in the job store, so it reaches whichever process runs the job: the
API's job thread, a `clearance worker` (a real subprocess on a Redis queue below), or a
`clearance ingest` elsewhere. Store-backed rules run on SQLite, PostgreSQL and the file store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from clearance.compose import Runtime, build_api
from core.errors import NotFoundError
from index.embedding import SentenceTransformerEmbedder
from index.qdrant import QdrantChunkIndex, open_client
from ingest.job_queue import JobQueue, QueuedJobs
from ingest.jobs import CANCELLED_BEFORE_START, JobRecordStore, JobStatus, JobStore
from ingest.parse import DEFAULT_LIMITS, parse_document
from ingest.parse.elements import ParsedDocument
from ingest.pipeline import IngestionPipeline
from ingest.runner import BackgroundJobs
from ingest.service import IngestionService
from ingest.source import FilesystemSource
from store.audit_log import RecordKind
from store.audit_query import AuditQuery
from tests import store_fixtures
from tests.conftest import OTHER_TENANT, TENANT
from tests.test_queue_workers import (  # the queue tests' Redis fixtures and worker harness
    WorkerProcess,
    namespace,
    queues,
    redis_client,
    shared_job_store,
    stop_all,
    wait_for,
    worker_env,
    write_source,
)

__all__ = ["namespace", "queues", "redis_client"]  # fixtures, imported to be found by pytest
ADMIN = "a0000000-0000-4000-8000-0000000000ad"


@pytest.fixture(params=["sqlite", "postgresql", "files"])
def records(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobRecordStore]:
    """The job store on each backend: the state store on SQLite and PostgreSQL, and the JSON-file store."""
    if request.param == "files":
        yield JobStore(root=tmp_path / "jobs")
        return
    for target in store_fixtures.store_target(request.param, tmp_path):
        store = target.open()
        try:
            yield store.jobs
        finally:
            store.close()


# -- the request in the store ------------------------------------------------------------


def test_a_queued_job_cancelled_is_final_even_when_a_runner_raced_it(records: JobRecordStore) -> None:
    job = records.create(source="corpus", tenant_id=TENANT)
    stale = records.get(job.id)  # what a runner read just before the request
    cancelled = records.request_cancel(job.id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.started_at is None
    assert cancelled.finished_at is not None and cancelled.failure == CANCELLED_BEFORE_START
    stale.status = JobStatus.RUNNING
    records.save(stale)
    assert records.get(job.id).status is JobStatus.CANCELLED


def test_a_running_jobs_request_survives_the_runners_own_saves(records: JobRecordStore) -> None:
    job = records.create(source="corpus", tenant_id=TENANT)
    job.status = JobStatus.RUNNING
    records.save(job)
    requested = records.request_cancel(job.id)
    assert requested.status is JobStatus.RUNNING and requested.cancel_requested_at is not None
    job.files_done = 3  # the runner's copy predates the request and is saved whole
    records.save(job)
    again = records.get(job.id)
    assert again.files_done == 3 and again.cancel_requested_at == requested.cancel_requested_at


def test_a_finished_job_is_not_changed_by_a_request(records: JobRecordStore) -> None:
    job = records.create(source="corpus", tenant_id=TENANT)
    job.status = JobStatus.SUCCEEDED
    records.save(job)
    after = records.request_cancel(job.id)
    assert after.status is JobStatus.SUCCEEDED and after.cancel_requested_at is None


def test_cancelling_an_unknown_job_is_not_found(records: JobRecordStore) -> None:
    with pytest.raises(NotFoundError):
        records.request_cancel("job-20990101-000000-000000-abcdef")


def test_a_queued_jobs_cancellation_is_its_audited_finish(tmp_path: Path) -> None:
    for target in store_fixtures.store_target("sqlite", tmp_path):
        store = target.open()
        try:
            job = store.jobs.create(source="corpus", tenant_id=TENANT)
            store.jobs.request_cancel(job.id)
            store.jobs.request_cancel(job.id)  # a second request is no second finish
            actions = [(r.action, r.outcome) for r in store.reader.page(AuditQuery(tenant_id=TENANT))]
            assert actions == [("ingest.job.finish", "cancelled")]
        finally:
            store.close()


# -- the pipeline and the in-process runner ---------------------------------------------------


class Gate:
    """A parser that parses for real, runs ``on_file`` before each file, and can hold files until opened."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.opened.set()
        self.parsed: list[Path] = []
        self.on_file: Callable[[Path], None] = lambda path: None

    def __call__(self, path: Path) -> ParsedDocument:
        self.parsed.append(path.resolve())
        self.on_file(path)
        assert self.opened.wait(timeout=60), "the test never opened the gate"
        return parse_document(path, limits=DEFAULT_LIMITS)


def memory_index(dimension: int) -> QdrantChunkIndex:
    index = QdrantChunkIndex(client=open_client(":memory:"), collection="chunks", dimension=dimension)
    index.ensure_schema()
    return index


def pipeline_over(
    index: QdrantChunkIndex, embedder: SentenceTransformerEmbedder, jobs: JobRecordStore, gate: Gate
) -> IngestionPipeline:
    """Small embedder calls and a store read at every check, so a request lands between two files."""
    return IngestionPipeline(
        index=index, embedder=embedder, jobs=jobs, parser=gate, embed_batch_chunks=2, cancel_poll_s=0.0
    )


def indexed_paths(index: QdrantChunkIndex, source: FilesystemSource) -> set[str]:
    return set(index.document_states(tenant_id=source.tenant_id, source_id=source.source_id))


def test_a_running_job_stops_between_files_and_leaves_no_half_document(
    records: JobRecordStore, embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    write_source(corpus, files=12)
    source = FilesystemSource(root=corpus, tenant_id=TENANT)
    index, gate = memory_index(embedder.dimension), Gate()
    job = records.create(source="corpus", tenant_id=TENANT)

    def cancel_at_the_fifth_file(path: Path) -> None:
        if len(gate.parsed) == 5:
            records.request_cancel(job.id)

    gate.on_file = cancel_at_the_fifth_file
    result = pipeline_over(index, embedder, records, gate).run(source, job=job)

    stored = records.get(job.id)
    assert result.status is JobStatus.CANCELLED and stored.status is JobStatus.CANCELLED
    assert stored.failure == f"cancelled after {stored.files_done} of 12 files"
    assert stored.files_done < 12 and len(gate.parsed) < 12
    # Every document the record counts is whole in the index, and nothing else is there.
    assert len(indexed_paths(index, source)) == stored.counts["added"]
    for path, state in index.document_states(tenant_id=TENANT, source_id=source.source_id).items():
        parsed = parse_document(corpus / path, limits=DEFAULT_LIMITS)
        assert parsed and len(index.chunk_ids(state.doc_id)) >= 1
    assert index.count(live_only=False) == index.count()  # nothing left staged

    gate.on_file = lambda path: None
    rerun = pipeline_over(index, embedder, records, gate).run(source)
    assert rerun.status is JobStatus.SUCCEEDED and rerun.counts["added"] == 12 - stored.counts["added"]


def test_in_process_queued_job_cancelled_never_starts_and_running_one_stops(
    records: JobRecordStore, embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    first_root, second_root = tmp_path / "corpus" / "first", tmp_path / "corpus" / "second"
    write_source(first_root, files=6)
    write_source(second_root, files=2)
    index, gate = memory_index(embedder.dimension), Gate()
    gate.opened.clear()  # the first job waits inside its first file
    runner = BackgroundJobs(pipeline=pipeline_over(index, embedder, records, gate), jobs=records)
    service = IngestionService(runner=runner, jobs=records, allowed_roots={TENANT: [tmp_path / "corpus"]})
    try:
        first = service.start(tenant_id=TENANT, path=str(first_root))
        second = service.start(tenant_id=TENANT, path=str(second_root))
        wait_for(lambda: records.get(first.id).status is JobStatus.RUNNING, timeout=30, what="the first job")
        with pytest.raises(NotFoundError):  # another tenant's admin cannot touch it
            service.cancel(tenant_id=OTHER_TENANT, job_id=second.id)
        assert service.cancel(tenant_id=TENANT, job_id=second.id).status is JobStatus.CANCELLED
        assert service.cancel(tenant_id=TENANT, job_id=first.id).status is JobStatus.RUNNING
        gate.opened.set()
        service.wait_idle()
    finally:
        service.close()

    first_done, second_done = records.get(first.id), records.get(second.id)
    assert first_done.status is JobStatus.CANCELLED and first_done.files_done < 6
    assert second_done.status is JobStatus.CANCELLED and second_done.started_at is None
    assert gate.parsed and not [path for path in gate.parsed if second_root.resolve() in path.parents]
    assert indexed_paths(index, FilesystemSource(root=second_root, tenant_id=TENANT)) == set()


# -- the API and the CLI ------------------------------------------------------------------------------


def admin_headers(
    runtime: Runtime, *, tenant: str = TENANT, roles: tuple[str, ...] = ("Clearance.Admin",)
) -> dict[str, str]:
    assert runtime.dev is not None
    token = runtime.dev.idp.mint(tenant_id=tenant, object_id=ADMIN, roles=list(roles))
    return {"Authorization": f"Bearer {token}"}


def test_admin_cancels_own_tenants_job_through_the_api_and_is_audited(runtime: Runtime) -> None:
    client = TestClient(build_api(runtime.settings, runtime=runtime))
    assert runtime.store is not None
    queued = runtime.store.jobs.create(source="corpus", tenant_id=TENANT)  # waiting for a runner
    finished = runtime.store.jobs.create(source="corpus", tenant_id=TENANT)
    finished.status = JobStatus.SUCCEEDED
    runtime.store.jobs.save(finished)

    member = client.post(f"/v1/ingest/jobs/{queued.id}/cancel", headers=admin_headers(runtime, roles=()))
    assert member.status_code == 403
    other = client.post(f"/v1/ingest/jobs/{queued.id}/cancel", headers=admin_headers(runtime, tenant=OTHER_TENANT))
    # The same answer as for an id that exists nowhere: another tenant's jobs cannot be probed.
    nowhere = client.post("/v1/ingest/jobs/job-20990101-000000-000000-abcdef/cancel", headers=admin_headers(runtime))
    assert other.status_code == nowhere.status_code == 404
    assert other.json()["detail"].replace(queued.id, "ID") == nowhere.json()["detail"].replace(
        "job-20990101-000000-000000-abcdef", "ID"
    )
    assert runtime.store.jobs.get(queued.id).status is JobStatus.QUEUED

    reply = client.post(f"/v1/ingest/jobs/{queued.id}/cancel", headers=admin_headers(runtime))
    assert reply.status_code == 202, reply.text
    assert reply.json()["status"] == "cancelled" and reply.json()["cancel_requested_at"] is not None
    done = client.post(f"/v1/ingest/jobs/{finished.id}/cancel", headers=admin_headers(runtime))
    assert done.status_code == 202 and done.json()["status"] == "succeeded"

    audit = runtime.store.reader.page(AuditQuery(tenant_id=TENANT, kinds=(RecordKind.ADMIN,)))
    asked = [
        (r.actor, r.record["target"], r.record["detail"]["status"]) for r in audit if r.action == "ingest.job.cancel"
    ]
    assert sorted(asked) == sorted([(ADMIN, queued.id, "cancelled"), (ADMIN, finished.id, "succeeded")])
    assert runtime.store.reader.page(AuditQuery(tenant_id=OTHER_TENANT, kinds=(RecordKind.ADMIN,))) == []


def test_cli_cancels_a_queued_job_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clearance.cli import app
    from clearance.compose import build_store
    from clearance.settings import Settings

    monkeypatch.setenv("CLEARANCE_DATA_DIR", str(tmp_path / "data"))
    store = build_store(Settings(data_dir=tmp_path / "data"))
    try:
        job = store.jobs.create(source="corpus", tenant_id=TENANT)
        runner = CliRunner()
        result = runner.invoke(app, ["jobs", "cancel", job.id])
        assert result.exit_code == 0 and f"{job.id} cancelled" in result.output
        assert store.jobs.get(job.id).status is JobStatus.CANCELLED
        again = runner.invoke(app, ["jobs", "cancel", job.id])
        assert again.exit_code == 0 and "already finished (cancelled)" in again.output, again.output
        unknown = runner.invoke(app, ["jobs", "cancel", "job-nope"])
        assert unknown.exit_code == 2 and "no job" in unknown.output
        audit = store.reader.page(AuditQuery(tenant_id=TENANT, kinds=(RecordKind.ADMIN,)))
        assert [r.actor.startswith("cli:") for r in audit if r.action == "ingest.job.cancel"] == [True, True]
    finally:
        store.close()


# -- a real worker process on the Redis queue -----------------------------------------------


BIG_JOB_FILES = 400


def test_worker_process_drops_a_cancelled_queued_job_and_stops_a_running_one(
    tmp_path: Path, namespace: str, redis_client: redis.Redis, queues: Callable[..., JobQueue]
) -> None:
    corpus, data_dir = tmp_path / "corpus", tmp_path / "data"
    # Big enough that the job cannot finish in the second between its first progress and the cancel
    # (with 120 files a clean-clone CI run once waited 120 s for a cancel that never came).
    write_source(corpus / "big", files=BIG_JOB_FILES, long_every=2)
    write_source(corpus / "small", files=2)
    roots = {TENANT: [corpus / "big", corpus / "small"]}
    store = shared_job_store(data_dir)
    service = IngestionService(runner=QueuedJobs(queue=queues(), jobs=store), jobs=store, allowed_roots=roots)
    worker = WorkerProcess(shard=tmp_path / "shard", log=tmp_path / "worker.log")
    try:
        big = service.start(tenant_id=TENANT, path=str(corpus / "big"))
        small = service.start(tenant_id=TENANT, path=str(corpus / "small"))
        assert service.cancel(tenant_id=TENANT, job_id=small.id).status is JobStatus.CANCELLED  # before any worker
        worker.start(worker_env(data_dir=data_dir, namespace=namespace, roots=roots))
        wait_for(lambda: store.get(big.id).files_done > 0, timeout=240, what="the big job to start", log=worker.log)
        service.cancel(tenant_id=TENANT, job_id=big.id)
        stopped = lambda: store.get(big.id).status is JobStatus.CANCELLED  # noqa: E731
        try:
            wait_for(stopped, timeout=120, what="the big job to stop", log=worker.log)
        except AssertionError as failure:  # say where the job was: finished, still running, failed
            raise AssertionError(f"{failure}\njob record: {store.get(big.id).to_dict()}") from None
        dropped = f"job {small.id} already finished (cancelled)"
        wait_for(lambda: dropped in worker.log.read_text(errors="replace"), timeout=60, what="the drop", log=worker.log)
    finally:
        stop_all(worker)

    big_done, small_done = store.get(big.id), store.get(small.id)
    assert big_done.status is JobStatus.CANCELLED and 0 < big_done.files_done < BIG_JOB_FILES, big_done.to_dict()
    assert small_done.status is JobStatus.CANCELLED and small_done.started_at is None
    assert worker.documents(FilesystemSource(root=corpus / "small", tenant_id=TENANT)) == {}
    written = worker.documents(FilesystemSource(root=corpus / "big", tenant_id=TENANT))
    assert len(written) == big_done.counts["added"]  # whole documents only, as many as the record says
