"""Ingestion throughput and permission-filtered search latency, printed as JSON.

    python -m benchmarks.run [--synthetic-docs 100] [--index-size 10000] [--queries 100]

1. Ingestion of the sample corpus and of N synthetic documents (files/s, chunks/s),
   beside the raw embedding throughput of the very same chunks measured in the
   same run, so the overhead of parsing, chunking and index writes is visible.
2. ``/v1/search`` latency (p50/p95, through the HTTP app with real token
   validation) at a given index size, for callers whose ACL filter selects
   different fractions of the index. Filler chunks carry random unit vectors:
   embedding 100k real chunks on a 2-core machine would take hours and search
   cost depends on the number of chunks and the filter, not on their text.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fastapi.testclient import TestClient

from acl.access import AccessList
from acl.principal import group_key
from benchmarks.identity import measure_identity
from clearance.compose import Runtime, build_api, build_runtime
from clearance.samples import sample_sources
from clearance.settings import IndexSettings, Mode, Settings
from core.records import ChunkDraft, DocumentMeta
from index.ports import IndexedDocument
from ingest.chunk import chunk_document, embedding_text
from ingest.parse import parse_document
from ingest.source import FilesystemSource

WORDS = (
    "robot fleet warehouse battery charger firmware route picker shelf order invoice budget forecast "
    "safety sensor lidar incident customer contract renewal pricing discount quarter revenue margin "
    "hiring onboarding policy travel expense approval vendor payment audit compliance training shift"
).split()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _embedding_texts(source: FilesystemSource, max_chars: int) -> list[str]:
    texts: list[str] = []
    for item in source.items():
        try:
            parsed = parse_document(item.local_path)
        except Exception:
            continue
        title = parsed.title or Path(item.path).stem
        texts.extend(embedding_text(title=title, chunk=c) for c in chunk_document(parsed, max_chars=max_chars))
    return texts


def measure_ingestion(runtime: Runtime, source: FilesystemSource) -> dict[str, Any]:
    started = time.perf_counter()
    job = runtime.pipeline.run(source)
    elapsed = time.perf_counter() - started
    texts = _embedding_texts(source, runtime.settings.ingest.max_chunk_chars)
    embed_started = time.perf_counter()
    runtime.embedder.embed_documents(texts)
    embed_elapsed = time.perf_counter() - embed_started
    return {
        "files": job.files_total,
        "chunks": job.chunks_written,
        "errors": len(job.errors),
        "seconds": round(elapsed, 2),
        "files_per_s": round(job.files_total / elapsed, 2),
        "chunks_per_s": round(job.chunks_written / elapsed, 2),
        "stage_seconds": {k: round(v, 2) for k, v in job.timings.items()},
        "raw_embedding_chunks_per_s": round(len(texts) / embed_elapsed, 2) if texts else None,
    }


def write_synthetic(root: Path, count: int, groups: list[str], rng: random.Random) -> None:
    for number in range(count):
        folder = root / f"team-{number % 10:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / ".acl.json").exists():
            allow = [f"group:{g}" for g in rng.sample(groups, 2)]
            (folder / ".acl.json").write_text(json.dumps({"allow": allow}), encoding="utf-8")
        paragraphs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 120))) + "." for _ in range(4)]
        body = "\n\n".join(f"## Section {i + 1}\n\n{p}" for i, p in enumerate(paragraphs))
        (folder / f"doc-{number:05d}.md").write_text(f"# Synthetic document {number}\n\n{body}\n", encoding="utf-8")


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


def measure_search(runtime: Runtime, *, tenant_id: str, groups: list[str], queries: int) -> dict[str, Any]:
    assert runtime.dev is not None
    client = TestClient(build_api(runtime.settings, runtime=runtime))
    results: dict[str, Any] = {}
    callers = {
        "one_group": groups[:1],  # about 1/len(groups) of the filler chunks
        "ten_groups": groups[:10],
        "tenant_wide_only": [],
    }
    for label, member_of in callers.items():
        token = runtime.dev.idp.mint(tenant_id=tenant_id, object_id=str(uuid.uuid4()), groups=member_of)
        headers = {"Authorization": f"Bearer {token}"}
        latencies = []
        for number in range(queries + 3):
            query = f"{WORDS[number % len(WORDS)]} {WORDS[(number * 7) % len(WORDS)]} policy"
            started = time.perf_counter()
            response = client.post("/v1/search", json={"query": query, "top_k": 10}, headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            if number >= 3:  # warm-up
                latencies.append(elapsed)
        results[label] = {
            "p50_ms": round(statistics.median(latencies), 1),
            "p95_ms": round(_percentile(latencies, 0.95), 1),
            "queries": len(latencies),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic-docs", type=int, default=100)
    parser.add_argument("--index-size", type=int, default=10_000, help="chunks in the index for the search test")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--index", default=":memory:", help="index location (':memory:', a folder or a server URL)")
    parser.add_argument("--identity-iterations", type=int, default=200, help="group-resolution samples per case")
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="clearance-bench-") as scratch:
        settings = Settings(
            mode=Mode.DEVELOPMENT, data_dir=Path(scratch) / "data", index=IndexSettings(location=args.index)
        )
        runtime = build_runtime(settings)
        assert runtime.dev is not None
        report: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "index": args.index}
        samples: dict[str, Any] = {}
        for tenant_id, source in sample_sources(runtime.dev.directory).items():
            samples[runtime.dev.directory.tenant_domains[tenant_id]] = measure_ingestion(runtime, source)
        report["ingest_sample_corpus"] = samples
        tenant_id = next(iter(runtime.dev.directory.tenant_domains))
        groups = [f"b0000000-0000-4000-8000-{n:012d}" for n in range(50)]
        synthetic_root = Path(scratch) / "synthetic"
        write_synthetic(synthetic_root, args.synthetic_docs, groups, rng)
        report["ingest_synthetic"] = measure_ingestion(
            runtime, FilesystemSource(root=synthetic_root, tenant_id=tenant_id)
        )
        filler = max(0, args.index_size - runtime.index.count())
        fill_index(runtime, tenant_id=tenant_id, size=filler, groups=groups, rng=rng)
        report["search"] = {
            "index_chunks": runtime.index.count(),
            "filter_groups": len(groups),
            "latency": measure_search(runtime, tenant_id=tenant_id, groups=groups, queries=args.queries),
        }
        runtime.close()
    # Added latency of group resolution per request (Graph through the local Entra stub, warm caches).
    report["group_resolution"] = measure_identity(iterations=args.identity_iterations)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
