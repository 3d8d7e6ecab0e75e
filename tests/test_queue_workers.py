"""Ingestion workers on a Redis queue (dramatiq): exactly-once ingestion, retries, lost workers, isolation.

Needs the Redis at 127.0.0.1:6379 (skipped with a message where none answers). Every test
uses its own key namespace and deletes it afterwards. Worker processes are real
subprocesses running :func:`clearance.worker.run_worker`, the body of `clearance worker`
after its index check (see ``test_two_workers_ingest_every_file_exactly_once`` for why).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from clearance.compose import build_indexing, build_job_runner, build_runtime
from clearance.settings import IndexSettings, QueueSettings, Settings
from clearance.worker import queued_runner
from core.errors import IndexUnavailableError, InvalidInputError, NotFoundError
from core.records import DocumentState
from index.edge import EdgeChunkIndex
from index.embedding import SentenceTransformerEmbedder
from index.qdrant import QdrantChunkIndex, open_client
from ingest.chunk import chunk_document
from ingest.job_queue import ACTOR_NAME, JobConsumer, JobMessage, JobQueue, QueueConfig, QueuedJobs, start_worker
from ingest.jobs import JobRecord, JobRecordStore, JobStatus, JobStore
from ingest.parse import DEFAULT_LIMITS, parse_document
from ingest.pipeline import IngestionPipeline
from ingest.runner import BackgroundJobs
from ingest.service import IngestionService
from ingest.source import FilesystemSource
from ingest.source_lock import SourceLock, source_lock_key
from tests.conftest import G1, OTHER_TENANT, REPO_ROOT, TENANT, write_acl, write_doc

REDIS_URL = "redis://127.0.0.1:6379/0"
FINISHED = {JobStatus.SUCCEEDED, JobStatus.COMPLETED_WITH_ERRORS, JobStatus.FAILED}
SECTION = (
    "The travel policy covers flights, hotels and meals for employees on company business. "
    "Receipts are filed within thirty days, and the per diem depends on the destination city. "
)


@pytest.fixture()
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError:
        client.close()
        pytest.skip("no Redis answers at 127.0.0.1:6379: the ingestion queue tests need one")
    yield client
    client.close()


@pytest.fixture()
def namespace(redis_client: redis.Redis) -> Iterator[str]:
    name = f"clearance-test-{uuid.uuid4().hex[:12]}"
    yield name
    keys = list(redis_client.scan_iter(f"{name}:*"))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture()
def queues(namespace: str) -> Iterator[Callable[..., JobQueue]]:
    """Opens queues in this test's namespace (timings of :func:`config`, with changes) and closes them after it."""
    opened: list[JobQueue] = []

    def open_queue(**changes: Any) -> JobQueue:
        opened.append(JobQueue(config(namespace, **changes)))
        return opened[-1]

    yield open_queue
    for queue in opened:
        queue.close()


def config(namespace: str, **changes: Any) -> QueueConfig:
    """Queue timings shrunk from minutes to a fraction of a second, so the tests stay short."""
    values: dict[str, Any] = {
        "redis_url": REDIS_URL,
        "namespace": namespace,
        "min_backoff_seconds": 0.3,
        "max_backoff_seconds": 2.0,
        "lock_ttl_seconds": 10.0,
        "busy_retry_seconds": 0.3,
        "heartbeat_timeout_seconds": 10.0,
        "dead_worker_sweep_percent": 100.0,
    }
    return QueueConfig(**(values | changes))


def write_source(root: Path, *, files: int, long_every: int = 3) -> dict[str, str]:
    """A folder of Markdown files readable by group G1; every ``long_every``-th file spans several chunks."""
    write_acl(root, allow=[f"group:{G1}"])
    written = {}
    for number in range(files):
        sections = 4 if number % long_every == 0 else 1
        text = "\n\n".join(f"## Part {part}\n\n{SECTION * 3}" for part in range(sections))
        name = f"note-{number:02d}.md"
        write_doc(root, name, f"# {root.name} note {number}\n\n{text}\n")
        written[name] = text
    return written


