"""Ingestion jobs on a Redis queue: the API enqueues them, ``clearance worker`` processes run them.

The queue library is dramatiq (its Redis broker), chosen over rq, arq and Celery for
what an ingestion worker needs (read from each library's documentation and source):

* No fork per job. A dramatiq worker runs jobs on threads of one long-lived process, so
  torch or onnxruntime and their thread pools are loaded once and never copied into a
  forked child (rq forks a work horse per job unless ``SimpleWorker`` is used; Celery's
  default pool forks children; arq is asyncio, where CPU-bound embedding needs an executor).
* Crash recovery by heartbeat, not by a visibility timeout. Every broker call of a worker
  process records its heartbeat, and its consumer threads keep calling while a job runs;
  a fetched message stays in that worker's acknowledgement set until the job ends. When a
  worker's heartbeat is older than ``heartbeat_timeout``, a sweep run by any live worker
  puts its messages back on the queue. A job of any length is therefore never handed to a
  second worker while its own lives (a visibility timeout redelivers long jobs), and a
  killed worker's job is not lost. rq 3 also retries abandoned jobs, but only once the
  job's own timeout has passed, which for ingestion would have to be hours.
* Retries with exponential backoff and jitter (its ``Retries`` middleware), messages
  encoded as JSON (never pickle: a forged message can carry data, not code), and an
  actively maintained project (2.x releases in 2025).

What a message carries: the job id, the tenant id, and the source's root and scope folders
(server paths), never a principal, a token or a secret. A worker trusts none of it: it runs a
message only when a job record with that id exists for that tenant and has not finished, and
the root is one of that tenant's allowed roots in the worker's own settings.

Delivery is at least once. The effect is exactly once through three guards: a finished job is
never run again; a per-source lock (:mod:`ingest.source_lock`) keeps two jobs of one source
from running at the same time (the second is put back on the queue after a pause); and the
pipeline is incremental, so the re-run of an interrupted job skips what is already indexed.
Runs are counted per job in Redis: a job that keeps failing or keeps losing its worker fails
after ``max_attempts`` runs instead of circling forever.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Retries

from core.errors import ClearanceError, IndexUnavailableError, NotFoundError
from ingest.jobs import FINISHED, JobRecord, JobRecordStore, JobStatus
from ingest.source import DocumentSource, FilesystemSource
from ingest.source_lock import SourceLock, source_lock_key

log = logging.getLogger(__name__)

ACTOR_NAME = "clearance_ingest"
_FINISHED = FINISHED  # cancelled included: a message of a cancelled job is dropped, never run
_ATTEMPTS_TTL_SECONDS = 7 * 86400  # as long as dramatiq keeps a dead message
_MAX_REDELIVERIES = 100


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """The queue's Redis and timing settings (built from ``CLEARANCE_QUEUE__*`` by the roof)."""

    redis_url: str
    namespace: str = "clearance"
    queue_name: str = "ingest"
    max_attempts: int = 5
    min_backoff_seconds: float = 5.0
    max_backoff_seconds: float = 300.0
    lock_ttl_seconds: float = 60.0
    busy_retry_seconds: float = 10.0
    heartbeat_timeout_seconds: float = 60.0
    dead_worker_sweep_percent: float = 5.0


@dataclass(frozen=True, slots=True)
class JobMessage:
    """What travels through Redis for one job: identifiers and folders, nothing that grants access."""

    job_id: str
    tenant_id: str
    root: str
    scope: str

    def payload(self) -> dict[str, str]:
        return {"job_id": self.job_id, "tenant_id": self.tenant_id, "root": self.root, "scope": self.scope}

    @classmethod
    def parse(cls, payload: Mapping[str, Any]) -> JobMessage:
        """The message, or ValueError when it is not exactly the four strings this module sends."""
        if set(payload) != {"job_id", "tenant_id", "root", "scope"}:
            raise ValueError(f"unexpected message fields {sorted(payload)}")
        if not all(isinstance(value, str) and value for value in payload.values()):
            raise ValueError("message fields must be non-empty strings")
        return cls(**payload)


class Pipeline(Protocol):
    """The one entry of :class:`ingest.pipeline.IngestionPipeline` a worker uses."""

    def run(
        self, source: DocumentSource, *, job: JobRecord | None = None, raise_unavailable: bool = False
    ) -> JobRecord: ...


