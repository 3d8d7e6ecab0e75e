"""The chunk index on Qdrant's own engine in-process (``qdrant-edge-py``).

Same port, same semantics as :mod:`index.qdrant` (staged versions, publish,
ACL rewrites, admin reads, filtered search), but HNSW and payload indexes run
inside this process instead of qdrant-client's pure-Python scan.

Three things differ from the qdrant-client implementation, each on purpose:

* The security filter is still built only by :func:`acl.index_filter.security_filter`;
  :func:`to_edge_filter` *translates* that qdrant-client filter to the engine's
  own types. Any shape it does not know raises :class:`InvalidInputError`
  before the engine is called: never an unfiltered or half-filtered search.
* One process owns a shard. A lock file held with ``flock`` turns a second
  opener into a clear :class:`IndexUnavailableError` (the engine's own WAL lock
  would otherwise surface as an opaque "WouldBlock").
* Filtered HNSW loses true neighbours when the readable chunks are a minority
  scattered over the graph (recall@10 0.29 at 10 % ACL selectivity without payload
  links, 100k chunks). The defaults of :class:`EdgeTuning` were measured to keep
  recall@10 >= 0.99 from 0.1 % to 50 % selectivity (``python -m benchmarks.search``).

Because one process owns the shard, it knows every deny entry its chunks hold (listed
from the engine when unknown, kept current by its own writes), and a search checks only
the caller's keys among them against deny lists (:class:`_DenyVocabulary`).

Every chunk also carries BM25-style term weights (:mod:`index.sparse`); sparse and
hybrid searches are built by :func:`search_request`, with the translated security
filter on every prefetch, on the fusion, and as the population IDF is computed
over. A shard made before term weights gets the (empty) sparse vector added when
it is opened; ``backfill_sparse`` fills it from the stored text.

There is no background optimizer in-process: each write ends with ``optimize()``,
which returns at once unless a segment is due for indexing, merging or vacuum, and
otherwise blocks (holding the GIL) while it builds. Changing the tuning of an
existing shard rebuilds its graph on the next write.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import qdrant_edge as qe
from qdrant_client import models

from acl.access import AccessList
from acl.index_filter import ALLOW_FIELD, DENY_FIELD, LIVE_STATE, READ_FIELD, STATE_FIELD, TENANT_FIELD, security_filter
from acl.principal import Principal
from core.errors import IndexUnavailableError, InvalidInputError
from core.records import DocumentState, Passage, StoredDocument
from index import idf_sample
from index.edge_filter import to_edge_filter
from index.idf_sample import IdfSampling
from index.payload import (
    ACL_SOURCE_FIELDS,
    DOCUMENT_FIELDS,
    KEYWORD_FIELDS,
    PASSAGE_FIELDS,
    PUBLISH_ATTEMPTS,
    READ_FIELDS,
    STATE_FIELDS,
    TERM_FIELDS,
    acl_payload,
    acl_source,
    document_state,
    in_document_order,
    live_acl_payload,
    live_payload,
    new_version,
    page_of_documents,
    passage,
    read_key_groups,
    readable_chunk,
    staged_chunks,
    stored_document,
    term_text,
)
from index.ports import BackfillReport, IndexedDocument, ReadableChunk, RetrievalMode, SparseEncoder, SparseVector
from index.qdrant import DENSE_VECTOR
from index.sparse import ENCODER_FIELD, SPARSE_VECTOR, Bm25Encoder, FusionParams

log = logging.getLogger(__name__)
_SHARD_DIR = "shard"
_LOCK_FILE = "owner.lock"
_WRITE_BATCH = 256
#: More distinct deny entries than this and searches check every key of a caller (the facet is one call).
_DENY_VOCABULARY_LIMIT = 1_000_000
_NO_DENIES: frozenset[str] = frozenset()  # a write that stores no deny entry
#: Chunks written before IDF sample slots existed.
_WITHOUT_SLOT = qe.Filter(must=[qe.IsEmptyCondition(key=idf_sample.FIELD)])
T = TypeVar("T")
# int8 copies of the vectors kept in memory for the graph walk and exact scans (a quarter of the
# float32 bytes); quantile 0.99 clips the outermost 1 % of component values, Qdrant's usual setting.
_INT8_IN_RAM = qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Pinned)


class PayloadGraph(StrEnum):
    """Which payload fields get extra HNSW links per value (Qdrant's ``enable_hnsw`` on a payload index)."""

    #: every indexed field, the engine's default: best recall, but ~2.5x the build time and
    #: a denser graph that made ACORN 5-10x slower at 10-50 % selectivity (measured).
    ALL = "all"
    #: only the read keys (``acl_read``), the field whose values a security filter unions: each
    #: key's live chunks stay connected in the graph. (Before read keys, ``acl_allow`` and
    #: ``tenant_id`` were linked; the tenant's links cover ~90 % of the points and connect
    #: nothing a filter needs.)
    ACL = "acl"
    #: none: recall@10 at 10 % selectivity fell to 0.29-0.63 (0.84-0.89 with ACORN): the trap.
    NONE = "none"


@dataclass(frozen=True, slots=True)
class EdgeTuning:
    """HNSW, optimizer and filtered-search settings; the defaults were measured (100k chunks, 2 cores).

    ``full_scan_threshold_kb``: below this many KB of matching vectors per segment the
    engine scores the filter's points exactly through the payload index instead of
    walking the graph (384 floats are 1.5 KB). It also bounds which payload values get
    their own graph links, so raising it *lowered* recall at 50 % selectivity (0.96-0.98
    at 20,000-40,000 KB against 0.998 at 10,000).
    ``acorn``: ACORN search (two hops through non-matching neighbours) for filters under
    ``acorn_max_selectivity`` (None: the engine's default); plain filtered HNSW above.
    With ACL payload links it lifted recall@10 at 10 % selectivity from 0.977 to 1.0 and
    at 50 % (500 groups) from 0.59 to 0.99, at ~2-4 ms (100k chunks).
    Each search is planned (:func:`plan_dense_search`) by the caller's keys and the
    engine's estimate of the filter's points. A caller of ``many_keys_above`` keys or
    fewer walks the graph with the filter (plain filtered HNSW) at every size below the
    wide share: each key's chunks are held together by their own graph links (the
    payload graph on ``acl_read``). At 1M chunks (one-group callers of 300 to 13,400
    chunks, 30 questions, each plan in its own two passes, p50 / p95) that had recall@10
    1.0 at every size and was as fast as scoring the filter exactly or faster: 0.10 / 0.12
    against 0.12 / 0.18 ms at 300 chunks, 0.97 / 1.6 against 1.2 / 3.1 ms at 3,000, 3.9 /
    4.9 against 7.7 / 13.4 ms at 9,800 (the 1 % caller). A caller of more keys holds a
    union of many small groups that the graph does not connect: its filters of
    ``exact_max_points`` or fewer are scored exactly, larger ones use ACORN. ACORN skips
    the engine's own exact scan of small filters: 6.1 against 2.0 ms for 874 chunks of
    500 groups. Plain HNSW strands where many small groups add up to a large share:
    500 groups at 31 % had recall 0.38-0.45 plain against 0.81-0.97 with ACORN (33 ms).
    0 for ``exact_max_points`` turns the exact rule off. ``few_keys_exact_max_points`` is
    the same limit for callers of few keys: 0 (never) by default; the plan before used
    10,000 for every caller, and the search benchmark measures it that way side by side.
    A filter estimated at ``wide_min_share`` of the shard's chunks or more (None: never) is
    searched wide: the graph is walked without the filter for ``wide_candidates`` ids (ids and
    scores only; nothing of that walk is returned), and only those candidates are scored,
    exactly, under the security filter. Filtered walks strand in large filters whose chunks
    the graph does not connect: at 1M chunks the 500-groups caller at 31 % had recall@10 0.47
    plain and 0.843 with ACORN (p95 37.7 ms), and 0.967 wide with 300 candidates (p95 10.5 ms);
    the 45 % caller 0.973 plain and 0.983 wide. Small filters must not go wide: a 0.1 % caller
    found 0.12 of its ten among 300 candidates. The whole documents of the best
    ``wide_sibling_documents`` candidates are scored too (0: none), up to
    ``wide_sibling_chunks`` chunks (larger documents are passed over). The walk's misses were
    not far down its list: they were chunks no walk reaches. Searching each chunk's own
    vector did not return it for ~1.2 % of the chunks at 1M (0.3 % at 200k; 0.5-0.9 % with
    no payload links), with ef 256 or 1000 alike, and the misses at 50 % stood at exact ranks
    0-62. A document's chunks lie close together, and the graph links such a cluster through
    a few of them. With the documents of the best 100 candidates, recall@10 at 50 % went from
    0.964 to 0.992 (50: 0.990; on another sample of questions 0.978 to 0.987), for one more
    engine read: ~3.5 ms more at the median in a warm process, 6-8 ms in one that has just
    opened the shard (the payload storage's pages are touched for the first time).
    ``hnsw_ef``: 64 dropped to 0.94-0.96 at 10-50 %; 128 and 256 measured the same at 100k.
    At 300k chunks in one bulk-loaded segment, 128 left single queries with recall 0.0 (the
    search stranded in a region the filter empties) in three of three builds, at 10 % or 50 %;
    256 lifted the worst query to 0.8-0.9 and the 50 % mean from 0.963-0.987 to 0.984-0.993,
    for ~1 ms more at the median; 512 measured the same as 256.
    ``segments``: the engine derives 2 from 2 cores, and then every indexing pass merged
    into one big segment and rebuilt its whole graph: writing 100k chunks through the
    port took 266 s (178 s with ACL links only), and the cost grows with the square of
    the index. 4 wrote them in 37 s with recall 1.0 in every bucket; 8 wrote as fast but
    left segments so small that 10-50 % filters became exact scans of every segment
    (~3x slower at 50 %). ``max_segment_kb`` / ``indexing_threshold_kb``: None keeps
    the engine's defaults.
    ``quantized``: int8 copies of the vectors, kept in memory, for the graph walk and exact
    scans; the best ``oversampling`` x ``top_k`` candidates are rescored with the float
    vectors, so the order returned is exact among them. At 300k chunks (one bulk-loaded
    build each, same corpus) it cut p95 from 10.5 / 18.8 / 24.1 / 32.2 ms to 5.0 / 12.5 /
    17.3 / 26.0 ms at 0.1 / 1 / 10 / 50 % selectivity, with the same recall@10 (1.0 up to
    10 %, 0.991 against 0.992 at 50 %) and 40 % less build time (188 s against 317 s).
    Without rescoring (``oversampling`` 1) recall fell to 0.97-0.99 at 100k. Segments that
    are still being written (unindexed) are searched with the float vectors.
    ``idf_sampling``: when sparse and hybrid searches count IDF over a sample of the caller's
    readable chunks instead of all of them (:class:`index.idf_sample.IdfSampling`).
    ``m``: graph links per chunk. The wide plan's misses at 50 % were chunks no walk reaches;
    with 32 instead of 16, 0.16 % of 5,000 sampled chunks were not returned by a search for their
    own vector at 200k chunks (0.48 % with 16), and at 1M recall@10 at 50 % was 0.9945-0.997 on
    three question samples (16: 0.982-0.993 over three builds), 1.0 at 10 %, with the same
    latency within this machine's noise and ~128 MB more links at 1M. It applies to graphs built
    from then on.
    ``prewarmed``: a new shard's payload storage is memory-mapped and read into the page cache
    when the shard is opened (Qdrant's ``Cached`` tier), not on first touch (``Cold``, the
    engine's default for payload); its pages did not outlive a process, so every start began
    cold. At 1M chunks (fresh process, 100 questions per bucket, p50 / p95) the 50 % bucket
    measured 8.5-10.2 / 10.0-14.8 ms against 17.3-23.5 / 20.2-28.1 ms, and the 0.1-10 % buckets
    1-2 ms less; the wide plan's read of its candidates' documents fell from 7.8 to 1.0 ms.
    Segments created before keep their storage as created. The payload indexes stay in the
    heap (the engine's default): in ``Cached`` they made a 1 % caller's filtered walk slower.
    """

    m: int = 32
    ef_construct: int = 100
    full_scan_threshold_kb: int = 10_000
    hnsw_ef: int | None = 256
    acorn: bool = True
    acorn_max_selectivity: float | None = None
    many_keys_above: int = 16
    exact_max_points: int = 10_000
    few_keys_exact_max_points: int = 0
    wide_min_share: float | None = 0.25
    wide_candidates: int = 300
    wide_sibling_documents: int = 100
    wide_sibling_chunks: int = 2_000
    payload_graph: PayloadGraph = PayloadGraph.ACL
    segments: int = 4
    max_segment_kb: int | None = None
    indexing_threshold_kb: int | None = None
    quantized: bool = True
    prewarmed: bool = True
    oversampling: float = 2.0
    idf_sampling: IdfSampling = field(default_factory=IdfSampling)


class SearchPlan(StrEnum):
    """How the dense branch of one search walks the shard; every plan applies the same filter."""

    EXACT = "exact"  # score every chunk the filter lets through (no graph)
    WIDE = "wide"  # walk the graph unfiltered for candidate ids, score those exactly under the filter
    ACORN = "acorn"  # filtered HNSW with two-hop expansion through non-matching neighbours
    GRAPH = "graph"  # plain filtered HNSW


def plan_dense_search(
    tuning: EdgeTuning, keys: int, estimate: Callable[[], int], points: Callable[[], int]
) -> SearchPlan:
    """Wide for a large filter; for a caller of many keys exact when small, else ACORN; else HNSW.

    ``estimate`` is the engine's estimate of the filter's chunks over its payload indexes
    (no scan: 0.1-1.3 ms at 1M chunks) and ``points`` the shard's chunk count; each is asked
    only when a rule needs it. See :class:`EdgeTuning` for the measurements.
    """
    many_keys = keys > tuning.many_keys_above
    exact_limit = tuning.exact_max_points if many_keys else tuning.few_keys_exact_max_points
    found: int | None = None
    if exact_limit > 0:
        found = estimate()
        if found <= exact_limit:
            return SearchPlan.EXACT
    if tuning.wide_min_share is not None:
        found = estimate() if found is None else found
        if found >= tuning.wide_min_share * max(1, points()):
            return SearchPlan.WIDE
    if tuning.acorn and many_keys:
        return SearchPlan.ACORN
    return SearchPlan.GRAPH


class EdgeChunkIndex:
    """Chunks with their ACLs in one in-process Qdrant shard (implements :class:`index.ports.ChunkIndex`)."""

    def __init__(
        self,
        *,
        path: Path | str,
        dimension: int,
        tuning: EdgeTuning | None = None,
        encoder: SparseEncoder | None = None,
        fusion: FusionParams | None = None,
    ) -> None:
        self._path = Path(path)
        self._dimension = dimension
        self._tuning = tuning or EdgeTuning()
        self._encoder: SparseEncoder = encoder or Bm25Encoder()
        self._fusion = fusion or FusionParams()
        self._sparse_added = False  # the sparse vector was added to an older shard on opening
        self._bulk = False  # inside bulk_load(): writes skip their optimize()
        self._slots_complete = False  # every chunk has an IDF sample slot (checked by ensure_schema)
        # The engine is called from request threads and ingestion workers; its
        # calls hold the GIL anyway, so one lock costs nothing and keeps each
        # multi-step write (publish: delete, then flip) in one piece.
        self._lock = threading.RLock()
        # A caller's translated security filter, and the engine's estimate of its chunks, are
        # remembered per caller (searches without a narrowing only): for 500 groups they cost
        # ~0.6 and ~0.8 ms of every search. Keyed by the whole Principal, of which the filter is
        # a pure function; an estimate is kept only until the next write (it only picks the plan).
        self._readable_filter = functools.lru_cache(maxsize=256)(_readable_filter)
        self._estimates: dict[Principal, tuple[int, int]] = {}  # principal -> (writes seen, estimate)
        self._writes = 0
        self._denies = _DenyVocabulary(self._list_deny_entries)
        self._path.mkdir(parents=True, exist_ok=True)
        self._owner = _acquire_owner_lock(self._path)
        try:
            self._shard: qe.EdgeShard | None = self._open_shard()
        except BaseException:
            os.close(self._owner)
            raise
        # Rescored with the stored float vectors: the order returned is exact among the candidates.
        rescored = (
            qe.QuantizationSearchParams(rescore=True, oversampling=self._tuning.oversampling)
            if self._tuning.quantized
            else None
        )
        self._params_by_plan = {
            SearchPlan.EXACT: qe.SearchParams(exact=True, quantization=rescored),
            SearchPlan.ACORN: qe.SearchParams(
                hnsw_ef=self._tuning.hnsw_ef,
                acorn=qe.AcornSearchParams(enable=True, max_selectivity=self._tuning.acorn_max_selectivity),
                quantization=rescored,
            ),
            SearchPlan.GRAPH: qe.SearchParams(hnsw_ef=self._tuning.hnsw_ef, quantization=rescored),
        }

    def _config(self, *, sparse: bool) -> qe.EdgeConfig:
        tuning = self._tuning
        return qe.EdgeConfig(
            vectors={DENSE_VECTOR: qe.EdgeVectorParams(size=self._dimension, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)} if sparse else None,
            quantization_config=_INT8_IN_RAM if tuning.quantized else None,
            hnsw_config=qe.HnswIndexConfig(
                m=tuning.m, ef_construct=tuning.ef_construct, full_scan_threshold=tuning.full_scan_threshold_kb
            ),
            optimizers=qe.EdgeOptimizersConfig(
                default_segment_number=tuning.segments,
                max_segment_size=tuning.max_segment_kb,
                indexing_threshold=tuning.indexing_threshold_kb,
            ),
            # None leaves the engine's default (Cold) and a shard's persisted choice as they are.
            payload_memory=qe.Memory.Cached if tuning.prewarmed else None,
        )

    def _open_shard(self) -> qe.EdgeShard:
        shard_path = self._path / _SHARD_DIR
        try:
            if not (shard_path / "edge_config.json").exists():
                return qe.EdgeShard.create(str(shard_path), self._config(sparse=True))
            # Passing the config checks the stored vectors against it (a dimension change fails here).
            return qe.EdgeShard.load(str(shard_path), self._config(sparse=True))
        except Exception as exc:  # the engine raises bare Exception for every failure
            failure = exc
        if _stored_sparse_vectors(shard_path) != set():
            # Not a shard from before term weights (or its config is unreadable): the failure stands.
            # (The engine would load a shard *with* sparse vectors under a dense-only config too.)
            raise IndexUnavailableError(f"cannot open the index at {self._path}: {failure}") from failure
        try:
            # A shard made before term weights: open it as it is, then add the (empty) sparse vector.
            shard = qe.EdgeShard.load(str(shard_path), self._config(sparse=False))
        except Exception:
            raise IndexUnavailableError(f"cannot open the index at {self._path}: {failure}") from failure
        try:
            shard.update(qe.UpdateOperation.create_sparse_vector(SPARSE_VECTOR, modifier=qe.Modifier.Idf))
        except Exception as exc:
            shard.close()
            raise IndexUnavailableError(f"cannot add term weights to the index at {self._path}: {exc}") from exc
        self._sparse_added = True
        return shard

    def _call(self, operation: Callable[[qe.EdgeShard], T]) -> T:
        with self._lock:
            if self._shard is None:
                raise IndexUnavailableError(f"the index at {self._path} is closed")
            try:
                return operation(self._shard)
            except (IndexUnavailableError, InvalidInputError):
                raise
            except Exception as exc:  # the engine raises bare Exception for every failure
                raise IndexUnavailableError(f"index operation failed: {exc}") from exc

    def _write(self, operations: Sequence[qe.UpdateOperation], *, denies: AbstractSet[str] | None = None) -> None:
        """Apply ``operations``; ``denies`` names every deny entry they may store (None: unknown).

        An unknown write makes the deny vocabulary unknown too: it is listed again before the
        next search, so a write path that does not name its entries costs a facet, never a leak.
        """

        def apply(shard: qe.EdgeShard) -> None:
            self._writes += 1  # before the update: a failed one may still have changed the shard
            if self._denies.add(denies):  # before the update too: no search sees a deny it does not check
                self._readable_filter.cache_clear()  # their keys hold the old vocabulary: never hit again
            for operation in operations:
                shard.update(operation)
            # There is no background optimizer in-process: optimize() builds HNSW for
            # segments past the indexing threshold and vacuums deleted points. It returns
            # in microseconds when nothing is planned; when something is, it blocks (and
            # holds the GIL) for the build, the price of an in-process engine.
            if not self._bulk:
                shard.optimize()

        self._call(apply)

    def ensure_schema(self) -> None:
        """Create the payload indexes if they are missing (the shard itself exists once opened)."""
        graph = self._tuning.payload_graph
        linked = set(KEYWORD_FIELDS) if graph is PayloadGraph.ALL else set()
        if graph is PayloadGraph.ACL:
            linked = {READ_FIELD}
        existing = self._call(lambda shard: set(shard.info().payload_schema))
        operations = [
            qe.UpdateOperation.create_field_index(field, qe.KeywordIndexParams(enable_hnsw=field in linked))
            for field in KEYWORD_FIELDS
            if field not in existing
        ]
        if "chunk_index" not in existing:
            params = qe.IntegerIndexParams(lookup=True, range=True, enable_hnsw=graph is PayloadGraph.ALL)
            operations.append(qe.UpdateOperation.create_field_index("chunk_index", params))
        if idf_sample.FIELD not in existing:
            params = qe.IntegerIndexParams(lookup=False, range=True, enable_hnsw=False)
            operations.append(qe.UpdateOperation.create_field_index(idf_sample.FIELD, params))
        if operations:
            self._write(operations, denies=_NO_DENIES)
        self._denies.forget()  # listed again before the next search, now that its payload index exists
        self._backfill_read_keys()
        if missing := self._count_missing_slots():
            # Adding them rewrites every chunk (its segment is rebuilt): an admin's migration, not start-up's.
            log.warning(
                "%d chunks have no IDF sample slot: sparse and hybrid searches count IDF over every readable "
                "chunk until `clearance index backfill-sparse` adds them",
                missing,
            )

    def _list_deny_entries(self) -> set[str] | None:
        """Every value of the chunks' deny lists (the engine's exact facet); None when not listed in full."""
        request = qe.FacetRequest(key=DENY_FIELD, limit=_DENY_VOCABULARY_LIMIT, exact=True)
        try:
            hits = self._call(lambda shard: shard.facet(request).hits)
        except IndexUnavailableError as exc:  # e.g. a shard without the deny list's payload index yet
            log.info("deny entries not listed (%s): searches check every key of a caller against deny lists", exc)
            return None
        if len(hits) >= _DENY_VOCABULARY_LIMIT:
            log.warning(
                "%d or more distinct deny entries: searches check every key of a caller against deny lists",
                _DENY_VOCABULARY_LIMIT,
            )
            return None
        return {str(hit.value) for hit in hits}

    def _count_missing_slots(self) -> int:
        """Chunks without an IDF sample slot (written before slots existed); sampling waits for none."""
        count = int(self._call(lambda shard: shard.count(qe.CountRequest(exact=True, filter=_WITHOUT_SLOT))))
        self._slots_complete = count == 0
        return count

    def _add_idf_slots(self, batch_size: int) -> int:
        """IDF sample slots for every chunk written before they existed; resumable (only missing ones are read)."""
        added = 0
        for page in self._pages_until_done(_WITHOUT_SLOT, [], batch_size, "the IDF slot backfill"):
            by_slot: dict[int, list[qe.PointId]] = {}
            for point_id, _ in page:
                by_slot.setdefault(idf_sample.slot_of(point_id), []).append(point_id)
            self._write(
                [qe.UpdateOperation.set_payload(found, {idf_sample.FIELD: slot}) for slot, found in by_slot.items()],
                denies=_NO_DENIES,
            )
            added += len(page)
        self._count_missing_slots()
        return added

    def _backfill_read_keys(self) -> None:
        """Read keys for live chunks written before they existed (until then such chunks match nobody).

        Grouped by tenant and ACL fingerprint, and written only where both still hold,
        so an ACL rewrite meanwhile is never undone. Chunks that allow nobody stay empty.
        """
        missing = qe.Filter(
            must=[_match(STATE_FIELD, LIVE_STATE), qe.IsEmptyCondition(key=READ_FIELD)],
            must_not=[qe.IsEmptyCondition(key=ALLOW_FIELD)],
        )
        with self._lock:
            operations = [
                qe.UpdateOperation.set_payload_by_filter(
                    qe.Filter(
                        must=[
                            qe.HasIdCondition(point_ids=set(group.ids[start : start + _WRITE_BATCH])),
                            _match(TENANT_FIELD, group.tenant_id),
                            _match("acl_hash", group.acl_hash),
                            _match(STATE_FIELD, LIVE_STATE),
                        ]
                    ),
                    {READ_FIELD: group.keys},
                )
                for group in read_key_groups(self._scroll(missing, ACL_SOURCE_FIELDS))
                for start in range(0, len(group.ids), _WRITE_BATCH)
            ]
            if operations:
                self._write(operations, denies=_NO_DENIES)

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Many writes with HNSW building deferred, then one ``optimize()``: for a first, large ingestion.

        Written point by point, every write that crosses the indexing threshold builds a
        segment's graph, and the next merge rebuilds it: 0.8M chunks took over 2 hours.
        Inside this block the port's writes keep their meaning (staged, then published;
        ACL rewrites; deletions) but skip their ``optimize()``; the payload indexes are made
        first, so filters stay indexed while the points land. Searches meanwhile stay
        correct and filtered, only slower (unindexed segments are scanned exactly).
        On a normal exit one ``optimize()`` builds every graph. On an exception it is
        skipped (an interrupted load should not block for minutes); the next write's
        ``optimize()`` catches up, as it runs until nothing is left to plan.
        """
        self.ensure_schema()
        with self._lock:
            if self._bulk:
                raise InvalidInputError("a bulk load of this index is already under way")
            self._bulk = True
        try:
            yield
        except BaseException:
            with self._lock:
                self._bulk = False
            raise
        with self._lock:
            self._bulk = False
        self._call(lambda shard: shard.optimize())

    def ping(self) -> None:
        self._call(lambda shard: shard.info())

    def stats(self) -> dict[str, int]:
        """Segments, points and HNSW-indexed vectors: what an operator checks after a large ingestion."""
        info = self._call(lambda shard: shard.info())
        return {
            "segments": info.segments_count,
            "points": info.points_count,
            "indexed_vectors": info.indexed_vectors_count,
        }

    # -- writes --------------------------------------------------------------

    def replace_document(self, document: IndexedDocument) -> None:
        """Write a document's chunks, replacing any earlier version without mixing."""
        self.publish(document.meta.doc_id, self.stage_document(document))

    def stage_document(self, document: IndexedDocument) -> str:
        """Write a new version's chunks ``staged`` (invisible to every search); returns the version."""
        version = new_version(document.meta.content_hash)
        points = [
            qe.Point(id=chunk.id, vector=_vectors(chunk.vector, chunk.sparse), payload=chunk.payload)
            for chunk in staged_chunks(document, version, encoder=self._encoder)
        ]
        self._write(
            [
                qe.UpdateOperation.upsert_points(points[start : start + _WRITE_BATCH])
                for start in range(0, len(points), _WRITE_BATCH)
            ],
            denies=document.acl.deny,
        )
        return version

    def publish(self, doc_id: str, version: str) -> None:
        """Delete every other version of the document, then make ``version`` live with its read keys.

        The read keys come from the staged chunks' own ACL, which an ACL rewrite keeps
        current; the flip is written only where that ACL still holds (one lock holds
        the whole publish here, the check matters against a server).
        """
        doc, this_version = _match("doc_id", doc_id), _match("version", version)
        with self._lock:
            self._write(
                [qe.UpdateOperation.delete_points_by_filter(qe.Filter(must=[doc], must_not=[this_version]))],
                denies=_NO_DENIES,
            )
            staged = qe.Filter(must=[doc, this_version], must_not=[_match(STATE_FIELD, LIVE_STATE)])
            for attempt in range(PUBLISH_ATTEMPTS + 1):
                page = self._scroll_page(staged, ACL_SOURCE_FIELDS, 1)
                if not page:
                    return
                if attempt == PUBLISH_ATTEMPTS:
                    break
                stored = page[0][1]
                tenant_id, acl_hash = acl_source(stored)
                unchanged = qe.Filter(
                    must=[doc, this_version, _match(TENANT_FIELD, tenant_id), _match("acl_hash", acl_hash)]
                )
                # The flip writes state and read keys; the deny list was named when the version was staged.
                flip = qe.UpdateOperation.set_payload_by_filter(unchanged, live_payload(stored))
                self._write([flip], denies=_NO_DENIES)
        raise IndexUnavailableError(f"the ACL of document {doc_id} kept changing while it was published")

    def update_acl(self, doc_id: str, acl: AccessList) -> None:
        """Rewrite the ACL payload of every chunk of a document, without re-embedding.

        Staged chunks first, then live ones with their read keys in the same write, so a
        publish in between either sees the new ACL or has its flip rewritten after it.
        """
        doc = _match("doc_id", doc_id)
        with self._lock:
            page = self._scroll_page(qe.Filter(must=[doc]), [TENANT_FIELD], 1)
            if not page:
                return
            tenant_id = str(page[0][1].get(TENANT_FIELD) or "")
            live = _match(STATE_FIELD, LIVE_STATE)
            self._write(
                [
                    qe.UpdateOperation.set_payload_by_filter(qe.Filter(must=[doc], must_not=[live]), acl_payload(acl)),
                    qe.UpdateOperation.set_payload_by_filter(
                        qe.Filter(must=[doc, live]), live_acl_payload(tenant_id, acl)
                    ),
                ],
                denies=acl.deny,
            )

    def delete_document(self, doc_id: str) -> None:
        deletion = qe.UpdateOperation.delete_points_by_filter(qe.Filter(must=[_match("doc_id", doc_id)]))
        self._write([deletion], denies=_NO_DENIES)

    # -- reads ---------------------------------------------------------------

    def document_states(self, *, tenant_id: str, source_id: str) -> dict[str, DocumentState]:
        """The live documents of one source, keyed by path (an admin read, no ACL filter)."""
        flt = qe.Filter(
            must=[
                _match(TENANT_FIELD, tenant_id),
                _match("source_id", source_id),
                _match(STATE_FIELD, LIVE_STATE),
                qe.FieldCondition(key="chunk_index", match=qe.MatchValue(value=0)),
            ]
        )
        states: dict[str, DocumentState] = {}
        for _, payload in self._scroll(flt, STATE_FIELDS):
            states[payload["path"]] = document_state(payload)
        return states

    def documents(self, *, tenant_id: str, offset: int = 0, limit: int = 100) -> list[StoredDocument]:
        flt = qe.Filter(
            must=[
                _match(TENANT_FIELD, tenant_id),
                _match(STATE_FIELD, LIVE_STATE),
                qe.FieldCondition(key="chunk_index", match=qe.MatchValue(value=0)),
            ]
        )
        found = [stored_document(payload) for _, payload in self._scroll(flt, DOCUMENT_FIELDS)]
        return page_of_documents(found, offset=offset, limit=limit)

    def chunk_ids(self, doc_id: str) -> set[str]:
        """Ids of every stored chunk of a document, staged or live (an admin read)."""
        return {point_id for point_id, _ in self._scroll(qe.Filter(must=[_match("doc_id", doc_id)]), None)}

    def stored_acl(self, doc_id: str) -> AccessList | None:
        for _, payload in self._scroll(qe.Filter(must=[_match("doc_id", doc_id)]), [ALLOW_FIELD, DENY_FIELD]):
            return AccessList(allow=frozenset(payload[ALLOW_FIELD]), deny=frozenset(payload[DENY_FIELD]))
        return None

    def _scroll(self, flt: qe.Filter, fields: list[str] | None) -> Iterator[tuple[str, dict[str, Any]]]:
        offset: Any = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=512, filter=flt, with_payload=fields if fields else False, with_vector=False
            )
            page, offset = self._call(lambda shard, r=request: shard.scroll(r))  # type: ignore[misc]
            for record in page:
                yield str(record.id), dict(record.payload or {})
            if offset is None:
                return

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
        """The ``top_k`` best chunks for the query among those ``principal`` may read (see the port)."""
        with self._lock:  # the filter is built and used with no write in between (the deny vocabulary)
            # Built by the one builder, then translated: a shape the translation does not know raises here.
            vocabulary = self._denies.current()
            if narrowing is None:
                security = self._readable_filter(principal, vocabulary)
            else:
                security = to_edge_filter(security_filter(principal, narrowing=narrowing, deny_vocabulary=vocabulary))
            chosen = self._fusion.mode_for(mode, text)
            sparse = self._encoder.encode_query(text or "") if chosen is not RetrievalMode.DENSE else None
            keys = len(principal.access_keys())

            dense = [float(x) for x in vector]

            def run(shard: qe.EdgeShard) -> list[qe.ScoredPoint]:
                remembered = self._estimates.get(principal) if narrowing is None else None
                known = remembered[1] if remembered is not None and remembered[0] == self._writes else None
                sizes = _ShardSizes(shard, security, known)
                dense_filter, dense_params = security, None
                if chosen is not RetrievalMode.SPARSE:
                    dense_filter, dense_params = self._dense_branch(shard, sizes, security, keys, dense)
                idf_corpus = None
                if chosen is not RetrievalMode.DENSE:
                    idf_corpus = self._idf_corpus(sizes, security)
                request = search_request(
                    mode=chosen,
                    security=security,
                    vector=dense,
                    sparse=sparse,
                    top_k=top_k,
                    min_score=min_score,
                    fusion=self._fusion,
                    dense_params=dense_params,
                    dense_filter=dense_filter,
                    idf_corpus=idf_corpus,
                )
                found = shard.query(request)
                if narrowing is None and known is None and sizes.estimated is not None:
                    if len(self._estimates) >= 1024:
                        self._estimates.clear()
                    self._estimates[principal] = (self._writes, sizes.estimated)
                return found

            return [passage(p.id, p.payload, p.score) for p in self._call(run)]

    def _idf_corpus(self, sizes: _ShardSizes, security: qe.Filter) -> qe.Filter:
        """The chunks IDF is counted over: the security filter, narrowed to a sample of slots when large."""
        if not self._slots_complete:  # a sample would miss the chunks without a slot
            return security
        slots = self._tuning.idf_sampling.slots(estimate=sizes.estimate(), points=sizes.points())
        if slots is None:
            return security
        return qe.Filter(must=[security, qe.FieldCondition(key=idf_sample.FIELD, range=qe.RangeFloat(lt=slots))])

    def _dense_branch(
        self, shard: qe.EdgeShard, sizes: _ShardSizes, security: qe.Filter, keys: int, vector: list[float]
    ) -> tuple[qe.Filter, qe.SearchParams]:
        """The dense branch's filter and search parameters under this search's plan.

        The filter is always the security filter; the wide plan narrows it further to
        candidate ids found by an unfiltered walk, whose results never leave this method.
        """
        plan = plan_dense_search(self._tuning, keys, sizes.estimate, sizes.points)
        if plan is not SearchPlan.WIDE:
            return security, self._params_by_plan[plan]
        walk = qe.QueryRequest(
            limit=self._tuning.wide_candidates,
            query=qe.Query.Nearest(vector, using=DENSE_VECTOR),
            params=self._params_by_plan[SearchPlan.GRAPH],
            with_payload=False,
            with_vector=False,
        )
        walked = [point.id for point in shard.query(walk)]  # best first
        reached: list[qe.ConditionType] = [qe.HasIdCondition(point_ids=set(walked))]
        best = walked[: self._tuning.wide_sibling_documents]
        if documents := _documents_of(shard, best, self._tuning.wide_sibling_chunks):
            # Chunks of one document lie close together, and the graph links such a cluster through
            # a few of its chunks: the others can be out of reach of any walk. Scoring the whole
            # documents of the best candidates brings them back; the security filter decides each one.
            reached.append(qe.FieldCondition(key="doc_id", match=qe.MatchAny(any=documents)))
        # The security filter and at least one of ``reached`` (the engine's ``should``); a top-level
        # ``should`` is planned from its own small sets (a nested one cost ~1 ms more at 1M).
        narrowed = qe.Filter(must=[security], should=reached)
        return narrowed, self._params_by_plan[SearchPlan.EXACT]

    def read(self, principal: Principal, *, narrowing: models.Filter, limit: int) -> list[ReadableChunk]:
        """Chunks matching ``narrowing`` that ``principal`` may read, in document order (see the port)."""
        security = to_edge_filter(security_filter(principal, narrowing=narrowing))
        request = qe.ScrollRequest(limit=limit, filter=security, with_payload=READ_FIELDS, with_vector=False)
        page, _ = self._call(lambda shard: shard.scroll(request))
        return in_document_order([readable_chunk(record.id, record.payload) for record in page])

    def backfill_sparse(self, *, batch_size: int = 256) -> BackfillReport:
        """Term weights for every chunk written without them (or by another encoder), from the stored text.

        Dense vectors are kept, nothing is re-embedded; the sparse vector itself was added
        to an older shard when it was opened. Resumable: a chunk is marked with the
        encoder's fingerprint once its weights are written, and only unmarked chunks are read.
        """
        fingerprint = self._encoder.fingerprint
        stale = qe.Filter(must_not=[_match(ENCODER_FIELD, fingerprint)])
        scanned = 0
        for page in self._pages_until_done(stale, TERM_FIELDS, batch_size, "the sparse backfill"):
            scanned += len(page)
            weights = [
                qe.PointVectors(
                    id=point_id,
                    vector={SPARSE_VECTOR: _sparse(self._encoder.encode_document(term_text(payload)))},
                )
                for point_id, payload in page
            ]
            ids: list[qe.PointId] = [point_id for point_id, _ in page]
            self._write(
                [
                    qe.UpdateOperation.update_vectors(weights),
                    # Marked after the weights are written: a crash in between re-does these chunks.
                    qe.UpdateOperation.set_payload(ids, {ENCODER_FIELD: fingerprint}),
                ],
                denies=_NO_DENIES,
            )
        slotted = self._add_idf_slots(batch_size)
        if slotted:
            log.info("IDF sample slots added to %d chunks", slotted)
        return BackfillReport(scanned=scanned, updated=scanned, schema="added" if self._sparse_added else "present")

    def _pages_until_done(
        self, flt: qe.Filter, fields: list[str], limit: int, work: str
    ) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        """The first page of ``flt`` again and again, for a backfill whose writes take chunks out of ``flt``.

        Always the first page: the chunks just written no longer match. The same page twice
        means the writes did not take, and ``work`` is reported as making no progress.
        """
        previous: set[str] = set()
        while page := self._scroll_page(flt, fields, limit):
            ids = {point_id for point_id, _ in page}
            if ids == previous:
                raise IndexUnavailableError(f"{work} made no progress (the same chunks came back)")
            previous = ids
            yield page

    def _scroll_page(self, flt: qe.Filter, fields: list[str], limit: int) -> list[tuple[str, dict[str, Any]]]:
        request = qe.ScrollRequest(limit=limit, filter=flt, with_payload=fields, with_vector=False)
        page, _ = self._call(lambda shard: shard.scroll(request))
        return [(str(record.id), dict(record.payload or {})) for record in page]

    def count(self, *, live_only: bool = True) -> int:
        flt = qe.Filter(must=[_match(STATE_FIELD, LIVE_STATE)]) if live_only else None
        return int(self._call(lambda shard: shard.count(qe.CountRequest(exact=True, filter=flt))))

    def close(self) -> None:
        with self._lock:
            shard, self._shard = self._shard, None
            if shard is None:
                return
            try:
                shard.flush()
            finally:
                try:
                    shard.close()
                finally:
                    os.close(self._owner)  # closing the descriptor releases the flock