def expected_chunks(root: Path) -> dict[str, int]:
    """Chunks per file as the worker's own parser and chunker make them (default settings)."""
    return {
        path.name: len(chunk_document(parse_document(path, limits=DEFAULT_LIMITS)))
        for path in sorted(root.glob("*.md"))
    }


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")
        time.sleep(0.05)


@dataclass
class WorkerProcess:
    """One `clearance worker` body in a subprocess, with its own edge shard and log file."""

    shard: Path
    log: Path
    process: subprocess.Popen[bytes] = field(init=False)

    def start(self, env: dict[str, str]) -> WorkerProcess:
        script = textwrap.dedent(
            """
            import logging
            from clearance.settings import Settings
            from clearance.worker import run_worker
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
            run_worker(Settings())
            """
        )
        environment = env | {"CLEARANCE_INDEX__LOCATION": f"edge:{self.shard}"}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", script], cwd=REPO_ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
        return self.log.exists() and "worker ready" in self.log.read_text(errors="replace")

    def started(self) -> bool:
        return hasattr(self, "process")

    def terminate(self) -> None:
        """SIGTERM: finish the current job, then exit (as a supervisor stops a worker)."""
        if self.started() and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self) -> None:
        if not self.started():
            return
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"worker did not stop on SIGTERM:\n{self.log.read_text()[-3000:]}") from None

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def documents(self, source: FilesystemSource) -> dict[str, int]:
        """Chunks per document of ``source`` in this worker's shard (opened after the worker stopped)."""
        index = EdgeChunkIndex(path=self.shard, dimension=384)
        try:
            states: dict[str, DocumentState] = index.document_states(
                tenant_id=source.tenant_id, source_id=source.source_id
            )
            return {path: len(index.chunk_ids(state.doc_id)) for path, state in states.items()}
        finally:
            index.close()


def stop_all(*workers: WorkerProcess) -> None:
    for worker in workers:  # all at once: each exit takes seconds (torch's teardown)
        worker.terminate()
    for worker in workers:
        worker.wait()


def shared_job_store(data_dir: Path) -> JobRecordStore:
    """The job records the worker processes write: the state store in their data directory
    (SQLite, which several processes on one machine share; PostgreSQL across machines)."""
    from clearance.compose import build_store

    return build_store(Settings(data_dir=data_dir)).jobs


