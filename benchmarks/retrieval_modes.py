"""SciFact nDCG@10 for dense-only, BM25-only (sparse) and hybrid retrieval, side by side in one run.

    python -m benchmarks.retrieval_modes [--index edge|qdrant-local] [--queries N] [--data DIR]

Reads the BEIR layout in place (``corpus.jsonl``, ``queries.jsonl``, ``qrels/train.tsv``
under ``../shared/data/scifact`` or ``CLEARANCE_SHARED_DATA``), writes every abstract
as one chunk (title and text, as BEIR does) through the index port, and asks every
train query once per mode through ``ChunkIndex.search`` with a tenant member's
security filter: the same code path as the product, not a side-channel scorer.

Embedding the 5,183 abstracts takes minutes on one CPU thread, so the vectors are
cached outside the repository (``~/.cache/clearance``, keyed by the model and the
corpus text's hash); the cache holds vectors only, never the text.

Note: the train split is easier than the public test split the usual reference
figures come from (BM25 0.665, MiniLM dense about 0.645 on test).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient

from acl.access import AccessList
from acl.principal import Principal, tenant_key
from core.records import ChunkDraft, DocumentMeta
from index.edge import EdgeChunkIndex, EdgeTuning
from index.embedding import SentenceTransformerEmbedder, default_model_path, set_torch_threads
from index.idf_sample import IdfSampling
from index.ports import ChunkIndex, Embedder, IndexedDocument, RetrievalMode
from index.qdrant import QdrantChunkIndex
from index.sparse import FusionParams

REPO_ROOT = Path(__file__).resolve().parents[1]
TENANT = "d1f72fea-086f-4448-9dce-2f71deb8ef72"
READER = Principal(tenant_id=TENANT, object_id="b0000000-0000-4000-8000-000000000001", groups=frozenset())
CUTOFF = 10
MODEL_TAG = "all-MiniLM-L6-v2"


@dataclass(frozen=True, slots=True)
class BeirSet:
    """A BEIR-layout set: documents (id, title, text), queries (id -> text), qrels (query -> doc -> grade)."""

    documents: list[tuple[str, str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def default_data_dir() -> Path:
    shared = Path(os.environ.get("CLEARANCE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    return shared / "scifact"


def load_beir(folder: Path, *, split: str = "train") -> BeirSet:
    """The set in ``folder``; only queries that have judgments are kept (as BEIR's evaluation does)."""
    documents = [
        (str(row["_id"]), str(row.get("title") or ""), str(row.get("text") or ""))
        for row in _jsonl(folder / "corpus.jsonl")
    ]
    qrels: dict[str, dict[str, int]] = {}
    with (folder / "qrels" / f"{split}.tsv").open(encoding="utf-8") as lines:
        next(lines)  # header: query-id, corpus-id, score
        for line in lines:
            query_id, doc_id, grade = line.rstrip("\n").split("\t")
            if int(grade) > 0:
                qrels.setdefault(query_id, {})[doc_id] = int(grade)
    queries = {str(row["_id"]): str(row["text"]) for row in _jsonl(folder / "queries.jsonl")}
    return BeirSet(documents=documents, queries={q: queries[q] for q in qrels if q in queries}, qrels=qrels)


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def chunk_text(title: str, text: str) -> str:
    return f"{title}\n{text}" if title else text


def ndcg_at(ranked: Sequence[str], relevant: dict[str, int], k: int = CUTOFF) -> float:
    """nDCG@k with linear gains (BEIR's, via pytrec_eval): sum of grade / log2(rank + 1)."""
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    best = sum(grade / math.log2(rank + 2) for rank, grade in enumerate(ideal))
    return dcg / best if best else 0.0


def recall_at(ranked: Sequence[str], relevant: dict[str, int], k: int = CUTOFF) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant) if relevant else 0.0


