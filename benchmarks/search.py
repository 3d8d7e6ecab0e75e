"""Permission-filtered search: index-query latency and recall@10 against exact search, per implementation.

    python -m benchmarks.search --chunks 100000 [--queries 200] [--million] [--variant NAME ...]

Synthetic chunks with the ACL shapes of a real tenant: tenant-wide documents,
group documents (1-3 groups each, group sizes heavy-tailed, groups tied to a
topic), private documents of one or two users, deny entries on some of each,
and a second tenant with the same group ids. Vectors are clustered by topic
(a document's chunks sit near its topic), and a group's documents sit mostly in
its topic, so an ACL filter selects regions of the space, not a random sample:
the hard case for filtered HNSW.

Callers are built to hit ACL selectivities of 0.1 %, 1 %, 10 % and 50 % of all
chunks, each once with few groups and once with as many small groups as fit
(up to 500: "users in 1-500 groups"). Queries sit near a random topic, usually not
the caller's. For every query the exact answer is computed with numpy over the
same vectors, with the reference rule :meth:`AccessList.permits` deciding
readability; recall@10 compares the index's ids with it, and any returned chunk
the rule forbids is counted as a leak (must be 0).

Implementations: qdrant-client local (a pure-Python scan: at most 20k chunks
and fewer queries) and Qdrant's in-process engine (``EdgeChunkIndex``) under one
or more tunings. Latency is ``index.search`` alone (embedding excluded); the
corpus is written through the index port. One JSON document is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qdrant_client import QdrantClient, models

from acl.access import AccessList
from acl.index_filter import LIVE_STATE, READ_FIELD, STATE_FIELD
from acl.principal import Principal, group_key, tenant_key, user_key
from core.records import ChunkDraft, DocumentMeta
from index.edge import EdgeChunkIndex, EdgeTuning, PayloadGraph
from index.payload import ACL_SOURCE_FIELDS, live_payload
from index.ports import ChunkIndex, IndexedDocument
from index.qdrant import QdrantChunkIndex

if TYPE_CHECKING:
    from clearance.settings import RetrievalSettings

TENANT = "d1f72fea-086f-4448-9dce-2f71deb8ef72"
OTHER_TENANT = "d397c693-4a32-47ad-9ee4-9ad621108730"
SELECTIVITIES = (0.001, 0.01, 0.10, 0.50)
LOCAL_MAX_CHUNKS = 20_000
TOPICS = 64
TOP_K = 10

# Named tunings: "chosen" is EdgeTuning's defaults, the others what it was chosen against.
VARIANTS: dict[str, EdgeTuning] = {
    "chosen": EdgeTuning(),
    "engine-defaults": EdgeTuning(hnsw_ef=None, acorn=False, payload_graph=PayloadGraph.ALL, segments=0),
    "no-payload-graph": EdgeTuning(hnsw_ef=None, acorn=False, payload_graph=PayloadGraph.NONE, segments=0),
    "acorn-only": EdgeTuning(hnsw_ef=None, payload_graph=PayloadGraph.NONE, segments=0),
    "acorn-all-graphs": EdgeTuning(payload_graph=PayloadGraph.ALL, segments=0),
    "full-scan-40000": EdgeTuning(full_scan_threshold_kb=40_000, acorn=False, segments=0),
    "chosen-2-segments": EdgeTuning(segments=0),
    "chosen-8-segments": EdgeTuning(segments=8),
    # A denser graph: at 300k it lifted the 500-groups caller's recall (0.981 to 0.989) for +8 % build time
    # (measured with float vectors; with the default int8 vectors since).
    "chosen-m32": EdgeTuning(m=32),
    # The default before int8 vectors: the graph walk on the float vectors.
    "float-vectors": EdgeTuning(quantized=False),
}

# Query plans measured over an already built shard, reopened with only its query-time settings changed.
QUERY_PLANS: dict[str, dict[str, Any]] = {
    # The plan before per-search planning: ACORN for every filter, the engine's own choice of exact scans.
    "acorn-for-every-filter": {"many_keys_above": 0, "exact_max_points": 0, "wide_min_share": None},
    # The plan before callers of few keys walked the graph at every size: exact for every small filter.
    "exact-for-small-filters": {"few_keys_exact_max_points": 10_000},
    # Planned, but large filters walk the graph filtered (ACORN or plain) instead of wide.
    "no-wide": {"wide_min_share": None},
    # No ACORN at all: plain filtered HNSW between the exact limit and the wide share.
    "no-acorn": {"acorn": False},
    # The plan before wide searches scored the whole documents of their best candidates.
    "wide-candidates-only": {"wide_sibling_documents": 0},
}


def _guid(kind: int, number: int) -> str:
    return f"{kind:08x}-0000-4000-8000-{number:012x}"


@dataclass(frozen=True, slots=True)
class Corpus:
    vectors: np.ndarray  # (chunks, dimension) float32, unit rows
    chunk_doc: np.ndarray  # document number of each chunk
    doc_tenant: list[str]
    doc_acl: list[AccessList]
    doc_chunks: list[range]
    centres: np.ndarray  # topic centres, for queries
    groups: int
    users: int


def build_corpus(chunks: int, dimension: int, seed: int) -> Corpus:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((TOPICS, dimension)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    sizes = rng.integers(1, 16, size=chunks)  # chunks per document, mean 8
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    docs = int(np.searchsorted(bounds, chunks))
    bounds[docs] = chunks
    groups, users = max(300, docs // 8), max(500, docs // 10)
    group_topic = rng.integers(0, TOPICS, size=groups)
    group_weight = 1.0 / np.arange(1, groups + 1) ** 0.9  # heavy-tailed group sizes
    group_weight /= group_weight.sum()
    doc_topic = rng.integers(0, TOPICS, size=docs)
    doc_tenant: list[str] = []
    doc_acl: list[AccessList] = []
    for number in range(docs):
        tenant = OTHER_TENANT if rng.random() < 0.1 else TENANT
        kind, deny = rng.random(), set()
        if kind < 0.35:
            allow = {tenant_key(tenant)}
        elif kind < 0.9:
            picked = rng.choice(groups, size=int(rng.integers(1, 4)), p=group_weight, replace=False)
            allow = {group_key(tenant, _guid(2, int(g))) for g in picked}
            if rng.random() < 0.8:  # a group's documents are mostly about its topic
                doc_topic[number] = group_topic[int(picked[0])]
        else:
            allow = {user_key(tenant, _guid(3, int(u))) for u in rng.choice(users, size=int(rng.integers(1, 3)))}
        if rng.random() < 0.08:
            deny.add(user_key(tenant, _guid(3, int(rng.integers(users)))))
        if rng.random() < 0.03:
            deny.add(group_key(tenant, _guid(2, int(rng.choice(groups, p=group_weight)))))
        doc_tenant.append(tenant)
        doc_acl.append(AccessList(allow=frozenset(allow), deny=frozenset(deny)))
    chunk_doc = np.repeat(np.arange(docs), np.diff(bounds[: docs + 1]))
    vectors = np.empty((chunks, dimension), dtype=np.float32)
    # Offsets as norms relative to the unit topic centre: a document sits 0.8 from its
    # topic, a chunk 0.6 from its document (cosine ~0.5 within a topic, ~0.8 within a document).
    doc_centre = centres[doc_topic] + _noise(rng, (docs, dimension), 0.8)
    for start in range(0, chunks, 50_000):
        stop = min(chunks, start + 50_000)
        block = doc_centre[chunk_doc[start:stop]] + _noise(rng, (stop - start, dimension), 0.6)
        vectors[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    doc_chunks = [range(int(bounds[n]), int(bounds[n + 1])) for n in range(docs)]
    return Corpus(vectors, chunk_doc, doc_tenant, doc_acl, doc_chunks, centres, groups, users)


def _noise(rng: np.random.Generator, shape: tuple[int, int], norm: float) -> np.ndarray:
    noise: np.ndarray = rng.standard_normal(shape).astype(np.float32) * np.float32(norm / np.sqrt(shape[1]))
    return noise


def readable_docs(corpus: Corpus, principal: Principal) -> np.ndarray:
    """The reference rule, document by document: same tenant and AccessList.permits."""
    keys = principal.access_keys()
    return np.array(
        [
            t == principal.tenant_id and acl.permits(keys)
            for t, acl in zip(corpus.doc_tenant, corpus.doc_acl, strict=True)
        ]
    )


def make_callers(corpus: Corpus, seed: int) -> list[tuple[float, str, Principal]]:
    """Per target selectivity, a caller with few (large) groups and one with many (small) groups.

    Groups are added greedily while the caller stays under 1.1x the target; readability is
    tracked incrementally (allow hits, deny hits per document) and checked against the
    reference rule at the end.
    """
    rng = np.random.default_rng(seed)
    chunk_weight = np.array([len(r) for r in corpus.doc_chunks], dtype=np.float64) / len(corpus.chunk_doc)
    in_tenant = np.array([t == TENANT for t in corpus.doc_tenant])
    allows: dict[str, list[int]] = {}
    denies: dict[str, list[int]] = {}
    for number, acl in enumerate(corpus.doc_acl):
        for key in acl.allow:
            allows.setdefault(key, []).append(number)
        for key in acl.deny:
            denies.setdefault(key, []).append(number)
    group_ids = [g for g in range(corpus.groups) if group_key(TENANT, _guid(2, g)) in allows]
    size = {g: float(chunk_weight[allows[group_key(TENANT, _guid(2, g))]].sum()) for g in group_ids}
    callers: list[tuple[float, str, Principal]] = []
    for target in SELECTIVITIES:
        for style in ("few-groups", "many-groups"):
            member = target >= 0.3  # tenant-wide documents alone are ~31 % of the chunks
            if style == "few-groups":  # the largest groups that do not overshoot on their own
                pool = sorted((g for g in group_ids if size[g] <= target * 1.1), key=lambda g: -size[g])
            else:
                pool = sorted(group_ids, key=lambda g: size[g])
            user = _guid(3, int(rng.integers(corpus.users)))
            allow_hits = np.zeros(len(corpus.doc_acl), dtype=np.int32)
            deny_hits = np.zeros(len(corpus.doc_acl), dtype=np.int32)

            def add(key: str, sign: int = 1, a: np.ndarray = allow_hits, d: np.ndarray = deny_hits) -> float:
                np.add.at(a, allows.get(key, []), sign)
                np.add.at(d, denies.get(key, []), sign)
                return float(chunk_weight[(a > 0) & (d == 0) & in_tenant].sum())

            selectivity = add(user_key(TENANT, user))
            if member:
                selectivity = add(tenant_key(TENANT))
            chosen: list[str] = []
            for group in pool:
                if selectivity >= target * 0.9 or len(chosen) >= 500:
                    break
                key = group_key(TENANT, _guid(2, group))
                trial = add(key)
                if trial <= target * 1.1:
                    chosen.append(_guid(2, group))
                    selectivity = trial
                else:
                    add(key, -1)
            principal = Principal(tenant_id=TENANT, object_id=user, groups=frozenset(chosen), guest=not member)
            incremental = (allow_hits > 0) & (deny_hits == 0) & in_tenant
            assert np.array_equal(incremental, readable_docs(corpus, principal)), "selectivity bookkeeping drifted"
            callers.append((target, style, principal))
    return callers


def write_corpus(index: ChunkIndex, corpus: Corpus, publish_all: Callable[[], None] | None = None) -> None:
    """Every document through the port: ``replace_document``, or ``stage_document`` then one bulk flip.

    The bulk flip is for qdrant-client local only, where each publish scans every point
    in Python (writing 20k chunks one publish at a time would take ~8 minutes); fresh
    documents have no older version to delete, so the flip is all a publish would do.
    """
    for number, chunk_range in enumerate(corpus.doc_chunks):
        write = index.stage_document if publish_all else index.replace_document
        write(
            IndexedDocument(
                meta=DocumentMeta(
                    doc_id=f"doc-{number}",
                    tenant_id=corpus.doc_tenant[number],
                    source_id="bench",
                    path=f"bench/{number}.md",
                    uri=f"bench/{number}.md",
                    title=f"Document {number}",
                    format="md",
                    content_hash=f"{number:064x}",
                    modified_at=0.0,
                ),
                acl=corpus.doc_acl[number],
                # The text carries the chunk's row, so a result maps back to the exact answer.
                chunks=tuple(ChunkDraft(text=f"c{i}", section=None, page=None, page_name=None) for i in chunk_range),
                vectors=tuple(tuple(float(x) for x in corpus.vectors[i]) for i in chunk_range),
            )
        )
    if publish_all:
        publish_all()


def measure(
    index: ChunkIndex, corpus: Corpus, callers: list[tuple[float, str, Principal]], queries: int, seed: int
) -> list[dict[str, Any]]:
    """p50/p95 of ``index.search`` and recall@10 against exact search, per selectivity bucket.

    A bucket's questions and their exact answers are all computed before its searches are
    timed, back to back. Computed between them (a product of every chunk's vector per
    question, 1.5 GB at 1M chunks), they left numpy's BLAS threads busy beside the engine
    and its caches flushed, which added 1-2 ms to every search (docs/scale.md).
    """
    rng = np.random.default_rng(seed)
    dimension = corpus.vectors.shape[1]
    rows: list[dict[str, Any]] = []
    for target in SELECTIVITIES:
        group = [(style, p) for t, style, p in callers if t == target]
        asked: list[tuple[Principal, list[float], set[int], np.ndarray]] = []
        described = []
        for style, principal in group:
            chunk_ok = readable_docs(corpus, principal)[corpus.chunk_doc]
            readable_rows, all_rows = np.flatnonzero(chunk_ok), np.arange(len(chunk_ok))
            described.append(
                {"style": style, "groups": len(principal.groups), "guest": principal.guest,
                 "selectivity": round(float(chunk_ok.mean()), 5)}
            )  # fmt: skip
            for _ in range(max(1, queries // len(group))):
                # Half the questions are about something the caller can read, half about anything.
                pool = readable_rows if rng.random() < 0.5 else all_rows
                anchor = corpus.vectors[int(pool[int(rng.integers(len(pool)))])]
                query = anchor + _noise(rng, (1, dimension), 0.9)[0]
                query = (query / np.linalg.norm(query)).astype(np.float32)
                scores = corpus.vectors @ query
                scores[~chunk_ok] = -np.inf
                expected = min(TOP_K, int(chunk_ok.sum()))
                exact = set(np.argpartition(-scores, expected)[:expected].tolist()) if expected else set()
                asked.append((principal, query.tolist(), exact, chunk_ok))
        latencies: list[float] = []
        recalls: list[float] = []
        leaks = 0
        for principal, vector, exact, chunk_ok in asked:
            started = time.perf_counter()
            passages = index.search(principal, vector, top_k=TOP_K)
            latencies.append((time.perf_counter() - started) * 1000)
            found = {int(p.text[1:]) for p in passages}
            leaks += sum(1 for row in found if not chunk_ok[row])
            recalls.append(len(found & exact) / len(exact) if exact else 1.0)
        rows.append(
            {
                "target_selectivity": target,
                "callers": described,
                "queries": len(latencies),
                "p50_ms": round(statistics.median(latencies), 3),
                "p95_ms": round(_percentile(latencies, 0.95), 3),
                "recall_at_10": round(statistics.fmean(recalls), 4),
                "min_recall_at_10": round(min(recalls), 2),
                "leaks": leaks,
            }
        )
    return rows


def progress(message: str) -> None:
    """A line on stderr, so a long run can be followed (and projected) while the JSON waits for the end."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_one(
    name: str,
    index: ChunkIndex,
    corpus: Corpus,
    args: argparse.Namespace,
    queries: int,
    extra: dict[str, Any],
    publish_all: Callable[[], None] | None = None,
) -> dict[str, Any]:
    callers = make_callers(corpus, args.seed)
    try:
        index.ensure_schema()
        started = time.perf_counter()
        if isinstance(index, EdgeChunkIndex) and args.write == "bulk":
            with index.bulk_load():
                write_corpus(index, corpus, publish_all)
                # The rest of write_s is the one optimize() that builds every graph.
                extra = {**extra, "write_path": "bulk", "points_written_s": round(time.perf_counter() - started, 1)}
                progress(f"{name}: points written in {extra['points_written_s']} s; building the graphs")
        else:
            write_corpus(index, corpus, publish_all)
            extra = {**extra, "write_path": "port"}
        write_s = time.perf_counter() - started
        progress(f"{name}: written in {write_s:.1f} s; measuring")
        if isinstance(index, EdgeChunkIndex):
            extra = {**extra, "after_write": index.stats()}
        for _, _, principal in callers[:2]:  # warm-up: the first queries page segments in
            index.search(principal, corpus.vectors[0].tolist(), top_k=TOP_K)
        return {
            "implementation": name,
            "chunks": len(corpus.chunk_doc),
            "documents": len(corpus.doc_chunks),
            "write_s": round(write_s, 1),
            **extra,
            "buckets": measure(index, corpus, callers, queries, args.seed + 1),
        }
    finally:
        index.close()


