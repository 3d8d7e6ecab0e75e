"""One audit record per answer and per search: who asked, with which principals, what was used.

Records are JSON lines under the data directory, in a file only the service's
user may read (0600). They are the one place where a caller's principal keys
are written in clear (principle 3); operators read them to answer "why did this
person get this answer". A hash-chained store replaces this sink later.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class AnswerAudit:
    tenant_id: str
    object_id: str
    principals: tuple[str, ...]
    groups_complete: bool
    question: str
    retrieved: tuple[str, ...]
    cited: tuple[str, ...]
    outcome: str
    generator: str
    prompt: str
    timings_ms: dict[str, float]
    streamed: bool
    kind: str = "answer"  # "answer" (chat) or "search"
    narrowed: tuple[str, ...] = ()  # why the caller's principals were narrowed, if they were
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    at: float = field(default_factory=time.time)


class AuditSink(Protocol):
    def record(self, entry: AnswerAudit) -> None: ...


class JsonlAuditSink:
    """Appends one JSON line per answer to ``path`` (created on first write)."""

    def __init__(self, *, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def record(self, entry: AnswerAudit) -> None:
        line = json.dumps(asdict(entry), separators=(",", ":"))
        with self._lock:
            self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Owner-only from the first byte: the file holds questions and principal keys.
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")


class NoAudit:
    def record(self, entry: AnswerAudit) -> None:
        return