class JobQueue:
    """The Redis broker and the names of the ingestion queue, shared by the API and the workers."""

    def __init__(self, config: QueueConfig) -> None:
        self.config = config
        self.broker = RedisBroker(  # type: ignore[no-untyped-call]
            url=config.redis_url,
            namespace=config.namespace,
            heartbeat_timeout=int(config.heartbeat_timeout_seconds * 1000),
            maintenance_chance=max(1, int(config.dead_worker_sweep_percent * 10_000)),
            # Only what a worker uses: no time limit (per-file limits bound a run; dramatiq's default
            # 10-minute limit would interrupt a large source mid-file) and no age limit.
            middleware=[
                Retries(
                    min_backoff=int(config.min_backoff_seconds * 1000),
                    max_backoff=int(config.max_backoff_seconds * 1000),
                    # Transient failures only. The bound is a backstop: JobConsumer's attempt count ends a job
                    # that runs and fails; this ends one whose store or Redis stays unreachable for hours.
                    retry_when=lambda retries, error: isinstance(error, _Transient) and retries < _MAX_REDELIVERIES,
                )
            ],
        )
        self.redis: redis.Redis = self.broker.client

    def send(self, message: JobMessage, *, delay_seconds: float | None = None) -> None:
        """Enqueue ``message`` (after ``delay_seconds``); raises redis.RedisError when Redis is unreachable."""
        delay = None if delay_seconds is None else int(delay_seconds * 1000)
        self.broker.enqueue(
            dramatiq.Message(
                queue_name=self.config.queue_name,
                actor_name=ACTOR_NAME,
                args=(),
                kwargs=message.payload(),
                options={},
            ),
            delay=delay,
        )

    def attempts_key(self, job_id: str) -> str:
        return f"{self.config.namespace}:attempts:{job_id}"

    def attempts(self, job_id: str) -> int:
        """How many times a worker has started ``job_id`` (0 when never)."""
        value = self.redis.get(self.attempts_key(job_id))
        return int(value) if value is not None else 0

    def close(self) -> None:
        self.redis.close()


class QueuedJobs:
    """The API's job runner in queue mode: records the job, then hands it to the workers through Redis."""

    def __init__(self, *, queue: JobQueue, jobs: JobRecordStore, poll_seconds: float = 0.5) -> None:
        self._queue = queue
        self._jobs = jobs
        self._poll = poll_seconds
        self._submitted: list[str] = []

    def submit(self, source: FilesystemSource) -> JobRecord:
        # The display name, never the server path: job records go to API clients.
        job = self._jobs.create(source=source.display_source, tenant_id=source.tenant_id)
        message = JobMessage(job_id=job.id, tenant_id=source.tenant_id, root=str(source.root), scope=str(source.scope))
        try:
            self._queue.send(message)
        except redis.RedisError:
            log.exception("ingestion job %s could not be queued", job.id)
            # The record says why; the admin sees a failed job, never one queued forever.
            job.status, job.finished_at = JobStatus.FAILED, time.time()
            job.failure = "the ingestion queue could not be reached; start the job again"
            self._jobs.save(job)
            return job
        self._submitted.append(job.id)
        return job

    def wait_idle(self, timeout_seconds: float | None = None) -> None:
        """Block until every job submitted here has finished, wherever it ran."""
        deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
        pending = list(self._submitted)
        while pending:
            pending = [job_id for job_id in pending if self._jobs.get(job_id).status not in _FINISHED]
            if pending and deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} ingestion jobs still running")
            if pending:
                time.sleep(self._poll)

    def stop(self) -> None:
        self._queue.close()


class _Transient(dramatiq.Retry):
    """Raised to have dramatiq run the message again after a backoff (a retry, logged without a trace)."""


