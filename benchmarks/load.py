"""Load test of ``/v1/search`` and ``/v1/chat`` (extractive) through the real HTTP server, authenticated.

    python -m benchmarks.load [--index edge|local|memory|<location>] [--corpus samples|synthetic]
                              [--concurrency 1,2,4,8,16] [--duration 5] [--warmup 1] [--filler-chunks 0]

Prints one JSON document (:func:`run_load` returns it as a dict):

1. The product's runtime, built by the composition root from the environment's
   settings (development mode, a scratch data directory), ingests the sample
   corpus or a small synthetic one into the configured index (``--index``, else
   ``CLEARANCE_INDEX__LOCATION``, else the default embedded index under the data
   directory); ``--filler-chunks`` adds chunks none of the sample users may read.
2. The real app is served by uvicorn on 127.0.0.1 on a free port, in a thread of
   this process; a development token is minted for every sample user.
3. For each concurrency: the embedder-only rate (threads calling ``embed_query``
   on distinct texts through the very embedder object the app uses), then the
   HTTP phases, driven by :mod:`benchmarks.load_driver` in a separate process:
   search and chat, each with distinct questions and with a realistic repeat mix
   (labelled). Query embedding is the floor: ``search_share_of_embedder`` is the
   distinct-question search rate over the embedder-only rate at that concurrency
   (the higher of two measurements, one before and one after the HTTP phases).
4. A per-stage breakdown of single ``/v1/search`` requests (:mod:`benchmarks.load_profile`).

Bounded: every phase stops after its warm-up and duration, every request and the
driver process have timeouts, and everything listens on and talks to loopback.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fastapi import FastAPI

from acl.access import AccessList
from acl.dev.directory import Directory
from acl.principal import group_key, tenant_key
from acl.principal_cache import PrincipalCache
from api.app import create_app
from benchmarks.filler import fill_index
from benchmarks.load_driver import REPEAT_SHARE, WORDS, ZIPF_S, distinct_question, summarize
from benchmarks.load_profile import profile_search, serving
from clearance.compose import Runtime, build_runtime
from clearance.samples import sample_sources
from clearance.settings import IndexSettings, Mode, Settings
from core.records import ChunkDraft, DocumentMeta
from index.ports import Embedder, IndexedDocument
from index.query_cache import QueryEmbeddingCache

REPO_ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = REPO_ROOT / "samples" / "questions.json"
DEFAULT_CONCURRENCY = (1, 2, 4, 8, 16)
ENDPOINTS = {"search": ("/v1/search", "query"), "chat": ("/v1/chat", "question")}
MIXES = ("distinct", "repeat_mix")


def run_load(
    *,
    index: str | None = None,
    corpus: str = "samples",
    concurrencies: Sequence[int] = DEFAULT_CONCURRENCY,
    duration_s: float = 5.0,
    warmup_s: float = 1.0,
    filler_chunks: int = 0,
    profile_requests: int = 30,
    embedder: Embedder | None = None,
) -> dict[str, Any]:
    """Runs the whole load test and returns its figures (see the module notes)."""
    if min(concurrencies) < 1 or duration_s <= 0 or warmup_s < 0:
        raise ValueError("concurrencies must be >= 1, the duration positive and the warm-up not negative")
    stems = [str(q["question"]) for q in json.loads(QUESTIONS.read_text(encoding="utf-8"))]
    with tempfile.TemporaryDirectory(prefix="clearance-load-") as scratch:
        settings = _settings(Path(scratch), index)
        runtime = build_runtime(settings, embedder=embedder)
        try:
            assert runtime.dev is not None  # development mode: the settings above ask for it
            started = time.perf_counter()
            ingested = _ingest(runtime, corpus, runtime.dev.directory)
            if filler_chunks:
                fill_index(
                    runtime,
                    tenant_id=next(iter(runtime.dev.directory.tenant_names)),
                    size=filler_chunks,
                    groups=[f"b0000000-0000-4000-8000-{n:012d}" for n in range(50)],
                    rng=random.Random(7),
                )
            report: dict[str, Any] = {
                "machine": {"cpus": os.cpu_count(), "load_average_before": _load_average()},
                "index": {"location": settings.index_location, "chunks": runtime.index.count()},
                "corpus": {**ingested, "seconds": round(time.perf_counter() - started, 1)},
                "settings": {
                    "embedding_threads": settings.embedding.threads,
                    "query_cache_size": settings.retrieval.query_cache_size,
                    "principal_cache_ttl_seconds": settings.auth.principal_cache_ttl_seconds,
                    "generator": settings.generator.kind.value,
                },
                "users": [user.name for user in runtime.dev.directory.users],
                "phase_seconds": {"warmup": warmup_s, "measured": duration_s},
                "repeat_mix": f"{REPEAT_SHARE:.0%} one of {len(stems)} sample questions (Zipf s={ZIPF_S:g}), "
                "the rest new; every sample user in turn",
            }
            tokens = [runtime.dev.idp.mint_for(user) for user in runtime.dev.directory.users]
            app = _app(runtime)
            with serving(app) as base_url:
                report["levels"] = _levels(runtime, base_url, tokens, stems, concurrencies, warmup_s, duration_s)
            report["summary"] = _summary(report["levels"])
            report["caches"] = _cache_stats(runtime, app)
            report["profile_search"] = profile_search(
                runtime, tokens=dict(zip(report["users"], tokens, strict=True)), stems=stems, requests=profile_requests
            )
            report["machine"]["load_average_after"] = _load_average()
            return report
        finally:
            runtime.close()


def _settings(scratch: Path, index: str | None) -> Settings:
    # Built like `clearance serve` builds them (environment included), but always in development mode
    # (tokens are minted here) and over a scratch data directory; only the index may be chosen here.
    settings = Settings(mode=Mode.DEVELOPMENT, data_dir=scratch / "data")
    if index is None or index == "default":
        return settings
    location = {"edge": f"edge:{scratch / 'edge'}", "local": str(scratch / "index"), "memory": ":memory:"}.get(
        index, index
    )
    return settings.model_copy(update={"index": IndexSettings(location=location)})


def _ingest(runtime: Runtime, corpus: str, directory: Directory) -> dict[str, Any]:
    if corpus == "synthetic":
        chunks = write_synthetic_corpus(runtime, directory)
        return {"kind": corpus, "files": chunks, "chunks": chunks, "file_errors": 0}
    if corpus != "samples":
        raise ValueError(f"unknown corpus {corpus!r} (samples or synthetic)")
    files = chunks = errors = 0
    for source in sample_sources(directory).values():
        job = runtime.pipeline.run(source)
        files, chunks, errors = files + job.files_total, chunks + job.chunks_written, errors + len(job.errors)
    return {"kind": corpus, "files": files, "chunks": chunks, "file_errors": errors}


def write_synthetic_corpus(runtime: Runtime, directory: Directory, *, docs_per_acl: int = 2) -> int:
    """Short one-chunk documents per tenant, tenant-wide and per group of the sample users; returns the chunks.

    Written through the index port with real embeddings and no parsing: the smoke test needs an index
    in a second, not the parsers' start-up (the sample corpus goes through the whole pipeline).
    """
    rng = random.Random(11)
    written = 0
    for tenant_id in directory.tenant_names:
        groups = sorted({g for user in directory.users if user.tenant == tenant_id for g in user.groups[:1]})
        acls = {
            "everyone": tenant_key(tenant_id),
            **{f"group-{n}": group_key(tenant_id, g) for n, g in enumerate(groups)},
        }
        for label, key in acls.items():
            for number in range(docs_per_acl):
                text = f"The {label} note {number} covers the travel per diem and " + " ".join(
                    rng.choice(WORDS) for _ in range(40)
                )
                path = f"synthetic/{label}/note-{number}.md"
                runtime.index.replace_document(
                    IndexedDocument(
                        meta=DocumentMeta(
                            doc_id=f"synthetic-{tenant_id}-{label}-{number}",
                            tenant_id=tenant_id,
                            source_id="load",
                            path=path,
                            uri=path,
                            title=f"{label} note {number}",
                            format="md",
                            content_hash=f"{written:064x}",
                            modified_at=0.0,
                        ),
                        acl=AccessList(allow=frozenset({key})),
                        chunks=(ChunkDraft(text=text, section=None, page=None, page_name=None),),
                        vectors=(tuple(runtime.embedder.embed_documents([text])[0]),),
                    )
                )
                written += 1
    return written


def _app(runtime: Runtime) -> FastAPI:
    """The product's app; with the principal cache in front of token validation when settings ask for it.

    The composition root's build_identity is meant to wire the cache (see the closing report); until it
    does, the benchmark wraps the validator the same way, and after it does, this adds nothing.
    """
    components = runtime.api_components()
    auth = runtime.settings.auth
    ttl = min(auth.principal_cache_ttl_seconds, auth.group_cache_ttl_seconds)
    if ttl > 0 and not isinstance(components.authenticator, PrincipalCache):
        cache = PrincipalCache(
            inner=components.authenticator, ttl_seconds=ttl, max_entries=auth.principal_cache_max_entries
        )
        components = replace(components, authenticator=cache)
    return create_app(components)


def _levels(
    runtime: Runtime,
    base_url: str,
    tokens: list[str],
    stems: list[str],
    concurrencies: Sequence[int],
    warmup_s: float,
    duration_s: float,
) -> list[dict[str, Any]]:
    levels: list[dict[str, Any]] = []
    tags = itertools.count(1)  # every phase of the run asks its own distinct questions

    def floor(concurrency: int) -> dict[str, Any]:
        # The embedder object the app uses (the query cache, when wired, sits in front of it: distinct
        # texts would miss it anyway).
        return embedder_only(
            runtime.embedder,
            concurrency=concurrency,
            warmup_s=warmup_s,
            duration_s=duration_s,
            tag=next(tags),
            stems=stems,
        )

    for concurrency in concurrencies:
        level: dict[str, Any] = {"concurrency": concurrency, "embedder_only": floor(concurrency)}
        phases = [
            {
                "name": f"{endpoint}/{mix}",
                "path": path,
                "field": field,
                "mix": mix,
                "concurrency": concurrency,
                "warmup_s": warmup_s,
                "duration_s": duration_s,
                "tag": next(tags),
            }
            for endpoint, (path, field) in ENDPOINTS.items()
            for mix in MIXES
        ]
        driven = drive(base_url, tokens=tokens, stems=stems, phases=phases)
        for endpoint in ENDPOINTS:
            level[endpoint] = {mix: driven[f"{endpoint}/{mix}"] for mix in MIXES}
        # Measured again after the HTTP phases: on a shared machine the two differ, and the share below
        # is taken against the higher one, so noise cannot flatter the end-to-end figure.
        level["embedder_only_after"] = floor(concurrency)
        best = max(level["embedder_only"]["qps"], level["embedder_only_after"]["qps"])
        level["search_share_of_embedder"] = round(level["search"]["distinct"]["qps"] / best, 3) if best else None
        levels.append(level)
    return levels


def embedder_only(
    embedder: Embedder, *, concurrency: int, warmup_s: float, duration_s: float, tag: int, stems: Sequence[str]
) -> dict[str, Any]:
    """``concurrency`` threads calling ``embed_query`` on distinct texts for the phase's duration."""
    start = time.perf_counter()
    warm_end, stop = start + warmup_s, start + warmup_s + duration_s
    samples: list[tuple[float, float]] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        number = index
        while (started := time.perf_counter()) < stop:
            embedder.embed_query(distinct_question(stems, tag, number))
            number += concurrency
            ended = time.perf_counter()
            if started >= warm_end:
                with lock:
                    samples.append((started, ended))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    span = max((ended for _, ended in samples), default=warm_end) - warm_end
    figures = summarize([(e - s) * 1000 for s, e in samples], errors=Counter(), span_s=span)
    return {key: figures[key] for key in ("qps", "p50_ms", "p95_ms", "p99_ms", "requests")}


