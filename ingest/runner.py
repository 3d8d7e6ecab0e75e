"""Runs ingestion jobs in the background for the API: the runner protocol and its in-process default.

:class:`BackgroundJobs` (one thread in the API process) is the embedded default;
:class:`ingest.job_queue.QueuedJobs` hands jobs to ``clearance worker`` processes
through Redis. The ingestion service sees only :class:`JobRunner`.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Protocol

from ingest.jobs import JobRecord, JobRecordStore
from ingest.pipeline import IngestionPipeline
from ingest.source import DocumentSource, FilesystemSource

log = logging.getLogger(__name__)


class JobRunner(Protocol):
    """Runs a source's ingestion job somewhere, recording it in the job store the API reads."""

    def submit(self, source: FilesystemSource) -> JobRecord:
        """Record a ``queued`` job for ``source`` and schedule it; returns at once."""
        ...

    def wait_idle(self) -> None:
        """Block until every job submitted through this runner has finished (tests, shutdown)."""
        ...

    def stop(self) -> None:
        """Release the runner's resources; jobs already handed to workers still run there."""
        ...


class BackgroundJobs:
    """A single worker thread: jobs against one index never interleave their writes."""

    def __init__(self, *, pipeline: IngestionPipeline, jobs: JobRecordStore) -> None:
        self._pipeline = pipeline
        self._jobs = jobs
        self._queue: queue.Queue[tuple[DocumentSource, JobRecord] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, source: DocumentSource) -> JobRecord:
        # The display name, never the server path: job records go to API clients.
        job = self._jobs.create(source=source.display_source, tenant_id=source.tenant_id)
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="ingestion-jobs", daemon=True)
                self._worker.start()
        self._queue.put((source, job))
        return job

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            source, job = item
            try:
                self._pipeline.run(source, job=job)
            except Exception:  # the pipeline records its own failures; never kill the worker
                log.exception("ingestion job %s crashed", job.id)
            finally:
                self._queue.task_done()

    def wait_idle(self) -> None:
        """Blocks until every submitted job has finished (used by tests and shutdown)."""
        self._queue.join()

    def stop(self) -> None:
        self._queue.put(None)
