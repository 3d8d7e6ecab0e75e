"""One audit record per answer and per search: who asked, with which principals, what was used.

:class:`AnswerAudit` is what the answer service hands to an :class:`AuditSink`.
The production sink is the hash-chained state store (``store.audit_log``); a
sink that cannot write raises, so that no answer leaves without its record.
:class:`JsonlAuditSink` (JSON lines under the data directory, 0600) remains for
tools and tests that run without a store. Records are the one place where a
caller's principal keys are written in clear (principle 3): operators read them
to answer "why did this person get this answer".
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from core.records import Passage


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """A retrieved chunk and the document it came from, enough to answer "which answers used document X"."""

    chunk_id: str
    doc_id: str
    source: str = ""  # the document's URI or path, as callers see it
    version: str = ""  # the document version written with the chunk, where the index returns it


def chunk_refs(passages: Sequence[Passage]) -> tuple[ChunkRef, ...]:
    """What the audit keeps of each passage: ids and the document's name and version, never its text."""
    # ``version`` is read defensively: Passage gains the index's document version in core/records.py.
    return tuple(
        ChunkRef(
            chunk_id=p.chunk_id,
            doc_id=p.doc_id,
            source=p.source,
            version=p.version,
        )
        for p in passages
    )


@dataclass(frozen=True, slots=True)
class AnswerAudit:
    tenant_id: str
    object_id: str
    principals: tuple[str, ...]
    groups_complete: bool
    question: str  # as the content policy redacts it (retrieval.policy: ContentPolicy.redact), never raw
    retrieved: tuple[str, ...]  # chunk ids, in rank order
    cited: tuple[str, ...]
    outcome: str
    generator: str
    prompt: str  # the prompt template's id, name/version
    timings_ms: dict[str, float]
    streamed: bool
    kind: str = "answer"  # "answer" (chat) or "search"
    narrowed: tuple[str, ...] = ()  # why the caller's principals were narrowed, if they were
    chunks: tuple[ChunkRef, ...] = ()  # the retrieved chunks with their documents, in rank order
    model: str = ""  # the model behind the generator, where it names one
    # The content policy that applied ("policy=name/version@sha256:..."), then its decisions ("stage:rule:action").
    policy: tuple[str, ...] = ()
    # The answer text as returned: kept beside the record (store.answer_texts) for feedback and review,
    # never chained into the audit record itself.
    answer: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    at: float = field(default_factory=time.time)


class AuditSink(Protocol):
    def record(self, entry: AnswerAudit) -> None:
        """Writes ``entry`` durably, or raises (a ClearanceError) so the answer is not returned."""
        ...


class JsonlAuditSink:
    """Appends one JSON line per answer to ``path`` (created on first write); no hash chain."""

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