def corpus_vectors(texts: Sequence[str], embedder: Embedder, *, cache_dir: Path, model_tag: str) -> np.ndarray:
    """Document vectors, computed once per model and corpus text and then read from ``cache_dir``."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    path = cache_dir / f"{model_tag}-{digest.hexdigest()[:16]}.npy"
    if path.exists():
        cached: np.ndarray = np.load(path)
        if cached.shape == (len(texts), embedder.dimension):
            return cached
    vectors = np.asarray(embedder.embed_documents(list(texts)), dtype=np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, vectors)
    partial.replace(path)
    return vectors


def open_index(kind: str, folder: Path, dimension: int, fusion: FusionParams) -> ChunkIndex:
    if kind == "edge":
        return EdgeChunkIndex(path=folder, dimension=dimension, fusion=fusion)
    return QdrantChunkIndex(
        client=QdrantClient(location=":memory:"), collection="scifact", dimension=dimension, fusion=fusion
    )


def write_corpus(index: ChunkIndex, data: BeirSet, vectors: np.ndarray) -> None:
    """One chunk per abstract, tenant-wide, written through the port (term weights computed by the index)."""
    everyone = AccessList(allow=frozenset({tenant_key(TENANT)}), deny=frozenset())
    for row, (doc_id, title, text) in enumerate(data.documents):
        index.replace_document(
            IndexedDocument(
                meta=DocumentMeta(
                    doc_id=doc_id,
                    tenant_id=TENANT,
                    source_id="scifact",
                    path=f"scifact/{doc_id}",
                    uri=f"scifact/{doc_id}",
                    title=title,
                    format="txt",
                    content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                    modified_at=0.0,
                ),
                acl=everyone,
                chunks=(ChunkDraft(text=text, section=None, page=None, page_name=None),),
                vectors=(tuple(float(x) for x in vectors[row]),),
            )
        )


def run(
    *,
    data_dir: Path | None = None,
    implementation: str = "edge",
    max_queries: int | None = None,
    cache_dir: Path | None = None,
    embedder: Embedder | None = None,
    model_tag: str = MODEL_TAG,
    fusion: FusionParams | None = None,
    idf_samples: Sequence[int] = (),
) -> dict[str, Any]:
    """nDCG@10, recall@10 and search latency for every retrieval mode, over one index written once.

    ``model_tag`` names ``embedder`` in the vector cache: pass another with another model.
    ``idf_samples`` (edge only): the sparse and hybrid modes again, the same index reopened with
    IDF counted over a sample of about that many readable chunks each (:mod:`index.idf_sample`).
    """
    folder = data_dir or default_data_dir()
    data = load_beir(folder)
    if embedder is None:
        set_torch_threads(1)
        embedder = SentenceTransformerEmbedder(model_path=default_model_path())
    cache = cache_dir or Path.home() / ".cache" / "clearance"
    started = time.perf_counter()
    doc_vectors = corpus_vectors(
        [chunk_text(title, text) for _, title, text in data.documents], embedder, cache_dir=cache, model_tag=model_tag
    )
    query_ids = sorted(data.queries)[:max_queries] if max_queries else sorted(data.queries)
    query_vectors = corpus_vectors(
        [data.queries[q] for q in query_ids], embedder, cache_dir=cache, model_tag=f"{model_tag}-queries"
    )
    embed_s = time.perf_counter() - started
    fusion = fusion or FusionParams()
    modes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="clearance-scifact-") as tmp:
        index = open_index(implementation, Path(tmp), embedder.dimension, fusion)
        try:
            index.ensure_schema()
            started = time.perf_counter()
            write_corpus(index, data, doc_vectors)
            write_s = time.perf_counter() - started
            for mode in RetrievalMode:
                modes[mode.value] = evaluate(index, data, query_ids, query_vectors, mode)
            for size in idf_samples if implementation == "edge" else ():
                index.close()
                # Every chunk is readable: a sample of ``size`` readable chunks whatever the walk bound.
                tuning = EdgeTuning(idf_sampling=IdfSampling(max_walked=1, min_sample=size))
                index = EdgeChunkIndex(path=Path(tmp), dimension=embedder.dimension, fusion=fusion, tuning=tuning)
                index.ensure_schema()
                for mode in (RetrievalMode.SPARSE, RetrievalMode.HYBRID):
                    modes[f"{mode.value}, IDF over ~{size} sampled chunks"] = evaluate(
                        index, data, query_ids, query_vectors, mode
                    )
        finally:
            index.close()
    return {
        "benchmark": "retrieval modes on SciFact (train queries, BEIR layout)",
        "data": str(folder),
        "implementation": implementation,
        "documents": len(data.documents),
        "queries": len(query_ids),
        "fusion": {
            "candidates": fusion.candidates,
            "rrf_k": fusion.rrf_k,
            "weights": [fusion.dense_weight, fusion.sparse_weight],
        },
        "embed_s": round(embed_s, 1),
        "write_s": round(write_s, 1),
        "modes": modes,
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "load_average": os.getloadavg()[0]},
    }


def evaluate(
    index: ChunkIndex, data: BeirSet, query_ids: list[str], vectors: np.ndarray, mode: RetrievalMode
) -> dict[str, float]:
    ndcgs, recalls, latencies = [], [], []
    for row, query_id in enumerate(query_ids):
        text = data.queries[query_id]
        started = time.perf_counter()
        found = index.search(READER, vectors[row].tolist(), top_k=CUTOFF, text=text, mode=mode)
        latencies.append((time.perf_counter() - started) * 1000)
        ranked = [passage.doc_id for passage in found]
        ndcgs.append(ndcg_at(ranked, data.qrels[query_id]))
        recalls.append(recall_at(ranked, data.qrels[query_id]))
    ordered = sorted(latencies)
    return {
        "ndcg_at_10": round(statistics.fmean(ndcgs), 4),
        "recall_at_10": round(statistics.fmean(recalls), 4),
        "search_p50_ms": round(statistics.median(latencies), 3),
        "search_p95_ms": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 3),
    }


def synthetic_latency(*, chunks: int, queries: int, seed: int = 7, dimension: int = 384) -> dict[str, Any]:
    """Search latency per mode on the embedded engine over ``benchmarks.search``'s synthetic ACL corpus.

    Chunk texts are drawn from a Zipf vocabulary, half of each from its topic's own
    words, so term statistics look like text's; a query is five words of a chunk plus
    one random word, and its vector sits near that chunk. The same callers as the
    filtered-search benchmark (0.1 % to 50 % of chunks readable). Leaks are counted
    against the reference rule in every mode (must be 0).
    """
    from benchmarks.search import build_corpus, make_callers, readable_docs

    corpus = build_corpus(chunks, dimension, seed)
    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"w{n}" for n in range(20_000)])
    zipf = 1.0 / np.arange(1, len(vocabulary) + 1)
    zipf /= zipf.sum()
    topic_words = rng.integers(0, len(vocabulary), size=(64, 300))
    doc_topic = rng.integers(0, 64, size=len(corpus.doc_chunks))
    texts: list[str] = []
    for row in range(chunks):
        own = vocabulary[topic_words[doc_topic[int(corpus.chunk_doc[row])]][rng.integers(0, 300, size=20)]]
        common = vocabulary[rng.choice(len(vocabulary), size=20, p=zipf)]
        texts.append(f"c{row} " + " ".join([*own, *common]))
    callers = make_callers(corpus, seed)
    with tempfile.TemporaryDirectory(prefix="clearance-hybrid-bench-") as tmp:
        index = EdgeChunkIndex(path=Path(tmp), dimension=dimension, fusion=FusionParams())
        try:
            index.ensure_schema()
            started = time.perf_counter()
            for number, rows in enumerate(corpus.doc_chunks):
                index.replace_document(_synthetic_document(number, rows, corpus.doc_tenant[number], corpus, texts))
            write_s = time.perf_counter() - started
            stats = index.stats()
            buckets = []
            for target in sorted({t for t, _, _ in callers}):
                group = [p for t, _, p in callers if t == target]
                row_ok = [readable_docs(corpus, p)[corpus.chunk_doc] for p in group]
                result: dict[str, Any] = {"target_selectivity": target}
                for mode in RetrievalMode:
                    latencies, leaks = [], 0
                    for number in range(queries):
                        which = number % len(group)
                        anchor = int(rng.integers(chunks))
                        words = texts[anchor].split()[1:]
                        text = " ".join([*rng.choice(words, size=5), str(rng.choice(vocabulary))])
                        vector = corpus.vectors[anchor] + rng.standard_normal(dimension).astype(np.float32) * 0.05
                        vector /= np.linalg.norm(vector)
                        begun = time.perf_counter()
                        found = index.search(group[which], vector.tolist(), top_k=CUTOFF, text=text, mode=mode)
                        latencies.append((time.perf_counter() - begun) * 1000)
                        leaks += sum(1 for p in found if not row_ok[which][int(p.text.split(" ", 1)[0][1:])])
                    ordered = sorted(latencies)
                    result[mode.value] = {
                        "p50_ms": round(statistics.median(ordered), 3),
                        "p95_ms": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 3),
                        "leaks": leaks,
                    }
                buckets.append(result)
        finally:
            index.close()
    return {
        "benchmark": "search latency per retrieval mode, embedded engine, synthetic ACL corpus",
        "chunks": chunks,
        "queries_per_mode_and_bucket": queries,
        "write_s": round(write_s, 1),
        "after_write": stats,
        "buckets": buckets,
        "machine": {"cores": os.cpu_count(), "load_average": os.getloadavg()[0]},
    }


def _synthetic_document(number: int, rows: range, tenant: str, corpus: Any, texts: list[str]) -> IndexedDocument:
    return IndexedDocument(
        meta=DocumentMeta(
            doc_id=f"doc-{number}",
            tenant_id=tenant,
            source_id="bench",
            path=f"bench/{number}.md",
            uri=f"bench/{number}.md",
            title="",
            format="md",
            content_hash=f"{number:064x}",
            modified_at=0.0,
        ),
        acl=corpus.doc_acl[number],
        chunks=tuple(ChunkDraft(text=texts[i], section=None, page=None, page_name=None) for i in rows),
        vectors=tuple(tuple(float(x) for x in corpus.vectors[i]) for i in rows),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="BEIR folder (default: shared data's scifact)")
    parser.add_argument("--index", choices=["edge", "qdrant-local"], default="edge")
    parser.add_argument("--synthetic", type=int, default=0, help="instead: latency per mode at N synthetic chunks")
    parser.add_argument("--synthetic-queries", type=int, default=200, help="queries per mode and selectivity")
    parser.add_argument("--queries", type=int, default=None, help="only the first N queries (by id)")
    parser.add_argument("--cache", type=Path, default=None, help="vector cache folder (default ~/.cache/clearance)")
    defaults = FusionParams()
    parser.add_argument("--rrf-k", type=int, default=defaults.rrf_k)
    parser.add_argument("--candidates", type=int, default=defaults.candidates)
    parser.add_argument("--dense-weight", type=float, default=defaults.dense_weight)
    parser.add_argument("--sparse-weight", type=float, default=defaults.sparse_weight)
    parser.add_argument(
        "--idf-sample", type=int, action="append", default=[], metavar="N",
        help="also sparse and hybrid with IDF over ~N sampled chunks (edge; repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.synthetic:
        print(json.dumps(synthetic_latency(chunks=args.synthetic, queries=args.synthetic_queries), indent=2))
        return
    folder = args.data or default_data_dir()
    if not (folder / "corpus.jsonl").exists():
        raise SystemExit(f"no BEIR set at {folder}: set CLEARANCE_SHARED_DATA or pass --data")
    fusion = FusionParams(
        candidates=args.candidates, rrf_k=args.rrf_k, dense_weight=args.dense_weight, sparse_weight=args.sparse_weight
    )
    report = run(
        data_dir=folder,
        implementation=args.index,
        max_queries=args.queries,
        cache_dir=args.cache,
        fusion=fusion,
        idf_samples=args.idf_sample,
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
