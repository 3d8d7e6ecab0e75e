"""Reading what an answer cited: one passage in its context, a whole document, its original file.

Every read is a query of the index under the caller's security filter
(:meth:`index.ports.ChunkIndex.read`): a chunk or document the caller may not
read is indistinguishable from one that does not exist (the same
:class:`NotFoundError`, the same message). The original file is served only
when all of these hold, else the caller gets the text of the chunks they may
read instead:

- the document's source is a folder that is, today, one of the caller's own
  tenant's allowed roots (a root an operator removed stops serving files);
- the file lies inside that folder with no symbolic link on the way and is a
  regular file no larger than the limit;
- its bytes are exactly the bytes that were indexed (the stored content hash):
  a file changed since ingestion may carry content the stored ACL never covered.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import stat
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from qdrant_client import models

from acl.principal import Principal
from core.errors import NotFoundError
from index.ports import ChunkIndex, ReadableChunk

FS_SOURCE_PREFIX = "fs:"  # ingest.source.FilesystemSource's source ids
NOT_FOUND = "no such document, or you may not read it"
#: Formats a browser may show inline; anything else is served as a download (no HTML from our origin).
INLINE_TYPES = frozenset({"application/pdf", "text/plain", "image/png", "image/jpeg", "image/gif"})


@dataclass(frozen=True, slots=True)
class PassageInContext:
    """A cited chunk, whole, with the permitted chunks just before and after it in its document."""

    chunk: ReadableChunk
    before: tuple[ReadableChunk, ...]
    after: tuple[ReadableChunk, ...]


@dataclass(frozen=True, slots=True)
class PermittedDocument:
    """The chunks of one document the caller may read, in document order (never empty)."""

    doc_id: str
    title: str
    source: str
    chunks: tuple[ReadableChunk, ...]

    def text(self) -> str:
        """A plain-text rendering: section headings where they change, then the chunks' text."""
        lines: list[str] = [self.title, "=" * max(len(self.title), 3), ""]
        section: str | None = None
        for chunk in self.chunks:
            p = chunk.passage
            if p.section and p.section != section:
                section = p.section
                lines += [section, "-" * max(len(section), 3)]
            lines += [p.text, ""]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class OriginalFile:
    """The indexed bytes of a document, with how to present them."""

    content: bytes
    filename: str
    media_type: str

    @property
    def inline(self) -> bool:
        return self.media_type in INLINE_TYPES


def canonical_id(value: str) -> str:
    """Chunk and document ids are UUIDs; anything else (paths, '..', NUL) names nothing."""
    try:
        parsed = uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise NotFoundError(NOT_FOUND) from None
    if len(value) != 36:  # braces, URNs and undashed forms: one spelling per id
        raise NotFoundError(NOT_FOUND)
    return str(parsed)


class DocumentReader:
    """Reads cited passages and documents for a caller; policy (roots, limits) lives here, not in routes."""

    def __init__(
        self,
        *,
        index: ChunkIndex,
        allowed_roots: Mapping[str, Sequence[Path]],
        max_file_bytes: int,
        max_chunks: int,
        context_chunks: int = 1,
    ) -> None:
        self._index = index
        self._roots = {tenant: tuple(Path(root).resolve() for root in roots) for tenant, roots in allowed_roots.items()}
        self._max_file_bytes = max_file_bytes
        self._max_chunks = max_chunks
        self._context = context_chunks

    def passage(self, principal: Principal, chunk_id: str) -> PassageInContext:
        chunk_id = canonical_id(chunk_id)
        found = self._index.read(
            principal, narrowing=models.Filter(must=[models.HasIdCondition(has_id=[chunk_id])]), limit=1
        )
        if not found:
            raise NotFoundError(NOT_FOUND)
        chunk = found[0]
        lo, hi = chunk.chunk_index - self._context, chunk.chunk_index + self._context
        near = models.Filter(
            must=[
                _match("doc_id", chunk.passage.doc_id),
                _match("version", chunk.passage.version),
                models.FieldCondition(key="chunk_index", range=models.Range(gte=lo, lte=hi)),
            ]
        )
        context = self._index.read(principal, narrowing=near, limit=2 * self._context + 1)
        return PassageInContext(
            chunk=chunk,
            before=tuple(c for c in context if c.chunk_index < chunk.chunk_index),
            after=tuple(c for c in context if c.chunk_index > chunk.chunk_index),
        )

    def readable_chunks(self, principal: Principal, chunk_ids: set[str]) -> set[str]:
        """Which of ``chunk_ids`` ``principal`` may read now (one query under their security filter)."""
        wanted: list[int | str | uuid.UUID] = []
        for chunk_id in chunk_ids:
            try:
                wanted.append(canonical_id(chunk_id))
            except NotFoundError:  # not an id: names nothing anyone may read
                continue
        if not wanted:
            return set()
        found = self._index.read(
            principal, narrowing=models.Filter(must=[models.HasIdCondition(has_id=wanted)]), limit=len(wanted)
        )
        return {chunk.passage.chunk_id for chunk in found}

    def document(self, principal: Principal, doc_id: str) -> PermittedDocument:
        doc_id = canonical_id(doc_id)
        chunks = self._index.read(
            principal, narrowing=models.Filter(must=[_match("doc_id", doc_id)]), limit=self._max_chunks
        )
        if not chunks:
            raise NotFoundError(NOT_FOUND)
        # One version: a replacement publishing between scroll pages must not mix two.
        version = chunks[0].passage.version
        chunks = [c for c in chunks if c.passage.version == version]
        first = chunks[0].passage
        return PermittedDocument(doc_id=doc_id, title=first.title, source=first.source, chunks=tuple(chunks))

    def original(self, principal: Principal, document: PermittedDocument) -> OriginalFile | None:
        """The indexed bytes of ``document`` (already read by this ``principal``), or None: serve the text."""
        chunk = document.chunks[0]
        if not chunk.source_id.startswith(FS_SOURCE_PREFIX):
            return None
        root = Path(chunk.source_id.removeprefix(FS_SOURCE_PREFIX))
        if root not in self._roots.get(principal.tenant_id, ()):
            return None
        relative = PurePosixPath(chunk.passage.source)
        if relative.is_absolute() or not relative.parts or any(part in ("", ".", "..") for part in relative.parts):
            return None
        content = _read_regular_file(root, relative.parts, limit=self._max_file_bytes)
        if content is None or hashlib.sha256(content).hexdigest() != chunk.content_hash:
            return None
        name = relative.name
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return OriginalFile(content=content, filename=name, media_type=media_type)


def _read_regular_file(root: Path, parts: Sequence[str], *, limit: int) -> bytes | None:
    """The bytes of ``root/parts``, opened one component at a time without following a link; None otherwise."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(root, flags | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            child = os.open(part, flags | (0 if last else os.O_DIRECTORY), dir_fd=fd)
            os.close(fd)
            fd = child
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        with os.fdopen(fd, "rb", closefd=True) as handle:
            fd = -1
            content = handle.read(limit + 1)
        return content if len(content) <= limit else None
    except OSError:  # a link (ELOOP), a missing part, a folder where a file was: no original
        return None
    finally:
        if fd >= 0:
            os.close(fd)


def _match(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))
