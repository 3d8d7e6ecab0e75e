"""Filler chunks written through the index port, so benchmarks search an index of a realistic size."""

from __future__ import annotations

import random

from acl.access import AccessList
from acl.principal import group_key
from clearance.compose import Runtime
from core.records import ChunkDraft, DocumentMeta
from index.ports import IndexedDocument


def fill_index(runtime: Runtime, *, tenant_id: str, size: int, groups: list[str], rng: random.Random) -> None:
    """Adds ``size`` filler chunks in documents of 10, each document readable by one of ``groups`` (uniformly).

    Written through the index port like any document, so the payload schema is the product's own.
    """
    dimension = runtime.embedder.dimension
    for doc_number in range((size + 9) // 10):
        chunk_count = min(10, size - doc_number * 10)
        vectors = []
        for _ in range(chunk_count):
            vector = [rng.gauss(0, 1) for _ in range(dimension)]
            norm = sum(x * x for x in vector) ** 0.5
            vectors.append(tuple(x / norm for x in vector))
        path = f"filler/{doc_number}.md"
        runtime.index.replace_document(
            IndexedDocument(
                meta=DocumentMeta(
                    doc_id=f"filler-{doc_number}",
                    tenant_id=tenant_id,
                    source_id="bench",
                    path=path,
                    uri=path,
                    title="filler",
                    format="md",
                    content_hash="x" * 64,
                    modified_at=0.0,
                ),
                acl=AccessList(allow=frozenset({group_key(tenant_id, groups[doc_number % len(groups)])})),
                chunks=tuple(ChunkDraft(text="filler", section=None, page=None, page_name=None) for _ in vectors),
                vectors=tuple(vectors),
            )
        )