def run_local(args: argparse.Namespace, chunks: int) -> dict[str, Any]:
    client = QdrantClient(location=":memory:")
    index = QdrantChunkIndex(client=client, collection="bench", dimension=args.dimension)

    def publish_all() -> None:
        # What publish writes (live state and read keys), one write per distinct ACL, by point id.
        staged = models.Filter(must=[models.FieldCondition(key=STATE_FIELD, match=models.MatchValue(value="staged"))])
        flips: dict[tuple[str, ...], list[models.ExtendedPointId]] = {}
        offset: models.ExtendedPointId | None = None
        while True:
            page, offset = client.scroll(
                "bench", scroll_filter=staged, limit=4096, offset=offset, with_payload=ACL_SOURCE_FIELDS
            )
            for point in page:
                flips.setdefault(tuple(live_payload(point.payload or {})[READ_FIELD]), []).append(point.id)
            if offset is None:
                break
        for keys, ids in flips.items():
            client.set_payload("bench", payload={STATE_FIELD: LIVE_STATE, READ_FIELD: list(keys)}, points=ids)

    corpus = build_corpus(min(chunks, LOCAL_MAX_CHUNKS), args.dimension, args.seed)
    return run_one("qdrant-client-local", index, corpus, args, args.local_queries, {}, publish_all)


