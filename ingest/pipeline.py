"""The incremental ingestion run: source -> parse -> chunk -> embed -> index.

Per file: unchanged content and ACL are skipped; an ACL-only change rewrites
payloads without re-embedding; a content change replaces the document's chunks
(never mixed, see index.ports); files gone from the source are removed.
One bad file is an error line in the job, never an aborted run.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from acl.access import AccessList
from core.errors import ClearanceError, DocumentParseError, IndexUnavailableError
from core.records import DocumentMeta, DocumentState
from index.ports import ChunkIndex, Embedder, IndexedDocument
from ingest.chunk import chunk_document, embedding_text
from ingest.jobs import FileIssue, FileOutcome, JobRecord, JobStatus, JobStore
from ingest.parse.elements import ParsedDocument
from ingest.source import DocumentSource, SourceItem, file_sha256

log = logging.getLogger(__name__)
_DOC_NAMESPACE = uuid.UUID("0d7e4b8a-3c1f-4f7e-8b2a-9e6d5c4b3a21")
NO_ACL_WARNING = "no ACL manifest applies: stored as visible to nobody"
ProgressCallback = Callable[[JobRecord, str | None], None]
Parser = Callable[[Path], ParsedDocument]


def document_id(*, tenant_id: str, source_id: str, path: str) -> str:
    return str(uuid.uuid5(_DOC_NAMESPACE, f"{tenant_id}|{source_id}|{path}"))


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
    ) -> None:
        self._index = index
        self._embedder = embedder
        self._jobs = jobs
        self._parse = parser
        self._max_chunk_chars = max_chunk_chars

    def run(
        self, source: DocumentSource, *, job: JobRecord | None = None, progress: ProgressCallback | None = None
    ) -> JobRecord:
        job = job or self._jobs.create(source=source.source_id, tenant_id=source.tenant_id)
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
        states = self._index.document_states(tenant_id=source.tenant_id, source_id=source.source_id)
        items = list(source.items())
        job.files_total = len(items)
        if progress:
            progress(job, None)
        last_save = time.monotonic()
        for item in items:
            outcome = self._ingest_item(source, item, states.pop(item.path, None), job)
            job.record(outcome)
            job.files_done += 1
            if progress:
                progress(job, item.path)
            if time.monotonic() - last_save > 1.0:
                self._jobs.save(job)
                last_save = time.monotonic()
        for gone in states.values():
            self._index.delete_document(gone.doc_id)
            job.record(FileOutcome.DELETED)

    def _ingest_item(
        self, source: DocumentSource, item: SourceItem, existing: DocumentState | None, job: JobRecord
    ) -> FileOutcome:
        if item.acl_error is not None:
            # Fail closed: without a readable manifest nobody may see the document.
            if existing is not None:
                self._index.delete_document(existing.doc_id)
            job.errors.append(FileIssue(item.path, f"ACL manifest error, not indexed: {item.acl_error}"))
            return FileOutcome.FAILED
        acl = item.acl if item.acl is not None else AccessList.nobody()
        if acl.is_empty:
            job.warnings.append(FileIssue(item.path, NO_ACL_WARNING))
        try:
            content_hash = file_sha256(item.local_path)
        except OSError as exc:
            job.errors.append(FileIssue(item.path, f"cannot read file: {exc.strerror or type(exc).__name__}"))
            return FileOutcome.FAILED
        if existing is not None and existing.content_hash == content_hash:
            if existing.acl_hash == acl.fingerprint():
                return FileOutcome.UNCHANGED
            started = time.perf_counter()
            self._index.update_acl(existing.doc_id, acl)
            job.timings["index_s"] += time.perf_counter() - started
            return FileOutcome.ACL_UPDATED
        try:
            written = self._index_content(source, item, acl, content_hash, job)
        except DocumentParseError as exc:
            if existing is not None:  # stale content must not outlive a file that no longer parses
                self._index.delete_document(existing.doc_id)
            job.errors.append(FileIssue(item.path, exc.reason))
            return FileOutcome.FAILED
        except IndexUnavailableError:
            raise
        except ClearanceError as exc:
            job.errors.append(FileIssue(item.path, f"{type(exc).__name__}: {exc}"))
            return FileOutcome.FAILED
        job.chunks_written += written
        return FileOutcome.UPDATED if existing is not None else FileOutcome.ADDED

    def _index_content(
        self, source: DocumentSource, item: SourceItem, acl: AccessList, content_hash: str, job: JobRecord
    ) -> int:
        started = time.perf_counter()
        parsed = self._parse(item.local_path)
        chunks = chunk_document(parsed, max_chars=self._max_chunk_chars)
        job.timings["parse_s"] += time.perf_counter() - started
        if not chunks:
            raise DocumentParseError("no text found")
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