def _stored_sparse_vectors(shard_path: Path) -> set[str] | None:
    """Names of the sparse vectors in a shard's stored config; None when it cannot be read."""
    try:
        stored = json.loads((shard_path / "edge_config.json").read_text(encoding="utf-8"))
        return set(stored.get("sparse_vectors") or {})
    except (OSError, ValueError, AttributeError):
        return None


# -- the owner lock ----------------------------------------------------------------


def _acquire_owner_lock(folder: Path) -> int:
    """An exclusive flock on ``folder/owner.lock`` holding our pid; a clear error when another holder has it."""
    lock_path = folder / _LOCK_FILE
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(descriptor)
        who = "another index object of this process" if holder == str(os.getpid()) else "another process"
        raise IndexUnavailableError(
            f"the index at {folder} is held by {who} (pid {holder}): ingest through the running server's API"
        ) from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode("ascii"), 0)
    return descriptor


def _documents_of(shard: qe.EdgeShard, ids: list[qe.PointId], chunk_budget: int) -> list[str]:
    """The documents of these chunks, in the order of their first chunk, holding ``chunk_budget`` chunks at most.

    A document that would overrun the budget is passed over (a long report can hold
    thousands of chunks, each scored exactly); so is a chunk without its document's size.
    Read apart from the walk: the engine reads a point's payload at ~12-20 µs, so asking the
    walk for it would pay that for all of its candidates (+3.7 ms for 300 at 1M chunks).
    """
    if not ids:
        return []
    records = {record.id: record.payload or {} for record in shard.retrieve(ids, ["doc_id", "chunk_count"], False)}
    documents: dict[str, None] = {}
    left = chunk_budget
    for point_id in ids:
        payload = records.get(point_id, {})
        doc_id, size = payload.get("doc_id"), payload.get("chunk_count")
        if not doc_id or str(doc_id) in documents or not isinstance(size, int) or size > left:
            continue
        documents[str(doc_id)] = None
        left -= size
    return list(documents)