def measure_query_plan(
    folder: Path, corpus: Corpus, args: argparse.Namespace, variant: str, plan: str
) -> dict[str, Any]:
    """The same shard and questions as ``variant``, reopened with the query plan ``plan`` (nothing rebuilt)."""
    tuning = replace(VARIANTS[variant], **QUERY_PLANS[plan])
    index = EdgeChunkIndex(path=folder, dimension=args.dimension, tuning=tuning)
    callers = make_callers(corpus, args.seed)
    try:
        for _, _, principal in callers[:2]:  # the same warm-up as the first measurement
            index.search(principal, corpus.vectors[0].tolist(), top_k=TOP_K)
        return {
            "implementation": f"edge:{variant}/{plan}",
            "same_shard_as": f"edge:{variant}",
            "chunks": len(corpus.chunk_doc),
            "tuning": asdict(tuning),
            "buckets": measure(index, corpus, callers, args.queries, args.seed + 1),
        }
    finally:
        index.close()


def measure_search_e2e(
    folder: Path, corpus: Corpus, callers: list[tuple[float, str, Principal]], queries: int
) -> dict[str, Any]:
    """``POST /v1/search`` through the product over the shard just measured: real token validation,
    query embedding with the configured embedder, the security filter, the engine and serialisation.

    Measured once per retrieval mode, the default (hybrid) and dense, over the same shard and
    questions: the sparse branch ranks with IDF over the chunks the caller may read, which the
    engine counts on every query (over a fixed sample of a large population), so the two grow
    differently with the readable share. The default mode is measured once more with IDF over
    every readable chunk (``idf_sample_above`` 0), the way it was before sampling.
    The app runs under uvicorn on loopback and is called with httpx, one request at a time, so
    the figure is one caller's latency. Callers are the few-groups ones (a token with more than
    200 groups carries an overage claim the development directory cannot resolve for synthetic users).
    """
    from clearance.settings import RetrievalModeSetting, RetrievalSettings

    default_mode = RetrievalSettings().mode
    modes = [default_mode, *(m for m in (RetrievalModeSetting.DENSE,) if m != default_mode)]
    by_mode = {
        mode.value: _search_e2e_in_mode(folder, callers, queries, RetrievalSettings(mode=mode)) for mode in modes
    }
    if default_mode is not RetrievalModeSetting.DENSE:  # the term branch's IDF over every readable chunk, as before
        every = RetrievalSettings(mode=default_mode, idf_sample_above=0)
        by_mode[f"{default_mode.value}, IDF over every readable chunk"] = _search_e2e_in_mode(
            folder, callers, queries, every
        )
    embedder = next(iter(by_mode.values()))["embedder"]
    return {
        "endpoint": "/v1/search",
        "embedder": embedder,
        "default_mode": default_mode.value,
        "buckets": by_mode[default_mode.value]["buckets"],
        "by_mode": {mode: result["buckets"] for mode, result in by_mode.items()},
    }


