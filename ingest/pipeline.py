"""The incremental ingestion run: source -> parse -> chunk -> embed -> index.

Per file: unchanged content and ACL are skipped; an ACL-only change rewrites
payloads without re-embedding; a content change replaces the document's chunks
(never mixed, see index.ports); files gone from the source are removed.

Fail closed: documents gone from the walked part of the source are deleted
first, before any slow parsing, so a revocation never waits behind (or is lost
to) another file's failure. Any exception while handling one file is that
file's error, its earlier version is removed, and the run goes on; only an
unreachable index fails the whole job. Each file acts on the access decision
its source made (:mod:`ingest.acl_decision`), never on an ACL of its own.
Bounds: a file over ``max_file_bytes`` is refused before it is read, one over
``max_chunks_per_file`` chunks is refused before anything of it is indexed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from acl.access import AccessList
from core.errors import ClearanceError, DocumentParseError, IndexUnavailableError
from core.records import DocumentMeta, DocumentState
from index.ports import ChunkIndex, Embedder, IndexedDocument
from ingest.acl_decision import NO_ACL_WARNING, Granted, Nobody, stored_acl
from ingest.chunk import chunk_document, embedding_text
from ingest.jobs import FileIssue, FileOutcome, JobRecord, JobStatus, JobStore
from ingest.parse.elements import ParsedDocument
from ingest.source import DocumentSource, SourceItem, file_sha256

__all__ = ["NO_ACL_WARNING", "IngestionPipeline", "document_id"]

log = logging.getLogger(__name__)
_DOC_NAMESPACE = uuid.UUID("0d7e4b8a-3c1f-4f7e-8b2a-9e6d5c4b3a21")
MB = 1024 * 1024
DEFAULT_MAX_FILE_BYTES = 100 * MB
DEFAULT_MAX_CHUNKS_PER_FILE = 5000
ProgressCallback = Callable[[JobRecord, str | None], None]
Parser = Callable[[Path], ParsedDocument]


def document_id(*, tenant_id: str, source_id: str, path: str) -> str:
    return str(uuid.uuid5(_DOC_NAMESPACE, f"{tenant_id}|{source_id}|{path}"))


class _FileRefused(Exception):
    """One file cannot be indexed; ``reason`` goes to the job record."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IngestionPipeline:
    """Runs ingestion jobs against one index with one embedder."""

    def __init__(
        self,
        *,
        index: ChunkIndex,
        embedder: Embedder,
        jobs: JobStore,
        parser: Parser,
        max_chunk_chars: int = 1000,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_chunks_per_file: int = DEFAULT_MAX_CHUNKS_PER_FILE,
    ) -> None:
        if max_file_bytes <= 0 or max_chunks_per_file <= 0:
            raise ValueError("max_file_bytes and max_chunks_per_file must be positive")
        self._index = index
        self._embedder = embedder
        self._jobs = jobs
        self._parse = parser
        self._max_chunk_chars = max_chunk_chars
        self._max_file_bytes = max_file_bytes
        self._max_chunks = max_chunks_per_file

    def run(
        self, source: DocumentSource, *, job: JobRecord | None = None, progress: ProgressCallback | None = None
    ) -> JobRecord:
        job = job or self._jobs.create(source=source.display_source, tenant_id=source.tenant_id)
        # Job records go to API clients: they name the source without the server's absolute path.
        job.source = source.display_source
        job.status, job.started_at = JobStatus.RUNNING, time.time()
        self._jobs.save(job)
        try:
            self._run(source, job, progress)
        except IndexUnavailableError as exc:
            job.status, job.failure = JobStatus.FAILED, f"index unavailable: {exc}"
        except Exception as exc:  # a bug must still leave a finished, readable record
            log.exception("ingestion job %s failed", job.id)
            job.status, job.failure = JobStatus.FAILED, f"internal error: {type(exc).__name__}"
        else:
            job.status = JobStatus.COMPLETED_WITH_ERRORS if job.errors else JobStatus.SUCCEEDED
        job.finished_at = time.time()
        self._jobs.save(job)
        return job

    def _run(self, source: DocumentSource, job: JobRecord, progress: ProgressCallback | None) -> None:
        indexed = self._index.document_states(tenant_id=source.tenant_id, source_id=source.source_id)
        # A scoped run answers only for its part of the source; the rest belongs to other runs.
        states = {path: state for path, state in indexed.items() if source.covers(path)}
        items = list(source.items())
        job.files_total = len(items)
        if progress:
            progress(job, None)
        listed = {item.path for item in items if item.has_identity}
        self._delete(job, (state for path, state in states.items() if path not in listed))
        last_save = time.monotonic()
        for item in items:
            existing = states.get(item.path) if item.has_identity else None
            job.record(self._guarded(source, item, existing, job))
            job.files_done += 1
            if progress:
                progress(job, item.path)
            if time.monotonic() - last_save > 1.0:
                self._jobs.save(job)
                last_save = time.monotonic()

    def _delete(self, job: JobRecord, gone: Iterable[DocumentState]) -> None:
        for state in gone:
            self._index.delete_document(state.doc_id)
            job.record(FileOutcome.DELETED)

    def _guarded(
        self, source: DocumentSource, item: SourceItem, existing: DocumentState | None, job: JobRecord
    ) -> FileOutcome:
        """One file's outcome; whatever goes wrong with it stays its own error."""
        try:
            return self._ingest_item(source, item, existing, job)
        except IndexUnavailableError:
            raise
        except _FileRefused as exc:
            job.errors.append(FileIssue(item.path, exc.reason))
        except Exception as exc:
            log.exception("ingestion of one file failed (job %s)", job.id)
            job.errors.append(FileIssue(item.path, _unexpected(exc)))
        if existing is not None:
            self._remove_stale(existing, job)
        return FileOutcome.FAILED

    def _remove_stale(self, existing: DocumentState, job: JobRecord) -> None:
        """Stale content (or a wider ACL) must not outlive a file that could not be handled."""
        try:
            self._index.delete_document(existing.doc_id)
        except IndexUnavailableError:
            raise
        except Exception:  # the file is already an error line; the run goes on
            log.exception("could not remove the earlier version of %s (job %s)", existing.path, job.id)
            job.errors.append(FileIssue(existing.path, "its earlier version could not be removed from the index"))

    def _ingest_item(
        self, source: DocumentSource, item: SourceItem, existing: DocumentState | None, job: JobRecord
    ) -> FileOutcome:
        decision = item.decision
        if isinstance(decision, Nobody) and not decision.cause.stores_content:
            return self._withhold(item, decision, existing, job)
        warnings = decision.warnings if isinstance(decision, Granted) else (decision.reason,)
        job.warnings.extend(FileIssue(item.path, warning) for warning in warnings)
        if item.size > self._max_file_bytes:
            raise _FileRefused(f"file is larger than the limit of {self._max_file_bytes / MB:g} MB")
        try:
            content_hash = file_sha256(item.local_path)
        except OSError as exc:
            raise _FileRefused(f"cannot read file: {exc.strerror or type(exc).__name__}") from exc
        acl = stored_acl(decision)
        if existing is not None and existing.content_hash == content_hash:
            return self._refresh_acl(existing, acl, job)
        try:
            written = self._index_content(source, item, acl, content_hash, job)
        except DocumentParseError as exc:
            raise _FileRefused(exc.reason) from exc
        job.chunks_written += written
        return FileOutcome.UPDATED if existing is not None else FileOutcome.ADDED

    def _withhold(
        self, item: SourceItem, decision: Nobody, existing: DocumentState | None, job: JobRecord
    ) -> FileOutcome:
        """A file that is not indexed: report it, and remove what an earlier run indexed at its path."""
        (job.errors if decision.cause.is_error else job.warnings).append(FileIssue(item.path, decision.reason))
        if existing is not None:
            self._index.delete_document(existing.doc_id)
        if decision.cause.is_error:
            return FileOutcome.FAILED
        return FileOutcome.DELETED if existing is not None else FileOutcome.SKIPPED

    def _refresh_acl(self, existing: DocumentState, acl: AccessList, job: JobRecord) -> FileOutcome:
        if existing.acl_hash == acl.fingerprint():
            return FileOutcome.UNCHANGED
        started = time.perf_counter()
        self._index.update_acl(existing.doc_id, acl)
        job.timings["index_s"] += time.perf_counter() - started
        return FileOutcome.ACL_UPDATED

    def _index_content(
        self, source: DocumentSource, item: SourceItem, acl: AccessList, content_hash: str, job: JobRecord
    ) -> int:
        started = time.perf_counter()
        parsed = self._parse(item.local_path)
        chunks = chunk_document(parsed, max_chars=self._max_chunk_chars)
        job.timings["parse_s"] += time.perf_counter() - started
        if not chunks:
            raise DocumentParseError("no text found")
        if len(chunks) > self._max_chunks:
            raise DocumentParseError(f"file has more than the limit of {self._max_chunks} chunks")
        title = parsed.title or Path(item.path).stem
        started = time.perf_counter()
        vectors = self._embedder.embed_documents([embedding_text(title=title, chunk=c) for c in chunks])
        job.timings["embed_s"] += time.perf_counter() - started
        meta = DocumentMeta(
            doc_id=document_id(tenant_id=source.tenant_id, source_id=source.source_id, path=item.path),
            tenant_id=source.tenant_id,
            source_id=source.source_id,
            path=item.path,
            uri=item.path,
            title=title,
            format=item.local_path.suffix.lower().lstrip("."),
            content_hash=content_hash,
            modified_at=item.modified_at,
        )
        started = time.perf_counter()
        self._index.replace_document(
            IndexedDocument(meta=meta, acl=acl, chunks=tuple(chunks), vectors=tuple(tuple(v) for v in vectors))
        )
        job.timings["index_s"] += time.perf_counter() - started
        return len(chunks)


def _unexpected(exc: Exception) -> str:
    # Job records reach API clients: only messages written for them (``public``) are shown.
    if isinstance(exc, ClearanceError) and exc.public:
        return f"{type(exc).__name__}: {exc}"
    return f"internal error while handling this file ({type(exc).__name__}); not indexed"
