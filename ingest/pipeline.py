"""The incremental ingestion run: source -> parse -> chunk -> embed -> index.

Per file: unchanged content and ACL are skipped; an ACL-only change rewrites
payloads without re-embedding; a content change replaces the document's chunks
(never mixed, see index.ports); files gone from the source are removed.

Three stages overlap, so that a corpus of short files runs at the embedder's
speed instead of paying a parse, an embedder call and index round trips in turn
for every file: ``parse_workers`` threads read, hash, parse and chunk files (each
waits on its own parsing worker process when parsing is isolated); the job's
thread embeds the chunks of many files in one call (up to
``embed_batch_chunks``, or whatever is ready when nothing else is); one index
thread writes each file as its own staged version and publishes it, while the
next batch is embedded. Outcomes, counters, errors and progress are written
into the job by the job's thread alone. ``parse_s`` sums the parsing threads'
time, so with overlap the stage times add up to more than the job's duration.

Fail closed: documents gone from the walked part of the source are deleted
first, before any slow parsing, so a revocation never waits behind (or is lost
to) another file's failure. Any exception while handling one file is that
file's error, its earlier version (and anything staged for it) is removed, and
the run goes on; only an unreachable index fails the whole job. Each file acts
on the access decision its source made (:mod:`ingest.acl_decision`), never on
an ACL of its own, and carries it in its own record from admission to its index
write: files embedded together share an embedder call, never a record.
Bounds: a file over ``max_file_bytes`` is refused before it is read, one over
``max_chunks_per_file`` chunks is refused before anything of it is indexed; at
most ``embed_batch_chunks + parse_workers`` files are parsed ahead.
Cancelled through ``cancel`` or a cancel request in the job store (polled, see
:mod:`ingest.job_cancel`), a job starts nothing new, lets the index writes already
under way finish, and ends ``cancelled`` saying after how many files; a job whose
request came before it started ends ``cancelled`` without touching the index.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from acl.access import AccessList
from core.cancel import Cancellation
from core.errors import ClearanceError, DocumentParseError, IndexUnavailableError
from core.records import ChunkDraft, DocumentMeta, DocumentState
from index.ports import ChunkIndex, Embedder, IndexedDocument
from ingest.acl_decision import NO_ACL_WARNING, Granted, Nobody, stored_acl
from ingest.chunk import chunk_document, embedding_text
from ingest.job_cancel import DEFAULT_POLL_S, StoredCancellation
from ingest.jobs import CANCELLED_BEFORE_START, FileIssue, FileOutcome, JobRecord, JobRecordStore, JobStatus
from ingest.parse.elements import ParsedDocument
from ingest.source import DocumentSource, SourceItem, file_sha256

__all__ = ["NO_ACL_WARNING", "IngestionPipeline", "document_id"]

log = logging.getLogger(__name__)
_DOC_NAMESPACE = uuid.UUID("0d7e4b8a-3c1f-4f7e-8b2a-9e6d5c4b3a21")
MB = 1024 * 1024
DEFAULT_MAX_FILE_BYTES = 100 * MB
DEFAULT_MAX_CHUNKS_PER_FILE = 5000
# Chunks per embedder call, measured on short files (one chunk each) on a busy 2-core machine:
# torch all-MiniLM-L6-v2 on one thread ran ~1.8x faster 64 to a call than one per call (it
# batches them and sorts one call's texts by length) and gained little past 64; the int8 ONNX
# embedder runs text by text, so for it a call only shares tokenization and call overhead.
# Larger calls also hold a torch embedder's lock longer against the API's queries.
DEFAULT_EMBED_BATCH_CHUNKS = 64
_SAVE_EVERY_S = 1.0
_POLL_S = 0.5
ProgressCallback = Callable[[JobRecord, str | None], None]
Parser = Callable[[Path], ParsedDocument]


def document_id(*, tenant_id: str, source_id: str, path: str) -> str:
    return str(uuid.uuid5(_DOC_NAMESPACE, f"{tenant_id}|{source_id}|{path}"))


class _FileRefused(Exception):
    """One file cannot be indexed; ``reason`` goes to the job record."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Cancelled(Exception):
    """The job's cancellation was requested; nothing new starts."""