def _search_e2e_in_mode(
    folder: Path, callers: list[tuple[float, str, Principal]], queries: int, retrieval: RetrievalSettings
) -> dict[str, Any]:
    import httpx

    from benchmarks.server import running_app
    from clearance.compose import build_embedder, build_runtime
    from clearance.settings import IndexSettings, Mode, Settings
    from index.embedding_stamp import FolderStamp

    rng = np.random.default_rng(11)  # the same questions in every mode
    with tempfile.TemporaryDirectory(prefix="clearance-e2e-") as scratch:
        settings = Settings(
            mode=Mode.DEVELOPMENT,
            data_dir=Path(scratch),
            index=IndexSettings(location=f"edge:{folder}"),
            retrieval=retrieval,
        )
        embedder = build_embedder(settings)
        # The shard holds synthetic vectors, not any embedder's: record the configured one as its
        # embedder, or opening it refuses (vectors of another embedder are not comparable). The
        # query's embedding is then timed as the product does it; the answers are not checked.
        FolderStamp(folder).write(embedder.fingerprint)
        runtime = build_runtime(settings, embedder=embedder)
        assert runtime.dev is not None
        rows: list[dict[str, Any]] = []
        try:
            with running_app(runtime) as base, httpx.Client(base_url=base, timeout=30) as client:
                for target, style, principal in callers:
                    if style != "few-groups":
                        continue
                    token = runtime.dev.idp.mint(
                        tenant_id=principal.tenant_id,
                        object_id=principal.object_id,
                        groups=sorted(principal.groups),
                        guest=principal.guest,
                    )
                    headers = {"Authorization": f"Bearer {token}"}
                    latencies: list[float] = []
                    for number in range(queries + 5):
                        words = " ".join(str(w) for w in rng.choice(_QUERY_WORDS, size=6))
                        started = time.perf_counter()
                        reply = client.post("/v1/search", json={"query": words, "top_k": TOP_K}, headers=headers)
                        elapsed = (time.perf_counter() - started) * 1000
                        reply.raise_for_status()
                        if number >= 5:  # warm-up
                            latencies.append(elapsed)
                    rows.append(
                        {
                            "target_selectivity": target,
                            "groups": len(principal.groups),
                            "queries": len(latencies),
                            "p50_ms": round(statistics.median(latencies), 2),
                            "p95_ms": round(_percentile(latencies, 0.95), 2),
                            "p99_ms": round(_percentile(latencies, 0.99), 2),
                        }
                    )
        finally:
            runtime.close()
        return {"embedder": type(runtime.embedder).__name__, "buckets": rows}


