"""Torch fp32 against int8 ONNX embeddings of all-MiniLM-L6-v2: speed, agreement and retrieval quality.

    python -m benchmarks.embedding [--texts 128] [--queries 100] [--threads 1 2] [--no-scifact]

1. Throughput (chunks/s) of both backends on the same texts (SciFact abstracts, title
   and text, ~250 tokens each: a full chunk), and single-query latency, at 1 and 2
   intra-op threads. Backends alternate within each repetition; the median is reported.
2. Agreement: cosine between the two backends' vectors of the same texts and queries.
3. Quality: SciFact nDCG@10 and recall@10 of both over the whole corpus (5,183 abstracts)
   with the 505 judged train queries, by exact cosine search in numpy. Corpus vectors
   are cached outside the repository (benchmarks/retrieval_modes.py's cache), so a
   rerun pays only for what changed.

``measure_embedding`` returns the figures as a dict for ``benchmarks.run``. Timings on
a shared machine are noisy: compare backends within one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from benchmarks.retrieval_modes import (
    MODEL_TAG,
    chunk_text,
    corpus_vectors,
    default_data_dir,
    load_beir,
    ndcg_at,
    recall_at,
)
from index.embedding import SentenceTransformerEmbedder, default_model_path, set_torch_threads
from index.onnx_embedding import OnnxEmbedder
from index.onnx_export import ensure_int8_model
from index.ports import Embedder

TORCH = "torch-fp32"
ONNX = "onnx-int8"
# The bar for making int8 the default (issue 8): retrieval within this of fp32, and this agreement.
NDCG_TOLERANCE = 0.01
COSINE_FLOOR = 0.99


def measure_embedding(
    *,
    model_cache: Path,
    data_dir: Path | None = None,
    texts: int = 128,
    queries: int = 100,
    threads: Sequence[int] = (1, 2),
    repeats: int = 3,
    scifact: bool = True,
    vector_cache: Path | None = None,
) -> dict[str, Any]:
    """All figures of this benchmark in one dict (see the module docstring)."""
    folder = data_dir or default_data_dir()
    data = load_beir(folder)
    sample = [chunk_text(title, text) for _, title, text in data.documents[:texts]]
    query_texts = [data.queries[q] for q in sorted(data.queries)[:queries]]
    source = default_model_path()

    started = time.perf_counter()
    exported = ensure_int8_model(source=source, cache_root=model_cache)
    export_s = time.perf_counter() - started
    speed: dict[str, dict[str, Any]] = {TORCH: {}, ONNX: {}}
    torch_embedder: SentenceTransformerEmbedder | None = None
    onnx_embedder: OnnxEmbedder | None = None
    for count in threads:
        set_torch_threads(count)
        torch_embedder = SentenceTransformerEmbedder(model_path=source)
        onnx_embedder = OnnxEmbedder(model=exported, threads=count, query_threads=count)
        contenders: dict[str, Embedder] = {TORCH: torch_embedder, ONNX: onnx_embedder}
        for embedder in contenders.values():
            embedder.embed_documents(sample[:4])  # warm-up: first runs allocate and plan
        rates: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(repeats):
            for name, embedder in contenders.items():
                rates[name].append(_rate(embedder.embed_documents, sample))
        for name, embedder in contenders.items():
            latencies = _latencies(embedder.embed_query, query_texts)
            speed[name][str(count)] = {
                "chunks_per_s": round(statistics.median(rates[name]), 1),
                "query_ms_p50": round(_percentile(latencies, 0.5), 2),
                "query_ms_p95": round(_percentile(latencies, 0.95), 2),
            }
    set_torch_threads(1)
    assert torch_embedder is not None and onnx_embedder is not None
    report: dict[str, Any] = {
        "benchmark": "embedding backends: torch fp32 vs int8 ONNX (all-MiniLM-L6-v2)",
        "texts": len(sample),
        "mean_tokens": _mean_tokens(sample),
        "queries": len(query_texts),
        "onnx_model": {"fingerprint": exported.fingerprint, "ensure_s": round(export_s, 1)},
        "throughput": speed,
        "speedup_1_thread": _ratio(speed, "1"),
        "cosine_to_fp32": {
            "chunks": _agreement(torch_embedder, onnx_embedder, sample),
            "queries": _agreement(torch_embedder, onnx_embedder, query_texts),
        },
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "load_average": os.getloadavg()[0]},
    }
    if scifact:
        report["scifact"] = scifact_quality(
            data_dir=folder, embedders={TORCH: torch_embedder, ONNX: onnx_embedder}, vector_cache=vector_cache
        )
        report["holds_quality"] = holds_quality(report)
    return report


def scifact_quality(
    *, data_dir: Path, embedders: dict[str, Embedder], vector_cache: Path | None = None
) -> dict[str, Any]:
    """nDCG@10 and recall@10 per embedder: exact cosine top-10 over the whole corpus, every judged query."""
    data = load_beir(data_dir)
    documents = [chunk_text(title, text) for _, title, text in data.documents]
    doc_ids = [doc_id for doc_id, _, _ in data.documents]
    query_ids = sorted(data.queries)
    cache = vector_cache or Path.home() / ".cache" / "clearance"
    figures: dict[str, Any] = {"documents": len(documents), "queries": len(query_ids)}
    for name, embedder in embedders.items():
        # The torch tag is retrieval_modes.py's own, so both benchmarks share one cache of fp32 vectors.
        tag = MODEL_TAG if name == TORCH else f"{MODEL_TAG}-{name}"
        started = time.perf_counter()
        doc_vectors = corpus_vectors(documents, embedder, cache_dir=cache, model_tag=tag)
        query_vectors = corpus_vectors(
            [data.queries[q] for q in query_ids], embedder, cache_dir=cache, model_tag=f"{tag}-queries"
        )
        embed_s = time.perf_counter() - started
        top = np.argsort(-(query_vectors @ doc_vectors.T), axis=1)[:, :10]
        judged = [(data.qrels[q], [doc_ids[column] for column in row]) for q, row in zip(query_ids, top, strict=True)]
        figures[name] = {
            "ndcg@10": round(statistics.fmean(ndcg_at(ranking, relevant) for relevant, ranking in judged), 4),
            "recall@10": round(statistics.fmean(recall_at(ranking, relevant) for relevant, ranking in judged), 4),
            "embed_s": round(embed_s, 1),  # ~0 when the vectors came from the cache
        }
    if TORCH in figures and ONNX in figures:
        figures["ndcg@10_delta"] = round(figures[ONNX]["ndcg@10"] - figures[TORCH]["ndcg@10"], 4)
    return figures


def holds_quality(report: dict[str, Any]) -> bool:
    """The bar for int8 as the default: nDCG@10 within 0.01 of fp32, and every chunk and query at cosine >= 0.99."""
    cosines = report["cosine_to_fp32"]
    agreement = all(cosines[kind]["min"] >= COSINE_FLOOR for kind in ("chunks", "queries"))
    delta = report.get("scifact", {}).get("ndcg@10_delta")
    return agreement and delta is not None and delta >= -NDCG_TOLERANCE


def _rate(embed: Callable[[Sequence[str]], list[list[float]]], texts: list[str]) -> float:
    started = time.perf_counter()
    embed(texts)
    return len(texts) / (time.perf_counter() - started)


def _latencies(embed: Callable[[str], list[float]], texts: list[str]) -> list[float]:
    latencies = []
    for text in texts:
        started = time.perf_counter()
        embed(text)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def _agreement(reference: Embedder, candidate: Embedder, texts: list[str]) -> dict[str, float]:
    expected, actual = np.asarray(reference.embed_documents(texts)), np.asarray(candidate.embed_documents(texts))
    cosines = np.sum(expected * actual, axis=1)
    return {
        "min": round(float(cosines.min()), 4),
        "p1": round(float(np.percentile(cosines, 1)), 4),
        "mean": round(float(cosines.mean()), 4),
    }


def _mean_tokens(texts: list[str]) -> float:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(default_model_path() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=256)
    return round(statistics.fmean(len(e.ids) for e in tokenizer.encode_batch(texts)), 1)


def _ratio(speed: dict[str, dict[str, Any]], threads: str) -> float | None:
    if threads not in speed[TORCH]:
        return None
    return round(float(speed[ONNX][threads]["chunks_per_s"]) / float(speed[TORCH][threads]["chunks_per_s"]), 2)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="BEIR folder (default: shared data's scifact)")
    parser.add_argument("--texts", type=int, default=128, help="chunks per throughput measurement")
    parser.add_argument("--queries", type=int, default=100, help="queries for latency")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-scifact", action="store_true", help="skip the nDCG@10 comparison (minutes on a CPU)")
    parser.add_argument("--model-cache", type=Path, default=None, help="exported models (default: a temporary folder)")
    parser.add_argument("--vector-cache", type=Path, default=None, help="corpus vectors (default ~/.cache/clearance)")
    args = parser.parse_args()
    folder = args.data or default_data_dir()
    if not (folder / "corpus.jsonl").exists():
        raise SystemExit(f"no BEIR set at {folder}: set CLEARANCE_SHARED_DATA or pass --data")
    with tempfile.TemporaryDirectory(prefix="clearance-models-") as scratch:
        report = measure_embedding(
            model_cache=args.model_cache or Path(scratch),
            data_dir=folder,
            texts=args.texts,
            queries=args.queries,
            threads=args.threads,
            repeats=args.repeats,
            scifact=not args.no_scifact,
            vector_cache=args.vector_cache,
        )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
