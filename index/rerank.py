"""Optional cross-encoder reranking over a chunk index (``CLEARANCE_RETRIEVAL__RERANK_MODEL_PATH``).

:class:`RerankingIndex` wraps any :class:`index.ports.ChunkIndex`: a search fetches
``candidates`` chunks through the inner index (security filter, mode, fusion: all
unchanged) and a cross-encoder orders them by reading query and passage together.
It only ever reorders and cuts what the filtered search returned, so it cannot
widen access; scores become the cross-encoder's. Without query text there is
nothing to read against, and the inner ranking is returned as it is.

No cross-encoder weights are published on a registry this project can reach;
any sentence-transformers ``CrossEncoder`` folder works (for example
``cross-encoder/ms-marco-MiniLM-L-6-v2`` saved locally).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path

from qdrant_client import models

from acl.access import AccessList
from acl.principal import Principal
from core.records import DocumentState, Passage, StoredDocument
from index.ports import BackfillReport, ChunkIndex, IndexedDocument, ReadableChunk, Reranker, RetrievalMode


class CrossEncoderReranker:
    """A local sentence-transformers cross-encoder on the CPU (implements :class:`index.ports.Reranker`)."""

    def __init__(self, *, model_path: Path, batch_size: int = 16) -> None:
        from sentence_transformers import CrossEncoder

        self._model = CrossEncoder(str(model_path), device="cpu")
        self._batch_size = batch_size
        self._lock = threading.Lock()  # one forward pass at a time, as the embedder

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        with self._lock:
            found = self._model.predict(
                [(query, text) for text in texts], batch_size=self._batch_size, show_progress_bar=False
            )
        return [float(score) for score in found]


class RerankingIndex:
    """A chunk index whose searches are reordered by a reranker (implements :class:`index.ports.ChunkIndex`)."""

    def __init__(self, *, inner: ChunkIndex, reranker: Reranker, candidates: int) -> None:
        self._inner = inner
        self._reranker = reranker
        self._candidates = candidates

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
        found = self._inner.search(
            principal,
            vector,
            top_k=max(top_k, self._candidates) if text else top_k,
            min_score=min_score,
            narrowing=narrowing,
            text=text,
            mode=mode,
        )
        if not text or not found:
            return found
        scores = self._reranker.scores(text, [passage.text for passage in found])
        ranked = sorted(zip(scores, found, strict=True), key=lambda pair: -pair[0])[:top_k]
        return [dataclasses.replace(passage, score=score) for score, passage in ranked]

    # -- everything else is the inner index's ---------------------------------------------

    def ensure_schema(self) -> None:
        self._inner.ensure_schema()

    def ping(self) -> None:
        self._inner.ping()

    def replace_document(self, document: IndexedDocument) -> None:
        self._inner.replace_document(document)

    def stage_document(self, document: IndexedDocument) -> str:
        return self._inner.stage_document(document)

    def publish(self, doc_id: str, version: str) -> None:
        self._inner.publish(doc_id, version)

    def update_acl(self, doc_id: str, acl: AccessList) -> None:
        self._inner.update_acl(doc_id, acl)

    def delete_document(self, doc_id: str) -> None:
        self._inner.delete_document(doc_id)

    def document_states(self, *, tenant_id: str, source_id: str) -> dict[str, DocumentState]:
        return self._inner.document_states(tenant_id=tenant_id, source_id=source_id)

    def chunk_ids(self, doc_id: str) -> set[str]:
        return self._inner.chunk_ids(doc_id)

    def stored_acl(self, doc_id: str) -> AccessList | None:
        return self._inner.stored_acl(doc_id)

    def documents(self, *, tenant_id: str, offset: int = 0, limit: int = 100) -> list[StoredDocument]:
        return self._inner.documents(tenant_id=tenant_id, offset=offset, limit=limit)

    def read(self, principal: Principal, *, narrowing: models.Filter, limit: int) -> list[ReadableChunk]:
        return self._inner.read(principal, narrowing=narrowing, limit=limit)

    def backfill_sparse(self, *, batch_size: int = 256) -> BackfillReport:
        return self._inner.backfill_sparse(batch_size=batch_size)

    def count(self, *, live_only: bool = True) -> int:
        return self._inner.count(live_only=live_only)

    def close(self) -> None:
        self._inner.close()