def worker_env(*, data_dir: Path, namespace: str, roots: dict[str, list[Path]], **queue: str) -> dict[str, str]:
    settings = {
        "CLEARANCE_MODE": "production",
        "CLEARANCE_DATA_DIR": str(data_dir),
        "CLEARANCE_INGEST__ALLOWED_ROOTS": json.dumps({t: [str(r) for r in rs] for t, rs in roots.items()}),
        "CLEARANCE_INGEST__ISOLATE_PARSING": "false",
        "CLEARANCE_EMBEDDING__THREADS": "1",
        "CLEARANCE_QUEUE__REDIS_URL": REDIS_URL,
        "CLEARANCE_QUEUE__NAMESPACE": namespace,
        "CLEARANCE_QUEUE__MIN_BACKOFF_SECONDS": "0.3",
        "CLEARANCE_QUEUE__BUSY_RETRY_SECONDS": "0.3",
        "CLEARANCE_QUEUE__LOCK_TTL_SECONDS": "10",
        "CLEARANCE_QUEUE__HEARTBEAT_TIMEOUT_SECONDS": "10",
        "CLEARANCE_QUEUE__DEAD_WORKER_SWEEP_PERCENT": "100",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    settings |= {f"CLEARANCE_QUEUE__{name.upper()}": value for name, value in queue.items()}
    return dict(os.environ) | settings


def all_finished(store: JobRecordStore, jobs: list[JobRecord]) -> Callable[[], bool]:
    return lambda: all(store.get(job.id).status in FINISHED for job in jobs)


def test_two_workers_ingest_every_file_exactly_once(
    tmp_path: Path, namespace: str, redis_client: redis.Redis, queues: Callable[..., JobQueue]
) -> None:
    """Two worker processes, one queue, five jobs over four sources (one source submitted twice at once).

    How exactly-once is checked without a shared index: no Qdrant server runs here, and an
    embedded index belongs to one process, so each worker writes to its own edge shard, and
    the shards are opened after the workers stop. For every source submitted once, each of
    its files is in exactly one shard, with the chunk count the parser and chunker give it,
    and the job records (shared by the test, playing the API, and both workers) count each
    file as added exactly once. Every job ran exactly once (Redis counts each start).

    The source submitted twice tests the per-source lock. The test holds that source's lock
    itself first: both of its jobs must stay queued while the other sources finish (each
    worker takes them, finds the source busy and puts them back). After the release the two
    jobs run one after the other, never overlapping in time. Their effect differs by where
    they land, because the shards are separate: on one worker, the second run finds every
    file unchanged; on two workers, each shard holds one complete copy. Against a shared
    Qdrant server both cases are the first one.
    """
    corpus, data_dir = tmp_path / "corpus", tmp_path / "data"
    names = {"alpha": (TENANT, 6), "beta": (TENANT, 3), "gamma": (TENANT, 2), "delta": (OTHER_TENANT, 3)}
    for name, (_, files) in names.items():
        write_source(corpus / name, files=files)
    roots: dict[str, list[Path]] = {TENANT: [], OTHER_TENANT: []}
    for name, (tenant, _) in names.items():
        roots[tenant].append(corpus / name)
    expected = {name: expected_chunks(corpus / name) for name in names}
    sources = {name: FilesystemSource(root=corpus / name, tenant_id=tenant) for name, (tenant, _) in names.items()}

    env = worker_env(data_dir=data_dir, namespace=namespace, roots=roots)
    workers = [WorkerProcess(shard=tmp_path / f"shard-{n}", log=tmp_path / f"worker-{n}.log") for n in (1, 2)]
    store = shared_job_store(data_dir)
    queue = queues()
    service = IngestionService(runner=QueuedJobs(queue=queue, jobs=store), jobs=store, allowed_roots=roots)
    held = SourceLock(
        client=redis_client,
        key=source_lock_key(namespace=namespace, tenant_id=TENANT, root=str(sources["alpha"].root)),
        ttl_seconds=30,
    )
    try:
        for worker in workers:
            worker.start(env)
        for worker in workers:
            wait_for(worker.ready, timeout=180, what="a worker to start", log=worker.log)
        assert held.acquire()
        alpha = [service.start(tenant_id=TENANT, path=str(corpus / "alpha")) for _ in range(2)]
        others = [
            service.start(tenant_id=names[name][0], path=str(corpus / name)) for name in ("beta", "gamma", "delta")
        ]
        wait_for(all_finished(store, others), timeout=180, what="beta, gamma and delta", log=workers[0].log)
        time.sleep(1.0)  # several busy rounds of both alpha jobs
        assert [store.get(job.id).status for job in alpha] == [JobStatus.QUEUED] * 2, "a job ran on a locked source"
        held.release()
        wait_for(all_finished(store, alpha), timeout=180, what="both alpha jobs", log=workers[1].log)
    finally:
        held.release()
        stop_all(*workers)

    records = {job.id: store.get(job.id) for job in [*alpha, *others]}
    assert {job.status for job in records.values()} == {JobStatus.SUCCEEDED}, records
    assert all(queue.attempts(job_id) == 1 for job_id in records), "a job was started twice"
    shards = [{name: worker.documents(source) for name, source in sources.items()} for worker in workers]
    assert all(any(shard.values()) for shard in shards), "one worker ingested nothing"

    for job, name in zip(others, ["beta", "gamma", "delta"], strict=True):
        holding = [shard[name] for shard in shards if shard[name]]
        assert holding == [expected[name]], f"{name}: not in exactly one shard with its chunks: {holding}"
        record = records[job.id]
        assert record.counts["added"] == record.files_total == len(expected[name])
        assert record.chunks_written == sum(expected[name].values())

    first, second = sorted((records[job.id] for job in alpha), key=lambda job: job.started_at or 0)
    assert first.finished_at is not None and second.started_at is not None
    assert first.finished_at <= second.started_at, "two jobs of one source ran at the same time"
    holding = [shard["alpha"] for shard in shards if shard["alpha"]]
    assert all(copy == expected["alpha"] for copy in holding), holding
    assert first.counts["added"] == len(expected["alpha"])
    if len(holding) == 1:  # both on one worker: the second run had nothing to do
        assert second.counts["unchanged"] == len(expected["alpha"]) and second.chunks_written == 0
    else:
        assert second.counts["added"] == len(expected["alpha"])


def test_job_of_a_killed_worker_runs_again_on_another(
    tmp_path: Path, namespace: str, queues: Callable[..., JobQueue]
) -> None:
    """A worker killed mid-job (SIGKILL: no clean shutdown) loses nothing: once its heartbeat is
    older than the timeout, the job goes back on the queue and another worker runs it to the end."""
    corpus, data_dir = tmp_path / "corpus", tmp_path / "data"
    write_source(corpus / "big", files=30, long_every=2)
    roots = {TENANT: [corpus / "big"]}
    env = worker_env(
        data_dir=data_dir,
        namespace=namespace,
        roots=roots,
        heartbeat_timeout_seconds="2",
        lock_ttl_seconds="2",
    )
    store = shared_job_store(data_dir)
    queue = queues()
    workers = [WorkerProcess(shard=tmp_path / f"shard-{n}", log=tmp_path / f"worker-{n}.log") for n in (1, 2)]
    try:
        for worker in workers:
            worker.start(env)
        for worker in workers:
            wait_for(worker.ready, timeout=180, what="a worker to start", log=worker.log)
        job = QueuedJobs(queue=queue, jobs=store).submit(FilesystemSource(root=corpus / "big", tenant_id=TENANT))
        wait_for(lambda: store.get(job.id).status is JobStatus.RUNNING, timeout=60, what="the job to start")
        taken = f"job {job.id}: attempt 1 "
        wait_for(lambda: any(taken in w.log.read_text(errors="replace") for w in workers), timeout=10, what="a log")
        lost, survivor = workers if taken in workers[0].log.read_text(errors="replace") else workers[::-1]
        lost.kill()
        interrupted = store.get(job.id)
        assert interrupted.status is JobStatus.RUNNING and interrupted.files_done < 30, "killed too late"
        wait_for(all_finished(store, [job]), timeout=180, what="the job to finish elsewhere", log=survivor.log)
    finally:
        stop_all(*workers)
    done = store.get(job.id)
    assert done.status is JobStatus.SUCCEEDED and queue.attempts(job.id) == 2
    assert done.counts["added"] == 30 and done.files_done == 30  # counters of the lost run do not add up
    source = FilesystemSource(root=corpus / "big", tenant_id=TENANT)
    assert survivor.documents(source) == expected_chunks(corpus / "big")


class FlakyIndex(QdrantChunkIndex):
    """The real in-memory index behind a network that refuses the first ``failures`` job starts."""

    def __init__(self, *, failures: int, dimension: int) -> None:
        super().__init__(client=open_client(":memory:"), collection="chunks", dimension=dimension)
        self.ensure_schema()
        self.failures = failures
        self.calls: list[float] = []

    def document_states(self, *, tenant_id: str, source_id: str) -> dict[str, DocumentState]:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.failures:
            raise IndexUnavailableError("connection refused")
        return super().document_states(tenant_id=tenant_id, source_id=source_id)


class StatusHistoryStore(JobStore):
    """The real job store, remembering every status it was asked to save (what an admin polling could see)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root=root)
        self.saved: list[JobStatus] = []

    def save(self, job: JobRecord) -> None:
        self.saved.append(job.status)
        super().save(job)


def run_in_process(
    tmp_path: Path, queue: JobQueue, embedder: SentenceTransformerEmbedder, *, index: FlakyIndex
) -> tuple[JobRecord, list[JobStatus]]:
    """One job through the queue and a worker thread of this process, against ``index``; its saved statuses."""
    corpus = tmp_path / "corpus"
    write_source(corpus, files=2)
    store = StatusHistoryStore(root=tmp_path / "jobs")
    pipeline = IngestionPipeline(
        index=index, embedder=embedder, jobs=store, parser=functools.partial(parse_document, limits=DEFAULT_LIMITS)
    )
    consumer = JobConsumer(queue=queue, jobs=store, pipeline=pipeline, allowed_roots={TENANT: [corpus]})
    runner = QueuedJobs(queue=queue, jobs=store, poll_seconds=0.05)
    worker = start_worker(queue, consumer)
    try:
        job = runner.submit(FilesystemSource(root=corpus, tenant_id=TENANT))
        runner.wait_idle(timeout_seconds=60)
    finally:
        worker.stop()
    return store.get(job.id), store.saved


def test_unreachable_index_is_retried_with_growing_backoff(
    tmp_path: Path, queues: Callable[..., JobQueue], embedder: SentenceTransformerEmbedder
) -> None:
    index = FlakyIndex(failures=2, dimension=embedder.dimension)
    queue = queues(max_attempts=4)
    job, saved = run_in_process(tmp_path, queue, embedder, index=index)
    assert job.status is JobStatus.SUCCEEDED and job.counts["added"] == 2 and job.failure is None
    # Between attempts the record says "queued": a failed status, even for a moment, would end an
    # admin's wait (or a client's poll) on a job that is about to be retried.
    assert JobStatus.FAILED not in saved and saved.count(JobStatus.QUEUED) >= 2, saved
    assert queue.attempts(job.id) == 3
    first_wait, second_wait = (later - earlier for earlier, later in zip(index.calls, index.calls[1:], strict=False))
    # dramatiq's backoff: min_backoff * 2**retries, stretched by a random factor of 1 to 2.
    assert first_wait >= 0.3 and second_wait >= 0.6, index.calls


def test_index_unreachable_for_every_attempt_fails_the_job(
    tmp_path: Path, queues: Callable[..., JobQueue], embedder: SentenceTransformerEmbedder
) -> None:
    index = FlakyIndex(failures=100, dimension=embedder.dimension)
    queue = queues(max_attempts=2)
    job, saved = run_in_process(tmp_path, queue, embedder, index=index)
    assert saved[-1] is JobStatus.FAILED and saved.count(JobStatus.FAILED) == 1, saved
    assert job.status is JobStatus.FAILED and len(index.calls) == 2 and queue.attempts(job.id) == 2
    assert job.failure is not None and job.failure.startswith("index unavailable")
    assert "gave up after 2 attempts" in job.failure


@dataclass
class TwoTenants:
    service: IngestionService
    queue: JobQueue
    store: JobStore
    corpus: Path


@pytest.fixture()
def two_tenants(tmp_path: Path, queues: Callable[..., JobQueue]) -> TwoTenants:
    """The API's ingestion service in queue mode, for two tenants with one folder each (no worker runs)."""
    corpus = tmp_path / "corpus"
    for name in ("ours", "theirs"):
        write_source(corpus / name, files=1)
    store, queue = JobStore(root=tmp_path / "jobs"), queues()
    roots = {TENANT: [corpus / "ours"], OTHER_TENANT: [corpus / "theirs"]}
    service = IngestionService(runner=QueuedJobs(queue=queue, jobs=store), jobs=store, allowed_roots=roots)
    return TwoTenants(service=service, queue=queue, store=store, corpus=corpus)


def queued_payloads(client: redis.Redis, namespace: str) -> list[dict[str, Any]]:
    raw = client.hgetall(f"{namespace}:ingest.msgs")
    return [json.loads(value) for value in raw.values()]


def test_admin_lists_and_reads_only_their_tenants_queued_jobs(
    two_tenants: TwoTenants, namespace: str, redis_client: redis.Redis
) -> None:
    service, corpus = two_tenants.service, two_tenants.corpus
    ours = service.start(tenant_id=TENANT, path=str(corpus / "ours"))
    theirs = service.start(tenant_id=OTHER_TENANT, path=str(corpus / "theirs"))
    assert [job.id for job in service.list(tenant_id=TENANT, limit=50)] == [ours.id]
    assert [job.id for job in service.list(tenant_id=OTHER_TENANT, limit=50)] == [theirs.id]
    with pytest.raises(NotFoundError):
        service.get(tenant_id=TENANT, job_id=theirs.id)
    with pytest.raises(InvalidInputError):
        service.start(tenant_id=TENANT, path=str(corpus / "theirs"))
    messages = queued_payloads(redis_client, namespace)
    assert len(messages) == 2 and {m["actor_name"] for m in messages} == {ACTOR_NAME}
    # Identifiers and folders only: no principal, token or secret travels through Redis.
    assert all(set(m["kwargs"]) == {"job_id", "tenant_id", "root", "scope"} and not m["args"] for m in messages)


def test_worker_refuses_a_message_for_a_folder_outside_the_tenants_roots(
    two_tenants: TwoTenants, settings: Settings, embedder: SentenceTransformerEmbedder
) -> None:
    service, queue, store, corpus = two_tenants.service, two_tenants.queue, two_tenants.store, two_tenants.corpus
    indexing = build_indexing(settings, embedder=embedder)
    consumer = JobConsumer(
        queue=queue, jobs=store, pipeline=indexing.pipeline, allowed_roots={TENANT: [corpus / "ours"]}
    )
    try:
        ours = service.start(tenant_id=TENANT, path=str(corpus / "ours"))
        forged = JobMessage(job_id=ours.id, tenant_id=TENANT, root=str(corpus / "theirs"), scope=str(corpus / "theirs"))
        consumer.process(forged.payload())
        refused = store.get(ours.id)
        assert refused.status is JobStatus.FAILED and refused.failure is not None
        assert "not one of the tenant's allowed roots" in refused.failure and str(corpus) not in refused.failure
        assert indexing.index.count(live_only=False) == 0

        other = service.start(tenant_id=TENANT, path=str(corpus / "ours"))
        wrong_tenant = JobMessage(
            job_id=other.id, tenant_id=OTHER_TENANT, root=str(corpus / "theirs"), scope=str(corpus / "theirs")
        )
        consumer.process(wrong_tenant.payload())
        consumer.process(
            JobMessage(other.id, TENANT, str(corpus / "ours"), str(corpus / "ours")).payload() | {"x": "y"}
        )
        assert store.get(other.id).status is JobStatus.QUEUED  # both dropped without running
        assert indexing.index.count(live_only=False) == 0
    finally:
        indexing.close()


def test_job_whose_workers_keep_dying_fails_instead_of_circling(
    two_tenants: TwoTenants, settings: Settings, embedder: SentenceTransformerEmbedder, redis_client: redis.Redis
) -> None:
    """A job that took its worker down max_attempts times (say, out of memory) is failed on its next delivery."""
    service, queue, store, corpus = two_tenants.service, two_tenants.queue, two_tenants.store, two_tenants.corpus
    indexing = build_indexing(settings, embedder=embedder)
    consumer = JobConsumer(
        queue=queue, jobs=store, pipeline=indexing.pipeline, allowed_roots={TENANT: [corpus / "ours"]}
    )
    try:
        job = service.start(tenant_id=TENANT, path=str(corpus / "ours"))
        redis_client.set(queue.attempts_key(job.id), queue.config.max_attempts)  # every earlier run was lost
        consumer.process(JobMessage(job.id, TENANT, str(corpus / "ours"), str(corpus / "ours")).payload())
        failed = store.get(job.id)
        assert failed.status is JobStatus.FAILED and failed.failure is not None
        assert f"stopped after {queue.config.max_attempts} attempts" in failed.failure
        assert indexing.index.count(live_only=False) == 0
    finally:
        indexing.close()


def test_embedded_default_runs_jobs_in_process_without_redis(
    settings: Settings, embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    assert settings.queue.redis_url == "" and Settings().queue.redis_url == ""
    write_source(tmp_path / "corpus", files=2)
    runtime = build_runtime(settings, embedder=embedder)
    try:
        assert isinstance(build_job_runner(settings, indexing=runtime.indexing), BackgroundJobs)
        job = runtime.ingestion.start(tenant_id=TENANT, path=str(tmp_path / "corpus"))
        runtime.ingestion.wait_idle()
        assert runtime.jobs.get(job.id).status is JobStatus.SUCCEEDED
    finally:
        runtime.close()


@pytest.mark.parametrize("location", ["edge:{tmp}/edge", "{tmp}/local", ":memory:"])
def test_queue_mode_refuses_an_index_one_process_owns(settings: Settings, tmp_path: Path, location: str) -> None:
    queued = settings.model_copy(
        update={
            "queue": QueueSettings(redis_url=REDIS_URL),
            "index": IndexSettings(location=location.format(tmp=tmp_path)),
        }
    )
    with pytest.raises(ValueError, match="needs an index that every process reaches"):
        queued_runner(queued, jobs=JobStore(root=tmp_path / "jobs"))


def test_worker_command_refuses_an_edge_shard_with_a_clear_message(tmp_path: Path) -> None:
    from clearance.cli import app

    env = {
        "CLEARANCE_DATA_DIR": str(tmp_path / "data"),
        "CLEARANCE_QUEUE__REDIS_URL": REDIS_URL,
        "CLEARANCE_INDEX__LOCATION": f"edge:{tmp_path / 'edge'}",
    }
    result = CliRunner().invoke(app, ["worker"], env=env)
    assert result.exit_code == 2 and "one process owns" in result.output and "Qdrant server" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "edge").exists()  # refused before anything was opened
    no_queue = CliRunner().invoke(app, ["worker"], env={"CLEARANCE_QUEUE__REDIS_URL": ""})
    assert no_queue.exit_code == 2 and "CLEARANCE_QUEUE__REDIS_URL is empty" in no_queue.output


def test_queue_url_off_this_machine_needs_a_password() -> None:
    with pytest.raises(ValueError, match="needs a password"):
        QueueSettings(redis_url="redis://redis.internal:6379/0")
    assert QueueSettings(redis_url="rediss://:s3cret-value@redis.internal:6380/0").redis_url


def test_cli_ingest_while_another_process_holds_the_edge_shard_is_a_clear_error(tmp_path: Path) -> None:
    """`clearance ingest` while `clearance serve` (here: a process holding the shard) owns it."""
    from clearance.cli import app

    shard = tmp_path / "edge"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom index.edge import EdgeChunkIndex\n"
            f"EdgeChunkIndex(path={str(shard)!r}, dimension=384)\nprint('held', flush=True)\nsys.stdin.read()",
        ],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        write_source(tmp_path / "docs", files=1)
        env = {"CLEARANCE_DATA_DIR": str(tmp_path / "data"), "CLEARANCE_INDEX__LOCATION": f"edge:{shard}"}
        result = CliRunner().invoke(app, ["ingest", str(tmp_path / "docs"), "--tenant", TENANT], env=env)
    finally:
        holder.communicate(input=b"", timeout=30)
    assert result.exit_code == 2, result.output
    assert f"held by another process (pid {holder.pid})" in result.output
    assert "Traceback" not in result.output