@dataclass(frozen=True, slots=True)
class _Admitted:
    """A file whose content must be looked at, with the access decision it was admitted under."""

    item: SourceItem
    existing: DocumentState | None
    acl: AccessList
    doc_id: str
    tenant_id: str
    source_id: str


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A file read, parsed and chunked (or refused), ready to embed; built on a parsing thread."""

    admitted: _Admitted
    parse_s: float
    failure: str | None = None
    unchanged: bool = False  # same content as the indexed version: only the ACL may need writing
    meta: DocumentMeta | None = None
    chunks: tuple[ChunkDraft, ...] = ()
    texts: tuple[str, ...] = ()


@dataclass(slots=True)
class _Finished:
    """What became of one file; recorded into the job by the job's thread."""

    path: str
    outcome: FileOutcome
    errors: list[str] = field(default_factory=list)
    chunks: int = 0
    index_s: float = 0.0


# A file decided without reading it, with the version an earlier run indexed at its path (to remove).
_Concluded = tuple[_Finished, DocumentState | None]


class IngestionPipeline:
    """Runs ingestion jobs against one index with one embedder.

    ``parser`` is called from ``parse_workers`` threads at once: pass an
    :class:`ingest.parse.IsolatedParser` with that many workers, or an in-process
    parser with ``parse_workers=1``.
    """

    def __init__(
        self,
        *,
        index: ChunkIndex,
        embedder: Embedder,
        jobs: JobRecordStore,
        parser: Parser,
        max_chunk_chars: int = 1000,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_chunks_per_file: int = DEFAULT_MAX_CHUNKS_PER_FILE,
        parse_workers: int = 1,
        embed_batch_chunks: int = DEFAULT_EMBED_BATCH_CHUNKS,
        cancel_poll_s: float = DEFAULT_POLL_S,
    ) -> None:
        if max_file_bytes <= 0 or max_chunks_per_file <= 0:
            raise ValueError("max_file_bytes and max_chunks_per_file must be positive")
        if parse_workers < 1 or embed_batch_chunks < 1:
            raise ValueError("parse_workers and embed_batch_chunks must be at least 1")
        self._index = index
        self._embedder = embedder
        self._jobs = jobs
        self._parse = parser
        self._max_chunk_chars = max_chunk_chars
        self._max_file_bytes = max_file_bytes
        self._max_chunks = max_chunks_per_file
        self._parse_workers = parse_workers
        self._embed_batch_chunks = embed_batch_chunks
        self._cancel_poll_s = cancel_poll_s  # how often a run reads the job store for a cancel request

    def run(
        self,
        source: DocumentSource,
        *,
        job: JobRecord | None = None,
        progress: ProgressCallback | None = None,
        cancel: Cancellation | None = None,
        raise_unavailable: bool = False,
    ) -> JobRecord:
        """Ingest ``source`` into the index and return the finished job record.

        With ``raise_unavailable`` an unreachable index raises :class:`IndexUnavailableError` and leaves the
        record as it stands (running), for a caller that retries: a record saved as failed and rewritten
        as queued a moment later would show a watching admin a failure that never happened.
        """
        job = job or self._jobs.create(source=source.display_source, tenant_id=source.tenant_id)
        # Job records go to API clients: they name the source without the server's absolute path.
        job.source = source.display_source
        cancellation = StoredCancellation(jobs=self._jobs, job_id=job.id, poll_s=self._cancel_poll_s, also=cancel)
        if cancellation.cancelled:  # asked while it waited in a queue: it never starts
            job.status, job.failure, job.finished_at = JobStatus.CANCELLED, CANCELLED_BEFORE_START, time.time()
            self._jobs.save(job)
            return job
        job.status, job.started_at = JobStatus.RUNNING, time.time()
        self._jobs.save(job)
        try:
            self._run(source, job, progress, cancellation)
        except IndexUnavailableError as exc:
            if raise_unavailable:
                raise
            job.status, job.failure = JobStatus.FAILED, f"index unavailable: {exc}"
        except _Cancelled:
            job.status = JobStatus.CANCELLED
            job.failure = f"cancelled after {job.files_done} of {job.files_total} files"
        except Exception as exc:  # a bug must still leave a finished, readable record
            log.exception("ingestion job %s failed", job.id)
            job.status, job.failure = JobStatus.FAILED, f"internal error: {type(exc).__name__}"
        else:
            job.status = JobStatus.COMPLETED_WITH_ERRORS if job.errors else JobStatus.SUCCEEDED
        job.finished_at = time.time()
        self._jobs.save(job)
        return job

    def _run(
        self, source: DocumentSource, job: JobRecord, progress: ProgressCallback | None, cancel: Cancellation
    ) -> None:
        indexed = self._index.document_states(tenant_id=source.tenant_id, source_id=source.source_id)
        # A scoped run answers only for its part of the source; the rest belongs to other runs.
        states = {path: state for path, state in indexed.items() if source.covers(path)}
        items = list(source.items())
        job.files_total = len(items)
        if progress:
            progress(job, None)
        listed = {item.path for item in items if item.has_identity}
        self._delete(job, (state for path, state in states.items() if path not in listed))
        stages = _Stages(
            index=self._index,
            embedder=self._embedder,
            prepare=self._prepare,
            parse_workers=self._parse_workers,
            embed_batch_chunks=self._embed_batch_chunks,
            job=job,
            progress=progress,
            save=self._jobs.save,
            cancel=cancel,
        )
        with stages:
            stages.run(self._admit(source, item, states.get(item.path), job) for item in items)

    def _delete(self, job: JobRecord, gone: Iterable[DocumentState]) -> None:
        for state in gone:
            self._index.delete_document(state.doc_id)
            job.record(FileOutcome.DELETED)

    def _admit(
        self, source: DocumentSource, item: SourceItem, indexed: DocumentState | None, job: JobRecord
    ) -> _Admitted | _Concluded:
        """What can be decided about a file without reading it; the rest is for the stages."""
        existing = indexed if item.has_identity else None  # an escaped name is nobody's document
        decision = item.decision
        if isinstance(decision, Nobody) and not decision.cause.stores_content:
            # Not indexed: reported, and what an earlier run indexed at its path is removed.
            if decision.cause.is_error:
                return _Finished(item.path, FileOutcome.FAILED, [decision.reason]), existing
            job.warnings.append(FileIssue(item.path, decision.reason))
            return _Finished(item.path, FileOutcome.DELETED if existing else FileOutcome.SKIPPED), existing
        warnings = decision.warnings if isinstance(decision, Granted) else (decision.reason,)
        job.warnings.extend(FileIssue(item.path, warning) for warning in warnings)
        if item.size > self._max_file_bytes:
            reason = f"file is larger than the limit of {self._max_file_bytes / MB:g} MB"
            return _Finished(item.path, FileOutcome.FAILED, [reason]), existing
        tenant_id, source_id = source.tenant_id, source.source_id
        doc_id = document_id(tenant_id=tenant_id, source_id=source_id, path=item.path)
        return _Admitted(item, existing, stored_acl(decision), doc_id, tenant_id, source_id)

    def _prepare(self, admitted: _Admitted) -> _Prepared:
        """Read, parse and chunk one file (on a parsing thread); any failure is that file's."""
        started = time.perf_counter()
        try:
            return self._read(admitted, started)
        except (_FileRefused, DocumentParseError) as exc:
            failure = exc.reason
        except Exception as exc:
            log.exception("ingestion of one file failed")
            failure = unexpected(exc)
        return _Prepared(admitted, time.perf_counter() - started, failure=failure)

    def _read(self, admitted: _Admitted, started: float) -> _Prepared:
        item, existing = admitted.item, admitted.existing
        try:
            content_hash = file_sha256(item.local_path)
        except OSError as exc:
            raise _FileRefused(f"cannot read file: {exc.strerror or type(exc).__name__}") from exc
        if existing is not None and existing.content_hash == content_hash:
            return _Prepared(admitted, time.perf_counter() - started, unchanged=True)
        parsed = self._parse(item.local_path)
        chunks = tuple(chunk_document(parsed, max_chars=self._max_chunk_chars))
        if not chunks:
            raise _FileRefused("no text found")
        if len(chunks) > self._max_chunks:
            raise _FileRefused(f"file has more than the limit of {self._max_chunks} chunks")
        title = parsed.title or Path(item.path).stem
        meta = DocumentMeta(
            doc_id=admitted.doc_id,
            tenant_id=admitted.tenant_id,
            source_id=admitted.source_id,
            path=item.path,
            uri=item.path,
            title=title,
            format=item.local_path.suffix.lower().lstrip("."),
            content_hash=content_hash,
            modified_at=item.modified_at,
        )
        texts = tuple(embedding_text(title=title, chunk=chunk) for chunk in chunks)
        return _Prepared(admitted, time.perf_counter() - started, meta=meta, chunks=chunks, texts=texts)


