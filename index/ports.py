"""The two ports of the index floor: a chunk index and an embedder.

Ingestion and answering depend on these protocols, never on an implementation,
so a second index (Qdrant's in-process engine, a server-only path) plugs in
without touching either. Every implementation keeps one promise: the only query
method takes a :class:`Principal`, and the security filter built by
:func:`acl.index_filter.security_filter` is applied inside the query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from qdrant_client import models

from acl.access import AccessList
from acl.principal import Principal
from core.records import ChunkDraft, DocumentMeta, DocumentState, Passage, StoredDocument


@dataclass(frozen=True, slots=True)
class IndexedDocument:
    """A document ready to be written: metadata, ACL, chunks and their vectors."""

    meta: DocumentMeta
    acl: AccessList
    chunks: tuple[ChunkDraft, ...]
    vectors: tuple[tuple[float, ...], ...]


@dataclass(frozen=True, slots=True)
class ReadableChunk:
    """A chunk its reader may read, with its place in the document: for passages in context and documents.

    ``source_id`` and ``content_hash`` say where the original file lies and which
    bytes were indexed; they serve the original to a permitted reader and are never
    returned to a caller themselves.
    """

    passage: Passage
    chunk_index: int
    source_id: str
    content_hash: str


class RetrievalMode(StrEnum):
    """Which similarities rank a search; every mode runs under the same security filter."""

    DENSE = "dense"  # cosine of the embedder's vectors
    SPARSE = "sparse"  # BM25-style term weights (IDF from the index, over what the caller may read)
    HYBRID = "hybrid"  # both, fused by reciprocal rank inside the index query


@dataclass(frozen=True, slots=True)
class SparseVector:
    """Term weights: ``values[i]`` is the weight of the term hashed to ``indices[i]`` (indices unique)."""

    indices: tuple[int, ...]
    values: tuple[float, ...]


class SparseEncoder(Protocol):
    """Turns text into term weights, the same way for every chunk and query of one index."""

    @property
    def fingerprint(self) -> str:
        """Names the tokenizer and parameters; stored with each chunk so a change is detectable."""
        ...

    def encode_document(self, text: str) -> SparseVector: ...

    def encode_query(self, text: str) -> SparseVector: ...


@dataclass(frozen=True, slots=True)
class BackfillReport:
    """What a sparse backfill did: chunks examined, chunks given new term weights, and how."""

    scanned: int
    updated: int
    schema: str  # "present", "added" (named vector added in place) or "rebuilt" (copied to a new collection)


class Reranker(Protocol):
    """Scores (query, passage text) pairs; higher is more relevant. Sees only passages already permitted."""

    def scores(self, query: str, texts: Sequence[str]) -> list[float]: ...


class Embedder(Protocol):
    """Turns texts into unit-length vectors of a fixed dimension."""

    @property
    def dimension(self) -> int: ...

    @property
    def fingerprint(self) -> str:
        """Names the vectors this embedder makes (backend and weights); an index records it."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


class ChunkIndex(Protocol):
    """Chunks with their ACLs; searched only through a caller's security filter."""

    def ensure_schema(self) -> None:
        """Create the collection and its payload indexes if they are missing."""
        ...

    def ping(self) -> None:
        """Raise IndexUnavailableError when the index cannot answer."""
        ...

    def replace_document(self, document: IndexedDocument) -> None:
        """Write a document's chunks, replacing any earlier version without a mixed view."""
        ...

    def stage_document(self, document: IndexedDocument) -> str:
        """Write a new version's chunks ``staged`` (invisible to every search); returns the version."""
        ...

    def publish(self, doc_id: str, version: str) -> None:
        """Delete every other version of the document, then make ``version`` live."""
        ...

    def update_acl(self, doc_id: str, acl: AccessList) -> None:
        """Rewrite the ACL of every chunk of a document, without re-embedding."""
        ...

    def delete_document(self, doc_id: str) -> None: ...

    def document_states(self, *, tenant_id: str, source_id: str) -> dict[str, DocumentState]:
        """The live documents of one source, keyed by path (an admin read, no ACL filter)."""
        ...

    def chunk_ids(self, doc_id: str) -> set[str]:
        """Ids of every stored chunk of a document, staged or live (an admin read)."""
        ...

    def stored_acl(self, doc_id: str) -> AccessList | None:
        """The ACL stored on a document's chunks (admin read for explain-access and tests)."""
        ...

    def documents(self, *, tenant_id: str, offset: int = 0, limit: int = 100) -> list[StoredDocument]:
        """Live documents of one tenant ordered by source and path, a page at a time (an admin read)."""
        ...

    def search(
        self,
        principal: Principal,
        vector: list[float],
        *,
        top_k: int,
        min_score: float | None = None,
        narrowing: models.Filter | None = None,
        text: str | None = None,
        mode: RetrievalMode | None = None,
    ) -> list[Passage]:
        """The ``top_k`` best chunks for the query among those ``principal`` may read.

        ``vector`` is the query's embedding, ``text`` its words (needed by the sparse and
        hybrid modes; without it the search is dense). ``mode`` None: the index's
        configured mode. ``min_score`` is a floor on the dense cosine: the results' in
        dense mode, the dense branch's before fusion in hybrid mode (a chunk below it can
        still come back on its terms); sparse mode ignores it (BM25 has no fixed scale).
        Scores are the mode's own: cosine, BM25, or the fused reciprocal-rank score.
        """
        ...

    def read(self, principal: Principal, *, narrowing: models.Filter, limit: int) -> list[ReadableChunk]:
        """Up to ``limit`` chunks matching ``narrowing`` that ``principal`` may read, in document order.

        No ranking: a read of known chunks (one passage, one document), under the same
        security filter as a search, so a chunk the caller may not read is never returned.
        """
        ...

    def backfill_sparse(self, *, batch_size: int = 256) -> BackfillReport:
        """Give every stored chunk term weights from its stored text (no re-embedding); resumable."""
        ...

    def count(self, *, live_only: bool = True) -> int: ...

    def close(self) -> None: ...