_QUERY_WORDS = np.array(
    "robot fleet warehouse battery charger firmware route picker shelf order invoice budget forecast safety "
    "sensor incident customer contract renewal pricing quarter revenue hiring policy travel expense".split()
)


class LoadSampler:
    """The 1-minute load average every ``every_s`` seconds while a run lasts: on a shared machine the
    latency figures mean little without it."""

    def __init__(self, every_s: float = 30.0) -> None:
        self._every = every_s
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="load-sampler", daemon=True)

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            self._samples.append(os.getloadavg()[0])
            if self._stop.wait(self._every):
                return

    def summary(self) -> dict[str, float | int]:
        samples = self._samples or [os.getloadavg()[0]]
        return {
            "samples": len(samples),
            "every_s": self._every,
            "min": round(min(samples), 2),
            "mean": round(statistics.fmean(samples), 2),
            "max": round(max(samples), 2),
        }


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="the engine at 1,000,000 chunks")
    parser.add_argument("--queries", type=int, default=200, help="queries per selectivity bucket (the engine)")
    parser.add_argument("--local-queries", type=int, default=20, help="queries per bucket for qdrant-client local")
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS), help="engine tunings (default: chosen)")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument(
        "--query-plan",
        action="append",
        choices=sorted(QUERY_PLANS),
        help="also measure each built shard reopened with this query plan (same shard, same questions)",
    )
    parser.add_argument(
        "--write",
        choices=("bulk", "port"),
        default="bulk",
        help="the engine's corpus: one bulk load (EdgeChunkIndex.bulk_load) or an optimize per document write",
    )
    parser.add_argument("--scratch", type=Path, default=None, help="folder for the shard (default: the system's temp)")
    parser.add_argument(
        "--e2e-queries", type=int, default=100, help="POST /v1/search per caller over the chosen shard (0: skip)"
    )