class _Stages:
    """The overlapping stages of one run (see the module docstring); used by the job's thread only."""

    def __init__(
        self,
        *,
        index: ChunkIndex,
        embedder: Embedder,
        prepare: Callable[[_Admitted], _Prepared],
        parse_workers: int,
        embed_batch_chunks: int,
        job: JobRecord,
        progress: ProgressCallback | None,
        save: Callable[[JobRecord], None],
        cancel: Cancellation,
    ) -> None:
        self._index = index
        self._embedder = embedder
        self._prepare = prepare
        self._batch_chunks = embed_batch_chunks
        self._job = job
        self._progress = progress
        self._save = save
        self._cancel = cancel
        self._parsing = ThreadPoolExecutor(parse_workers, thread_name_prefix="ingest-parse")
        # One writer: a file's writes stay in order, and the index sees one writer per job.
        self._writing = ThreadPoolExecutor(1, thread_name_prefix="ingest-index")
        self._in_parse: dict[Future[_Prepared], None] = {}  # an ordered set
        self._ready: list[_Prepared] = []
        self._ready_chunks = 0
        self._in_write: deque[Future[list[_Finished]]] = deque()
        self._work: Iterator[_Admitted | _Concluded] = iter(())
        # Enough files parsed ahead to fill a batch of one-chunk files while one is embedded.
        self._ahead = embed_batch_chunks + parse_workers
        self._last_save = time.monotonic()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for future in self._in_parse:
            future.cancel()
        try:
            if exc_type is _Cancelled:
                self._record_writes(block=True)  # what was already being written is in the record
        finally:
            self._parsing.shutdown(wait=True, cancel_futures=True)
            self._writing.shutdown(wait=True, cancel_futures=True)

    def run(self, work: Iterable[_Admitted | _Concluded]) -> None:
        """Every file of ``work`` through the stages; returns once each one's outcome is recorded."""
        self._work = iter(work)
        self._fill()
        while self._in_parse or self._ready:
            self._step()
        self._record_writes(block=True)

    def conclude(self, finished: _Finished, clear: DocumentState | None) -> None:
        """A file's outcome, once what an earlier run indexed at its path (``clear``) is removed."""
        if clear is None:
            self._record(finished)
        else:
            self._write(functools.partial(self._cleared, finished, clear.doc_id))

    def _fill(self) -> None:
        """Admit files until ``ahead`` of them are being read and parsed (or none is left)."""
        while len(self._in_parse) < self._ahead:
            self._check_cancel()
            admitted = next(self._work, None)
            if admitted is None:
                return
            if isinstance(admitted, _Admitted):
                self._in_parse[self._parsing.submit(self._prepare, admitted)] = None
            else:
                self.conclude(*admitted)

    def _step(self) -> None:
        self._check_cancel()
        done = [future for future in self._in_parse if future.done()]
        if not done and not self._ready:
            # Bounded, so that a cancellation is seen while a slow file is still being parsed.
            wait(self._in_parse, timeout=_POLL_S, return_when=FIRST_COMPLETED)
            done = [future for future in self._in_parse if future.done()]
        for future in done:
            del self._in_parse[future]
            self._take(future.result())
        self._fill()  # the parsers get more work before the embedder takes this thread
        # A full batch, or whatever is ready when no parse has finished meanwhile: never idle.
        nothing_new = not any(future.done() for future in self._in_parse)
        if self._ready and (self._ready_chunks >= self._batch_chunks or nothing_new):
            self._embed()
        self._record_writes(block=False)

    def _take(self, prepared: _Prepared) -> None:
        admitted, existing = prepared.admitted, prepared.admitted.existing
        self._job.timings["parse_s"] += prepared.parse_s
        if prepared.failure is not None:
            self.conclude(_Finished(admitted.item.path, FileOutcome.FAILED, [prepared.failure]), existing)
        elif prepared.unchanged and existing is not None:
            if existing.acl_hash == admitted.acl.fingerprint():
                self._record(_Finished(admitted.item.path, FileOutcome.UNCHANGED))
            else:
                self._write(functools.partial(self._guarded, admitted, functools.partial(self._update_acl, admitted)))
        else:
            self._ready.append(prepared)
            self._ready_chunks += len(prepared.texts)

    def _embed(self) -> None:
        batch, self._ready, self._ready_chunks = self._ready, [], 0
        self._check_cancel()
        started = time.perf_counter()
        vectors = self._vectors(batch)
        self._job.timings["embed_s"] += time.perf_counter() - started
        writes: list[Callable[[], _Finished]] = []
        for prepared, own in zip(batch, vectors, strict=True):
            admitted = prepared.admitted
            if isinstance(own, str):
                self.conclude(_Finished(admitted.item.path, FileOutcome.FAILED, [own]), admitted.existing)
            else:
                publish = functools.partial(self._publish, prepared, own)
                writes.append(functools.partial(self._guarded, admitted, publish))
        if writes:
            self._write(lambda: [write() for write in writes])

    def _vectors(self, batch: list[_Prepared]) -> list[list[list[float]] | str]:
        """Each file's own vectors, or why it has none: one embedder call for the whole batch."""
        texts = [text for prepared in batch for text in prepared.texts]
        try:
            vectors = self._embedder.embed_documents(texts)
            if len(vectors) != len(texts):
                raise ValueError(f"the embedder returned {len(vectors)} vectors for {len(texts)} texts")
        except Exception as exc:
            if len(batch) == 1:
                log.exception("embedding of one file failed")
                return [unexpected(exc)]
            # One file's text must not fail the others: each file on its own.
            return [self._vectors([prepared])[0] for prepared in batch]
        own: list[list[list[float]] | str] = []
        start = 0
        for prepared in batch:
            own.append(vectors[start : start + len(prepared.texts)])
            start += len(prepared.texts)
        return own

    # -- on the index thread ----------------------------------------------------------

    def _publish(self, prepared: _Prepared, vectors: list[list[float]]) -> _Finished:
        admitted, meta = prepared.admitted, prepared.meta
        if meta is None or len(vectors) != len(prepared.chunks):
            raise ValueError("a document to publish needs its metadata and one vector per chunk")
        started = time.perf_counter()
        self._index.replace_document(
            IndexedDocument(
                meta=meta,
                acl=admitted.acl,
                chunks=prepared.chunks,
                vectors=tuple(tuple(vector) for vector in vectors),
            )
        )
        outcome = FileOutcome.UPDATED if admitted.existing is not None else FileOutcome.ADDED
        return _Finished(admitted.item.path, outcome, chunks=len(prepared.chunks), index_s=_since(started))

    def _update_acl(self, admitted: _Admitted) -> _Finished:
        started = time.perf_counter()
        self._index.update_acl(admitted.existing.doc_id if admitted.existing else admitted.doc_id, admitted.acl)
        return _Finished(admitted.item.path, FileOutcome.ACL_UPDATED, index_s=_since(started))

    def _guarded(self, admitted: _Admitted, operation: Callable[[], _Finished]) -> _Finished:
        """One file's index write; whatever goes wrong with it stays that file's error."""
        try:
            return operation()
        except IndexUnavailableError:
            raise
        except Exception as exc:
            log.exception("indexing of one file failed (job %s)", self._job.id)
            failed = _Finished(admitted.item.path, FileOutcome.FAILED, [unexpected(exc)])
            # Its earlier version, and anything staged for this one, must not outlive the failure.
            return self._cleared(failed, admitted.doc_id)

    def _cleared(self, finished: _Finished, doc_id: str) -> _Finished:
        """``finished``, once every stored version of ``doc_id`` is gone (or it says why not)."""
        started = time.perf_counter()
        try:
            self._index.delete_document(doc_id)
        except IndexUnavailableError:
            raise
        except Exception:  # the file is already an error line or a removal; the run goes on
            log.exception("could not remove the earlier version of %s (job %s)", finished.path, self._job.id)
            finished.errors.append("its earlier version could not be removed from the index")
            finished.outcome = FileOutcome.FAILED
        finished.index_s += _since(started)
        return finished

    # -- back on the job's thread -----------------------------------------------------

    def _write(self, task: Callable[[], list[_Finished]] | Callable[[], _Finished]) -> None:
        self._in_write.append(self._writing.submit(_as_list, task))

    def _record_writes(self, *, block: bool) -> None:
        while self._in_write and (block or self._in_write[0].done()):
            for finished in self._in_write.popleft().result():
                self._record(finished)

    def _record(self, finished: _Finished) -> None:
        job = self._job
        job.errors.extend(FileIssue(finished.path, reason) for reason in finished.errors)
        job.chunks_written += finished.chunks
        job.timings["index_s"] += finished.index_s
        job.record(finished.outcome)
        job.files_done += 1
        if self._progress:
            self._progress(job, finished.path)
        if time.monotonic() - self._last_save > _SAVE_EVERY_S:
            self._save(job)
            self._last_save = time.monotonic()

    def _check_cancel(self) -> None:
        if self._cancel.cancelled:
            raise _Cancelled


def _as_list(task: Callable[[], list[_Finished]] | Callable[[], _Finished]) -> list[_Finished]:
    result = task()
    return result if isinstance(result, list) else [result]


def _since(started: float) -> float:
    return time.perf_counter() - started


def unexpected(exc: Exception) -> str:
    # Job records reach API clients: only messages written for them (``public``) are shown.
    if isinstance(exc, ClearanceError) and exc.public:
        return f"{type(exc).__name__}: {exc}"
    return f"internal error while handling this file ({type(exc).__name__}); not indexed"