class JobConsumer:
    """Runs one queued job in a worker process: checks, per-source lock, attempts, retries."""

    def __init__(
        self,
        *,
        queue: JobQueue,
        jobs: JobRecordStore,
        pipeline: Pipeline,
        allowed_roots: Mapping[str, Sequence[Path]],
    ) -> None:
        self._queue = queue
        self._config = queue.config
        self._jobs = jobs
        self._pipeline = pipeline
        self._roots = {tenant: {root.resolve() for root in roots} for tenant, roots in allowed_roots.items()}

    def process(self, payload: Mapping[str, Any]) -> None:
        """Handle one message; raises only to ask for a retry after a backoff."""
        try:
            self._process(payload)
        except _Transient:
            raise
        except Exception as exc:  # the job store or Redis failed: the job must wait, not vanish
            log.exception("ingestion message could not be handled; retrying after a backoff")
            raise _Transient(f"{type(exc).__name__} while handling an ingestion message") from exc

    def _process(self, payload: Mapping[str, Any]) -> None:
        try:
            message = JobMessage.parse(payload)
            job = self._jobs.get(message.job_id)
        except (ValueError, NotFoundError) as exc:
            # Not a message of ours (or its record is gone): nothing to run, nothing to report to.
            log.error("ingestion message dropped: %s", exc)
            return
        if job.tenant_id != message.tenant_id:
            log.error("ingestion message dropped: job %s belongs to another tenant", job.id)
            return
        if job.status in _FINISHED:
            log.info("job %s already finished (%s); duplicate message dropped", job.id, job.status.value)
            return
        try:
            source = self._source(message)
        except _NotAllowed as exc:
            self._fail(job, str(exc))
            return
        except (ClearanceError, OSError):
            # Not the error's text: it names server paths, and job records reach API clients.
            self._fail(job, "the source folder is gone or cannot be read on this worker")
            return
        key = source_lock_key(namespace=self._config.namespace, tenant_id=message.tenant_id, root=message.root)
        lock = SourceLock(client=self._queue.redis, key=key, ttl_seconds=self._config.lock_ttl_seconds)
        if not lock.acquire():
            self._wait_for_source(message)
            return
        with lock:
            self._run_locked(message, source)

    def _run_locked(self, message: JobMessage, source: FilesystemSource) -> None:
        job = self._jobs.get(message.job_id)  # again: it may have finished while we waited for the lock
        if job.status in _FINISHED:
            log.info("job %s already finished (%s); duplicate message dropped", job.id, job.status.value)
            return
        attempt = self._count_attempt(job.id)
        if attempt > self._config.max_attempts:
            self._fail(job, f"stopped after {attempt - 1} attempts (its workers were lost or kept failing)")
            return
        # A fresh record with the same id: counters of an interrupted earlier run must not add up.
        fresh = JobRecord(id=job.id, source=job.source, tenant_id=job.tenant_id, created_at=job.created_at)
        log.info("job %s: attempt %d of %d", job.id, attempt, self._config.max_attempts)
        try:
            # An unreachable index is raised, not recorded: the record stays "running" until this attempt
            # decides between a retry and a failure, so nobody watching it sees a failure that is retried.
            self._pipeline.run(source, job=fresh, raise_unavailable=True)
        except IndexUnavailableError as exc:
            reason = f"index unavailable: {exc}"
            if attempt < self._config.max_attempts:
                log.warning("job %s: attempt %d: %s; retrying after a backoff", job.id, attempt, reason)
                fresh.status, fresh.finished_at = JobStatus.QUEUED, None
                fresh.failure = f"{reason}; retrying (attempt {attempt} of {self._config.max_attempts})"
                self._jobs.save(fresh)
                raise _Transient(f"job {job.id}: index unavailable") from exc
            self._fail(fresh, f"{reason} (gave up after {attempt} attempts)")
        except Exception as exc:  # the pipeline records its own failures; this is the job store or a bug
            log.exception("job %s: attempt %d crashed", job.id, attempt)
            if attempt < self._config.max_attempts:
                raise _Transient(f"job {job.id} crashed ({type(exc).__name__})") from exc
            self._fail(fresh, f"internal error: {type(exc).__name__}")

    def _wait_for_source(self, message: JobMessage) -> None:
        """Another job holds the source: put this one back on the queue for later, uncounted."""
        delay = self._config.busy_retry_seconds * random.uniform(1.0, 1.5)  # jitter: waiters do not march in step
        log.info("job %s: its source is being ingested by another job; trying again in %.1f s", message.job_id, delay)
        self._queue.send(message, delay_seconds=delay)

    def _count_attempt(self, job_id: str) -> int:
        key = self._queue.attempts_key(job_id)
        with self._queue.redis.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, _ATTEMPTS_TTL_SECONDS)
            count, _ = pipe.execute()
        return int(count)

    def _source(self, message: JobMessage) -> FilesystemSource:
        """The source the message names, only when its root is one of the tenant's allowed roots here."""
        root = Path(message.root).resolve()
        if root not in self._roots.get(message.tenant_id, set()):
            # A forged or stale message: a worker ingests only folders its own settings allow.
            raise _NotAllowed("the folder is not one of the tenant's allowed roots on this worker")
        return FilesystemSource(root=root, tenant_id=message.tenant_id, scope=Path(message.scope))

    def _fail(self, job: JobRecord, reason: str) -> None:
        log.error("job %s failed: %s", job.id, reason)
        job.status, job.failure = JobStatus.FAILED, reason
        job.started_at = job.started_at or time.time()
        job.finished_at = time.time()
        self._jobs.save(job)


class _NotAllowed(ClearanceError):
    public = True


def declare_consumer(queue: JobQueue, consumer: JobConsumer) -> None:
    """Register the ingestion actor on the queue's broker (a worker process does this once)."""

    def ingest(**payload: Any) -> None:
        consumer.process(payload)

    register = dramatiq.actor(
        broker=queue.broker,
        actor_name=ACTOR_NAME,
        queue_name=queue.config.queue_name,
        # Retries decide by exception type (see JobQueue); attempts are bounded by JobConsumer.
        max_retries=None,
    )
    register(ingest)


def start_worker(queue: JobQueue, consumer: JobConsumer) -> dramatiq.Worker:
    """Consume the ingestion queue on one thread of this process: one job at a time per worker."""
    declare_consumer(queue, consumer)
    worker = dramatiq.Worker(queue.broker, queues={queue.config.queue_name}, worker_threads=1)
    # One message fetched at a time: a waiting job stays in Redis for an idle worker to take
    # (dramatiq's default prefetches two per thread).
    worker.queue_prefetch = 1
    worker.start()
    return worker
