"""Ingestion job records: counts, per-file errors with a reason, timings.

Records are JSON files under the data directory, written atomically, so the
CLI and the API read the same history and a crash never leaves half a record.
Every text in a record is valid UTF-8 (see :func:`safe_text`), so a file name
that is not can never make a record unwritable or unreadable, and one corrupt
record never hides the others from a listing.

Runners and queue workers depend only on :class:`JobRecordStore`, the five
methods below; :class:`JobStore` is its file implementation. Several processes
on one machine may share its folder (the API and ``clearance worker``s): every
write replaces the whole file atomically, ids are claimed with an exclusive
link (two processes can never create the same id), and after creation a record
is written only by the one process running its job, with one exception: a
cancellation request, which :meth:`JobRecordStore.request_cancel` keeps where the
running process's own saves cannot overwrite it (see :mod:`ingest.job_cancel`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from core.errors import NotFoundError

log = logging.getLogger(__name__)


def safe_text(text: str) -> str:
    """``text`` as it may be stored and shown: what is not valid UTF-8 becomes backslash escapes.

    File names that are not UTF-8 reach Python as surrogate escapes (PEP 383); they
    are shown as the raw bytes, for example ``bad-\\xff.txt``.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a lone surrogate that stands for no byte
            return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _safe(value: Any) -> Any:
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_text(str(key)): _safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_safe(item) for item in value]
    return value


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: A job in one of these states never runs again (a queued job cancelled before it started is one).
FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.COMPLETED_WITH_ERRORS, JobStatus.FAILED, JobStatus.CANCELLED})
CANCELLED_BEFORE_START = "cancelled before it started"


class FileOutcome(StrEnum):
    """What happened to one file in a run; each has a counter in the job."""

    ADDED = "added"
    UPDATED = "updated"
    ACL_UPDATED = "acl_updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    SKIPPED = "skipped"  # not a document (a symbolic link, a FIFO): reported, never indexed
    FAILED = "failed"


@dataclass
class FileIssue:
    path: str
    reason: str


