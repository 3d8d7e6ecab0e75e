"""`clearance worker`: a process that runs queued ingestion jobs, and the queue's wiring from settings.

Queue mode (``CLEARANCE_QUEUE__REDIS_URL`` set): the API records each admin job in the job
store and puts a message on Redis; any number of worker processes, on any machines, take
the messages and run the jobs with their own embedder against the shared index. What they
share: Redis (the queue, per-source locks, attempt counts), the job store (the same records
the API lists), the index (a Qdrant server), and the folders named by the allowed roots
(at the same paths on every machine).

An edge shard or a local index folder belongs to one process (a lock file says which), so
queue mode refuses them at start-up, in the API and in the worker: with such an index,
ingestion runs on the API's own job thread (queue URL empty), or from ``clearance ingest``
while no server holds the index.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Annotated

import redis
import typer
from rich.console import Console

from clearance.settings import Settings
from core.errors import ClearanceError
from ingest.job_queue import JobConsumer, JobQueue, QueueConfig, QueuedJobs, start_worker
from ingest.jobs import JobRecordStore

log = logging.getLogger(__name__)
_console = Console(stderr=True, soft_wrap=True)


def queue_config(settings: Settings) -> QueueConfig:
    queue = settings.queue
    return QueueConfig(
        redis_url=queue.redis_url,
        namespace=queue.namespace,
        max_attempts=queue.max_attempts,
        min_backoff_seconds=queue.min_backoff_seconds,
        max_backoff_seconds=queue.max_backoff_seconds,
        lock_ttl_seconds=queue.lock_ttl_seconds,
        busy_retry_seconds=queue.busy_retry_seconds,
        heartbeat_timeout_seconds=queue.heartbeat_timeout_seconds,
        dead_worker_sweep_percent=queue.dead_worker_sweep_percent,
    )


def require_shared_index(settings: Settings) -> None:
    """Queue mode needs an index that every process reaches: a Qdrant server. Raises ValueError otherwise."""
    location = settings.index_location
    if location.startswith(("http://", "https://")):
        return
    if location.startswith("edge:"):
        kind = "an edge shard"
    elif location == ":memory:":
        kind = "an in-memory index"
    else:
        kind = "a local index folder"
    raise ValueError(
        f"queue mode (CLEARANCE_QUEUE__REDIS_URL) needs an index that every process reaches, but "
        f"CLEARANCE_INDEX__LOCATION is {kind}, which one process owns. Point CLEARANCE_INDEX__LOCATION at a "
        "Qdrant server (http(s)://...), or leave CLEARANCE_QUEUE__REDIS_URL empty to run ingestion jobs "
        "inside the server process."
    )


def queued_runner(settings: Settings, *, jobs: JobRecordStore) -> QueuedJobs:
    """The API's job runner in queue mode (checked: the index must be shared)."""
    require_shared_index(settings)
    return QueuedJobs(queue=JobQueue(queue_config(settings)), jobs=jobs)


def run_worker(settings: Settings, *, stop: threading.Event | None = None) -> None:
    """Consume the ingestion queue until ``stop`` is set (or SIGTERM/SIGINT in the main thread).

    This does not check the index location: :func:`worker_command` does, before calling it.
    Tests call it directly to run several workers each on its own edge shard.
    """
    from clearance.compose import allowed_roots, build_indexing

    stop = stop or threading.Event()
    queue = JobQueue(queue_config(settings))
    try:
        queue.redis.ping()  # a clear error now, not consumer threads retrying in the log
    except redis.RedisError as exc:
        queue.close()
        # The URL may carry a password: name the error, not the URL.
        raise ValueError(f"the ingestion queue (CLEARANCE_QUEUE__REDIS_URL) cannot be reached: {exc}") from None
    try:
        indexing = build_indexing(settings)
    except BaseException:
        queue.close()
        raise
    consumer = JobConsumer(
        queue=queue, jobs=indexing.jobs, pipeline=indexing.pipeline, allowed_roots=allowed_roots(settings)
    )
    worker = start_worker(queue, consumer)
    if threading.current_thread() is threading.main_thread():
        _stop_on_signals(stop)
    log.info("worker ready: consuming queue %r (namespace %r)", queue.config.queue_name, queue.config.namespace)
    try:
        stop.wait()
        log.info("worker stopping: finishing the current job")
    finally:
        # Finishes the running job, puts fetched-but-unstarted messages back on the queue.
        worker.stop()
        queue.close()
        indexing.close()
    log.info("worker stopped")


def _stop_on_signals(stop: threading.Event) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            # A second signal: leave now, without waiting for the running job. Its message goes back on
            # the queue once this worker's heartbeat is older than CLEARANCE_QUEUE__HEARTBEAT_TIMEOUT_SECONDS.
            os._exit(1)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def worker_command(
    verbose: Annotated[bool, typer.Option("--verbose", help="log every queue event")] = False,
) -> None:
    """Run queued ingestion jobs (queue mode: CLEARANCE_QUEUE__REDIS_URL and a Qdrant server index)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = Settings()
        if not settings.queue.redis_url:
            raise ValueError(
                "CLEARANCE_QUEUE__REDIS_URL is empty: workers take jobs from a Redis queue. Without one, "
                "ingestion jobs run inside the server process and no worker is needed."
            )
        require_shared_index(settings)
        run_worker(settings)
    except (ClearanceError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        _console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(code=2) from None