def drive(base_url: str, *, tokens: list[str], stems: list[str], phases: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs the HTTP phases in a driver process (its own interpreter, so its own CPU and lock)."""
    plan = {"base_url": base_url, "tokens": tokens, "stems": stems, "phases": phases}
    budget = sum(float(p["warmup_s"]) + float(p["duration_s"]) for p in phases) + 60.0
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.load_driver"],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        timeout=budget,
        cwd=REPO_ROOT,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the load driver failed: {completed.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def _summary(levels: list[dict[str, Any]]) -> dict[str, Any]:
    best = {
        "embedder_only_qps": max(
            max(level["embedder_only"]["qps"], level["embedder_only_after"]["qps"]) for level in levels
        ),
        **{f"{e}_{m}_qps": max(level[e][m]["qps"] for level in levels) for e in ENDPOINTS for m in MIXES},
        "errors": sum(level[e][m]["errors"] for level in levels for e in ENDPOINTS for m in MIXES),
    }
    floor = best["embedder_only_qps"]
    best["search_distinct_share_of_embedder"] = round(best["search_distinct_qps"] / floor, 3) if floor else None
    return best


def _cache_stats(runtime: Runtime, app: FastAPI) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    authenticator = app.state.components.authenticator
    if isinstance(authenticator, PrincipalCache):
        stats["principal"] = asdict(authenticator.stats())
    # The answer service keeps its embedder private; the benchmark only reads the cache's counters.
    embedder = getattr(runtime.answers, "_embedder", None)
    if isinstance(embedder, QueryEmbeddingCache):
        stats["query_embedding"] = asdict(embedder.stats())
    return stats


def _load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--index", default=None, help="edge, local (qdrant-client on a folder), memory or a location; default: settings"
    )
    parser.add_argument("--corpus", default="samples", choices=("samples", "synthetic"))
    parser.add_argument("--concurrency", default=",".join(map(str, DEFAULT_CONCURRENCY)))
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each phase")
    parser.add_argument("--filler-chunks", type=int, default=0, help="chunks no sample user may read")
    parser.add_argument("--profile-requests", type=int, default=30)
    args = parser.parse_args()
    report = run_load(
        index=args.index,
        corpus=args.corpus,
        concurrencies=[int(c) for c in args.concurrency.split(",")],
        duration_s=args.duration,
        warmup_s=args.warmup,
        filler_chunks=args.filler_chunks,
        profile_requests=args.profile_requests,
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
