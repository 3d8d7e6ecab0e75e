"""Ingestion job records: counts, per-file errors with a reason, timings.

Records are JSON files under the data directory, written atomically, so the
CLI and the API read the same history and a crash never leaves half a record.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from core.errors import NotFoundError


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"


class FileOutcome(StrEnum):
    """What happened to one file in a run; each has a counter in the job."""

    ADDED = "added"
    UPDATED = "updated"
    ACL_UPDATED = "acl_updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
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
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        data = dict(data)
        data.pop("duration_s", None)
        data["status"] = JobStatus(data["status"])
        data["errors"] = [FileIssue(**item) for item in data.get("errors", [])]
        data["warnings"] = [FileIssue(**item) for item in data.get("warnings", [])]
        return cls(**data)


class JobStore:
    """Job records as one JSON file each under ``root``."""

    def __init__(self, *, root: Path) -> None:
        self._root = root
        self._root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def create(self, *, source: str, tenant_id: str) -> JobRecord:
        job = JobRecord(
            id=f"job-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}", source=source, tenant_id=tenant_id
        )
        self.save(job)
        return job

    def save(self, job: JobRecord) -> None:
        path = self._root / f"{job.id}.json"
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        with self._lock:
            tmp.write_text(json.dumps(job.to_dict(), indent=2), encoding="utf-8")
            os.replace(tmp, path)

    def get(self, job_id: str) -> JobRecord:
        if not job_id.replace("-", "").isalnum():
            raise NotFoundError(f"no job {job_id!r}")
        path = self._root / f"{job_id}.json"
        try:
            return JobRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise NotFoundError(f"no job {job_id!r}") from None

    def list(self, *, limit: int = 50, tenant_id: str | None = None) -> list[JobRecord]:
        """Newest first; with ``tenant_id``, that tenant's jobs only (filtered before the limit)."""
        found: list[JobRecord] = []
        for path in sorted(self._root.glob("job-*.json"), reverse=True):
            if len(found) >= limit:
                break
            job = JobRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
            if tenant_id is None or job.tenant_id == tenant_id:
                found.append(job)
        return found
