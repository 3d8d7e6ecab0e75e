"""A running job's cancellation: asked for in the job store, seen by whichever process runs the job.

An admin asks through the API or ``clearance jobs cancel``; the request is kept in
the job store (:meth:`ingest.jobs.JobRecordStore.request_cancel`), because the job
may run in this process's job thread, in a ``clearance worker`` on another machine,
or in a ``clearance ingest`` in another terminal. The pipeline checks its
cancellation between files; this one reads the store at most every ``poll_s``
seconds, so a request is honoured within about that time plus the files already
being written.
"""

from __future__ import annotations

import logging
import threading
import time

from core.cancel import Cancellation
from core.errors import ClearanceError
from ingest.jobs import JobRecordStore

log = logging.getLogger(__name__)
DEFAULT_POLL_S = 1.0


class StoredCancellation(Cancellation):
    """Set when :meth:`cancel` is called here, or once the job store holds a cancel request for the job.

    ``also``: another cancellation that counts too (a caller's own, for example).
    A store that cannot be read counts as "not requested": the job keeps running and
    the next poll asks again (cancelling decides no access; a job that stops on a
    transient error would lose work for nothing).
    """

    def __init__(
        self, *, jobs: JobRecordStore, job_id: str, poll_s: float = DEFAULT_POLL_S, also: Cancellation | None = None
    ) -> None:
        super().__init__()
        self._jobs = jobs
        self._job_id = job_id
        self._poll_s = poll_s
        self._also = also
        self._lock = threading.Lock()
        self._next_poll = 0.0  # the first check reads the store

    @property
    def cancelled(self) -> bool:
        if super().cancelled:
            return True
        if self._also is not None and self._also.cancelled:
            self.cancel()
            return True
        now = time.monotonic()
        with self._lock:
            if now < self._next_poll:
                return False
            self._next_poll = now + self._poll_s
        try:
            requested = self._jobs.get(self._job_id).cancel_requested_at is not None
        except (ClearanceError, OSError, ValueError) as exc:  # no stored record, an unavailable store, a bad file
            log.warning("job %s: cancel request not readable (%s)", self._job_id, type(exc).__name__)
            return False
        if requested:
            self.cancel()
        return requested