def _readable_filter(principal: Principal, deny_vocabulary: frozenset[str] | None) -> qe.Filter:
    """The caller's security filter without a narrowing, translated for the engine."""
    return to_edge_filter(security_filter(principal, deny_vocabulary=deny_vocabulary))


def _match(key: str, value: str) -> qe.FieldCondition:
    return qe.FieldCondition(key=key, match=qe.MatchValue(value=value))


class _DenyVocabulary:
    """Every entry the shard's chunks hold in their deny lists, as this process knows it.

    A search checks only the caller's keys among these (:func:`security_filter`). That is
    safe because this process is the shard's only writer (the owner lock): a write adds the
    entries it names before it lands; a write that names none (``None``), and every shard
    opened, leaves the vocabulary unknown, and it is listed from the engine again before
    the next search. A superset is harmless (a deletion leaves its entries here). Every
    method runs under the index's lock.
    """

    def __init__(self, list_entries: Callable[[], set[str] | None]) -> None:
        self._list_entries = list_entries
        self._entries: set[str] | None = None
        self._known = False
        self._snapshot: frozenset[str] | None = None

    def add(self, entries: AbstractSet[str] | None) -> bool:
        """Entries a write is about to store (None: unknown); whether filters built before are now stale."""
        if entries is None:
            self.forget()
            return True
        if not self._known or self._entries is None or entries <= self._entries:
            return False  # unknown or unlisted (listed again, or every key checked), or nothing new
        self._entries.update(entries)
        self._snapshot = None
        return True

    def forget(self) -> None:
        self._known, self._entries, self._snapshot = False, None, None

    def current(self) -> frozenset[str] | None:
        """The vocabulary for a filter built now; None: too many to list, check every key."""
        if not self._known:
            self._entries, self._known = self._list_entries(), True
        if self._entries is None:
            return None
        if self._snapshot is None:
            self._snapshot = frozenset(self._entries)
        return self._snapshot


