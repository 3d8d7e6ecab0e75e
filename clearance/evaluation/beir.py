"""BEIR-layout retrieval sets (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``), read in place.

Every record of the corpus becomes one chunk of one document (title and text,
embedded the way ingestion embeds a chunk), written through the index port
with an ACL that admits every member of the synthetic evaluation tenant; the
files are not parsed, because a BEIR record is already a passage. Queries with
judgments in the split become items asked by the synthetic evaluator, for the
ranking metrics only (a BEIR query is not a question with an answer).
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acl.access import AccessList
from acl.principal import tenant_key
from clearance.evaluation.items import (
    EVAL_TENANT,
    EVALUATOR,
    EvalItem,
    EvalSet,
    IngestSummary,
    SetKind,
    single_reader_directory,
)
from core.records import ChunkDraft, DocumentMeta
from index.ports import IndexedDocument
from ingest.chunk import embedding_text
from ingest.pipeline import document_id

if TYPE_CHECKING:
    from clearance.compose import Runtime

BEIR_DEPTH = 100  # recall@100 is BEIR's second headline figure
BATCH = 256


def load_beir(folder: Path, *, split: str = "test", limit: int | None = None) -> EvalSet:
    """The set in ``folder``; ``limit`` keeps the first N judged queries (the corpus is always whole)."""
    corpus, queries, qrels = folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv"
    for path in (corpus, queries, qrels):
        if not path.is_file():
            raise FileNotFoundError(f"not a BEIR folder for split {split!r}: {path} is missing")
    judged = read_qrels(qrels)
    items = []
    for record in _jsonl(queries):
        query_id = str(record["_id"])
        relevant = {doc: grade for doc, grade in judged.get(query_id, {}).items() if grade > 0}
        if not relevant:
            continue
        items.append(
            EvalItem(
                id=f"{query_id}@{EVALUATOR}",
                question_id=query_id,
                persona=EVALUATOR,
                question=str(record["text"]),
                relevant=relevant,
            )
        )
        if limit and len(items) >= limit:
            break
    return EvalSet(
        name=f"BEIR {folder.name} ({split})",
        kind=SetKind.BEIR,
        items=tuple(items),
        corpus=BeirCorpus(path=corpus, name=folder.name),
        generate=False,
        search_depth=BEIR_DEPTH,
        directory=single_reader_directory(),
        source=str(folder),
        notes=("corpus written through the index port, one chunk per record (no file parsing)",),
    )


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query id -> corpus id -> grade, from a BEIR qrels TSV (with or without its header)."""
    judged: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.reader(handle, delimiter="\t"):
            if len(row) < 3 or row[0] == "query-id":
                continue
            judged.setdefault(row[0], {})[row[1]] = int(row[2])
    return judged


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record: dict[str, Any] = json.loads(line)
                yield record


@dataclass(frozen=True, slots=True)
class BeirCorpus:
    path: Path
    name: str

    def ingest(self, runtime: Runtime) -> IngestSummary:
        started = time.perf_counter()
        acl = AccessList(allow=frozenset({tenant_key(EVAL_TENANT)}))
        source_id = f"beir:{self.name}"
        batch: list[dict[str, Any]] = []
        documents = 0

        def flush() -> None:
            drafts = [ChunkDraft(text=str(r.get("text") or ""), section=None, page=None, page_name=None) for r in batch]
            titles = [str(r.get("title") or "") for r in batch]
            vectors = runtime.embedder.embed_documents(
                [embedding_text(title=t, chunk=d) for t, d in zip(titles, drafts, strict=True)]
            )
            for record, title, draft, vector in zip(batch, titles, drafts, vectors, strict=True):
                corpus_id = str(record["_id"])
                meta = DocumentMeta(
                    doc_id=document_id(tenant_id=EVAL_TENANT, source_id=source_id, path=corpus_id),
                    tenant_id=EVAL_TENANT,
                    source_id=source_id,
                    path=corpus_id,
                    uri=corpus_id,  # a passage's source is the corpus id the qrels name
                    title=title,
                    format="beir",
                    content_hash=hashlib.sha256(f"{title}\n{draft.text}".encode()).hexdigest(),
                    modified_at=0.0,
                )
                runtime.index.replace_document(
                    IndexedDocument(meta=meta, acl=acl, chunks=(draft,), vectors=(tuple(vector),))
                )
            batch.clear()

        for record in _jsonl(self.path):
            batch.append(record)
            documents += 1
            if len(batch) >= BATCH:
                flush()
        if batch:
            flush()
        return IngestSummary(
            documents=documents,
            chunks=documents,
            seconds=round(time.perf_counter() - started, 2),
            how="index port",
        )
