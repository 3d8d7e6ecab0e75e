"""Runs ingestion jobs in the background, one at a time, for the API."""

from __future__ import annotations

import logging
import queue
import threading

from ingest.jobs import JobRecord, JobStore
from ingest.pipeline import IngestionPipeline
from ingest.source import DocumentSource

log = logging.getLogger(__name__)


class BackgroundJobs:
    """A single worker thread: jobs against one index never interleave their writes."""

    def __init__(self, *, pipeline: IngestionPipeline, jobs: JobStore) -> None:
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