class _ShardSizes:
    """The engine's estimate of a filter's chunks (payload indexes, no scan) and the shard's chunk count.

    Each is asked of the engine at most once per search, and only when a rule needs it.
    """

    def __init__(self, shard: qe.EdgeShard, security: qe.Filter, known_estimate: int | None = None) -> None:
        self._shard, self._security = shard, security
        self._estimate: int | None = known_estimate
        self._points: int | None = None

    @property
    def estimated(self) -> int | None:
        """The estimate if it was asked for (or known), else None."""
        return self._estimate

    def estimate(self) -> int:
        if self._estimate is None:
            self._estimate = int(self._shard.count(qe.CountRequest(exact=False, filter=self._security)))
        return self._estimate

    def points(self) -> int:
        if self._points is None:
            self._points = int(self._shard.info().points_count)
        return self._points


# -- the query ----------------------------------------------------------------------


def search_request(
    *,
    mode: RetrievalMode,
    security: qe.Filter,
    vector: list[float],
    sparse: SparseVector | None,
    top_k: int,
    min_score: float | None,
    fusion: FusionParams,
    dense_params: qe.SearchParams | None = None,
    dense_filter: qe.Filter | None = None,
    idf_corpus: qe.Filter | None = None,
) -> qe.QueryRequest:
    """The one engine request of a search; ``security`` filters every branch, the fusion and the IDF population.

    The engine also carries the outer filter into prefetches, but each branch gets its
    own copy so no branch depends on that: each one alone ranks only readable chunks.
    ``dense_filter`` replaces ``security`` in the dense branch; it must be the security
    filter narrowed further (the wide plan's candidates), never anything wider.
    ``idf_corpus`` replaces ``security`` as the population IDF is counted over; the same
    rule holds (a sample of the readable chunks: :mod:`index.idf_sample`).
    """
    dense_filter = security if dense_filter is None else dense_filter
    idf_corpus = security if idf_corpus is None else idf_corpus
    if mode is RetrievalMode.DENSE or sparse is None:
        return qe.QueryRequest(
            limit=top_k, query=qe.Query.Nearest(vector, using=DENSE_VECTOR), filter=dense_filter,
            score_threshold=min_score, params=dense_params, with_payload=PASSAGE_FIELDS, with_vector=False,
        )  # fmt: skip
    terms = qe.Query.Nearest(_sparse(sparse), using=SPARSE_VECTOR)
    # IDF over the chunks this caller may read: collection-wide statistics would leak term counts.
    by_readable = qe.SearchParams(idf=qe.IdfParams(corpus=idf_corpus))
    if mode is RetrievalMode.SPARSE:
        return qe.QueryRequest(
            limit=top_k, query=terms, filter=security, params=by_readable,
            with_payload=PASSAGE_FIELDS, with_vector=False,
        )  # fmt: skip
    candidates = max(top_k, fusion.candidates)
    return qe.QueryRequest(
        limit=top_k,
        prefetches=[
            qe.Prefetch(
                limit=candidates,
                query=qe.Query.Nearest(vector, using=DENSE_VECTOR),
                filter=dense_filter,
                params=dense_params,
                score_threshold=min_score,
            ),
            qe.Prefetch(limit=candidates, query=terms, filter=security, params=by_readable),
        ],
        # The stubs type Fusion.Rrf as unrelated to Fusion; the engine takes it (it is the documented form).
        query=qe.Fusion.Rrf(k=fusion.rrf_k, weights=[fusion.dense_weight, fusion.sparse_weight]),  # type: ignore[arg-type]
        filter=security,
        with_payload=PASSAGE_FIELDS,
        with_vector=False,
    )


def _vectors(dense: list[float], sparse: SparseVector | None) -> dict[str, Any]:
    vectors: dict[str, Any] = {DENSE_VECTOR: dense}
    if sparse is not None:
        vectors[SPARSE_VECTOR] = _sparse(sparse)
    return vectors


def _sparse(vector: SparseVector) -> qe.SparseVector:
    return qe.SparseVector(indices=list(vector.indices), values=list(vector.values))