@dataclass
class JobRecord:
    id: str
    source: str
    tenant_id: str
    status: JobStatus = JobStatus.QUEUED
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    files_total: int = 0
    files_done: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {outcome.value: 0 for outcome in FileOutcome})
    chunks_written: int = 0
    errors: list[FileIssue] = field(default_factory=list)
    warnings: list[FileIssue] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=lambda: {"parse_s": 0.0, "embed_s": 0.0, "index_s": 0.0})
    failure: str | None = None
    # When an admin asked to cancel; the process running the job polls for it and stops.
    cancel_requested_at: float | None = None

    def record(self, outcome: FileOutcome) -> None:
        self.counts[outcome.value] += 1

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to finish (to now while running); None before it starts."""
        return round((self.finished_at or time.time()) - self.started_at, 3) if self.started_at else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["duration_s"] = self.duration_s
        result: dict[str, Any] = _safe(data)
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        data = dict(data)
        data.pop("duration_s", None)
        data["status"] = JobStatus(data["status"])
        data["errors"] = [FileIssue(**item) for item in data.get("errors", [])]
        data["warnings"] = [FileIssue(**item) for item in data.get("warnings", [])]
        return cls(**data)


class JobIds:
    """Job ids that sort in creation order (newest-first listing relies on it), also within one second:
    ``job-YYYYmmdd-HHMMSS-micros-hex6`` (UTC), the microseconds strictly increasing within a process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_stamp = 0

    def next(self) -> str:
        with self._lock:
            stamp = max(time.time_ns() // 1000, self._last_stamp + 1)
            self._last_stamp = stamp
        seconds, micros = divmod(stamp, 1_000_000)
        return f"job-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(seconds))}-{micros:06d}-{uuid.uuid4().hex[:6]}"


class JobRecordStore(Protocol):
    """Where job records live; shared by the API, the CLI and every ingestion worker."""

    def create(self, *, source: str, tenant_id: str) -> JobRecord:
        """A new ``queued`` record with an id no other record has, saved before it is returned."""
        ...

    def save(self, job: JobRecord) -> None:
        """Replace the stored record of ``job.id`` as a whole (readers see the old or the new one)."""
        ...

    def get(self, job_id: str) -> JobRecord:
        """The record, or :class:`NotFoundError`."""
        ...

    def list(self, *, limit: int = 50, tenant_id: str | None = None) -> list[JobRecord]:
        """Newest first; with ``tenant_id``, that tenant's jobs only (filtered before the limit)."""
        ...

    def request_cancel(self, job_id: str) -> JobRecord:
        """Ask for ``job_id`` to stop; returns the record as it now stands (or :class:`NotFoundError`).

        A queued job becomes ``cancelled`` at once and never starts; a running one keeps
        running until its process sees the request (it polls) and ends it ``cancelled``;
        a finished one is returned unchanged. The request survives the running process's
        later saves of the record, and a ``cancelled`` record is never overwritten.
        """
        ...


class JobStore:
    """Job records as one JSON file each under ``root`` (implements :class:`JobRecordStore`)."""

    def __init__(self, *, root: Path) -> None:
        self._root = root
        self._root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._ids = JobIds()

    def create(self, *, source: str, tenant_id: str) -> JobRecord:
        while True:
            job = JobRecord(id=self._new_id(), source=source, tenant_id=tenant_id)
            try:
                self._write(job, exclusive=True)
            except FileExistsError:  # another process made the same id in the same microsecond
                continue
            return job

    def _new_id(self) -> str:
        return self._ids.next()

    def save(self, job: JobRecord) -> None:
        requested = self._cancel_marker(job.id)
        if requested is not None:
            stored = self._read(self._root / f"{job.id}.json")
            if stored is not None and stored.status is JobStatus.CANCELLED:
                return  # cancelled before it started: final, whatever a runner that raced it thinks
            job.cancel_requested_at = job.cancel_requested_at or requested
        self._write(job, exclusive=False)

    def request_cancel(self, job_id: str) -> JobRecord:
        job = self.get(job_id)
        if job.status in FINISHED:
            return job
        # A marker beside the record, made once: the running process rewrites the record
        # whole every second, so a flag inside it would be lost to the next save.
        marker = self._root / f"{job.id}.cancel"
        now = time.time()
        try:
            descriptor = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                handle.write(repr(now))
        job = self.get(job_id)
        if job.status is JobStatus.QUEUED:
            job.status, job.finished_at, job.failure = JobStatus.CANCELLED, now, CANCELLED_BEFORE_START
            self._write(job, exclusive=False)
        return job

    def _cancel_marker(self, job_id: str) -> float | None:
        try:
            return float((self._root / f"{job_id}.cancel").read_text(encoding="ascii"))
        except (OSError, ValueError):
            return None

    def _write(self, job: JobRecord, *, exclusive: bool) -> None:
        path = self._root / f"{job.id}.json"
        # A unique temporary name per write: processes sharing the folder never write one file.
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        data = json.dumps(job.to_dict(), indent=2).encode("utf-8")
        with self._lock:
            # Owner-only from creation: records name sources, errors and tenants.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                if exclusive:
                    # link() fails when the name exists: a new record never replaces another's.
                    os.link(tmp, path)
                else:
                    os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)  # after a replace it is gone; after a link or an error it is not

    def get(self, job_id: str) -> JobRecord:
        if not job_id.replace("-", "").isalnum():
            raise NotFoundError(f"no job {job_id!r}")
        path = self._root / f"{job_id}.json"
        try:
            job = JobRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise NotFoundError(f"no job {job_id!r}") from None
        job.cancel_requested_at = job.cancel_requested_at or self._cancel_marker(job.id)
        return job

    def list(self, *, limit: int = 50, tenant_id: str | None = None) -> list[JobRecord]:
        """Newest first; with ``tenant_id``, that tenant's jobs only (filtered before the limit)."""
        found: list[JobRecord] = []
        for path in sorted(self._root.glob("job-*.json"), reverse=True):
            if len(found) >= limit:
                break
            job = self._read(path)
            if job is not None and (tenant_id is None or job.tenant_id == tenant_id):
                found.append(job)
        return found

    @staticmethod
    def _read(path: Path) -> JobRecord | None:
        # One damaged record must not make the whole history unreadable.
        try:
            return JobRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("unreadable job record %s skipped", path.name)
            return None