def test_processes_sharing_the_job_folder_never_clash(tmp_path: Path) -> None:
    """Two processes creating and rewriting records in one folder: unique ids, every record whole."""
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from ingest.jobs import JobStore
        store = JobStore(root=Path({str(tmp_path / "jobs")!r}))
        for number in range(150):
            job = store.create(source="s", tenant_id="t")
            job.files_total = number
            store.save(job)
        """
    )
    processes = [subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT) for _ in range(2)]
    folder = tmp_path / "jobs"
    reader = JobStore(root=folder)
    seen_partial = threading.Event()

    def read_while_writing() -> None:
        while any(p.poll() is None for p in processes):
            for path in folder.glob("job-*.json"):
                try:
                    JobRecord.from_dict(json.loads(path.read_bytes()))
                except ValueError:  # half a file: a write that was not atomic
                    seen_partial.set()

    thread = threading.Thread(target=read_while_writing)
    thread.start()
    assert [p.wait(timeout=120) for p in processes] == [0, 0]
    thread.join()
    jobs = reader.list(limit=1000)
    assert len(jobs) == 300 and len({job.id for job in jobs}) == 300 and not seen_partial.is_set()
    assert sorted(job.files_total for job in jobs) == sorted(list(range(150)) * 2)
    assert not list((tmp_path / "jobs").glob("*.tmp"))


def test_a_new_record_never_replaces_one_with_the_same_id(tmp_path: Path) -> None:
    class CollidingIds(JobStore):
        def __init__(self, *, root: Path, ids: list[str]) -> None:
            super().__init__(root=root)
            self.ids = ids

        def _new_id(self) -> str:
            return self.ids.pop(0)

    store = CollidingIds(root=tmp_path, ids=["job-1", "job-1", "job-2"])
    first = store.create(source="first", tenant_id=TENANT)
    second = store.create(source="second", tenant_id=TENANT)
    assert (first.id, second.id) == ("job-1", "job-2") and store.get("job-1").source == "first"