def measure_search(args: argparse.Namespace) -> dict[str, Any]:
    """Every implementation's filtered search at the chosen size, and ``/v1/search`` over the chosen shard."""
    chunks = 1_000_000 if args.million else args.chunks
    load_at_start = os.getloadavg()[0]
    with LoadSampler() as load:
        results: list[dict[str, Any]] = [] if args.skip_local else [run_local(args, chunks)]
        corpus = build_corpus(chunks, args.dimension, args.seed)
        progress(f"corpus of {chunks} chunks built")
        end_to_end: dict[str, Any] | None = None
        for variant in args.variant or ["chosen"]:
            tuning = VARIANTS[variant]
            with tempfile.TemporaryDirectory(prefix="clearance-edge-bench-", dir=args.scratch) as folder:
                index = EdgeChunkIndex(path=Path(folder), dimension=args.dimension, tuning=tuning)
                extra = {"tuning": asdict(tuning)}
                results.append(run_one(f"edge:{variant}", index, corpus, args, args.queries, extra))
                progress(f"edge:{variant} result: {json.dumps(results[-1])}")  # kept should a later step fail
                for plan in args.query_plan or []:
                    results.append(measure_query_plan(Path(folder), corpus, args, variant, plan))
                    progress(f"edge:{variant}/{plan} result: {json.dumps(results[-1])}")
                if variant == "chosen" and args.e2e_queries and args.dimension == 384:
                    callers = make_callers(corpus, args.seed)
                    progress("POST /v1/search end to end")
                    end_to_end = measure_search_e2e(Path(folder), corpus, callers, args.e2e_queries)
                    progress(f"end to end: {json.dumps(end_to_end)}")
    return {
        "benchmark": "permission-filtered search",
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            # Latency on a shared machine moves with its load: the 1-minute load average, start and end.
            "load_average": [round(load_at_start, 2), round(os.getloadavg()[0], 2)],
            "load_average_during": load.summary(),
        },
        "dimension": args.dimension,
        "top_k": TOP_K,
        "results": results,
        "end_to_end": end_to_end,
    }


def main() -> None:
    print(json.dumps(measure_search(parser().parse_args()), indent=2))


if __name__ == "__main__":
    main()
