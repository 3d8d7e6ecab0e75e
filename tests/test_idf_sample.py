"""IDF over a sample of the caller's readable chunks (the embedded engine, large populations).

The sample is the security filter narrowed to a range of slots, so it can only ever hold
chunks the caller may read. The adversarial test forces sampling on a small shard, shows
that it is on (the scores differ from IDF over every readable chunk) and that the slots
alone would leak (the control), then adds unreadable chunks full of the query's terms,
some of them in sampled slots, and checks that not one of the caller's scores moves.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import qdrant_edge as qe

from acl.index_filter import READ_FIELD, security_filter
from acl.principal import Principal, group_key, tenant_key
from index import idf_sample
from index.edge import EdgeChunkIndex, EdgeTuning
from index.edge import search_request as edge_request
from index.edge_filter import to_edge_filter
from index.idf_sample import IdfSampling
from index.payload import staged_chunks
from index.ports import RetrievalMode
from index.sparse import SPARSE_VECTOR, Bm25Encoder, FusionParams
from tests.conftest import TENANT
from tests.test_index_congruence import ALICE, DIM, FIN, acl, document, embed

READER = Principal(tenant_id=TENANT, object_id=ALICE, groups=frozenset())
QUERY = "quarterly robot budget"
# About a fifth of the slots for READER's 48 chunks whatever the shard's size, so the sample stays the
# same as unreadable chunks are added.
SAMPLED = IdfSampling(max_walked=1, min_sample=10)
WORDS = ["quarterly", "robot", "budget", "canteen", "picnic", "travel", "safety", "invoice"]


# -- the rule ---------------------------------------------------------------------------------------------------


def test_small_populations_count_every_readable_chunk() -> None:
    rule = IdfSampling(max_walked=10_000, min_sample=1_000)
    assert rule.slots(estimate=10_000, points=1_000_000) is None
    assert rule.slots(estimate=5, points=10) is None
    assert IdfSampling(max_walked=0).slots(estimate=900_000, points=1_000_000) is None


def test_large_populations_walk_about_max_walked_chunks_and_keep_min_sample_readable() -> None:
    rule = IdfSampling(max_walked=10_000, min_sample=1_000)
    # 50 % of a million: the walk bound decides (11 slots = 10.7k chunks walked, ~5k of them readable).
    assert rule.slots(estimate=500_000, points=1_000_000) == 11
    # 10 %: the walk bound would leave ~1k readable, the minimum sample asks the same.
    assert rule.slots(estimate=100_000, points=1_000_000) == 11
    # 5 %: the minimum sample decides (21 slots hold ~1k readable chunks, 20.5k walked).
    assert rule.slots(estimate=50_000, points=1_000_000) == 21
    # 2 %: a sample holding 1k readable chunks would walk 51k chunks, more than the whole population.
    assert rule.slots(estimate=20_000, points=1_000_000) is None


def test_the_rule_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        IdfSampling(max_walked=-1)
    with pytest.raises(ValueError):
        IdfSampling(min_sample=0)


def test_slots_depend_on_the_chunk_id_alone_and_spread_evenly() -> None:
    ids = [str(uuid4()) for _ in range(40_960)]
    assert [idf_sample.slot_of(i) for i in ids[:50]] == [idf_sample.slot_of(i) for i in ids[:50]]
    counts = Counter(idf_sample.slot_of(i) for i in ids)
    assert set(counts) <= set(range(idf_sample.SLOTS))
    # 40 per slot on average; the first 64 slots (a 1/16 sample) hold close to 1/16 of the chunks.
    first = sum(counts[s] for s in range(64))
    assert abs(first / len(ids) - 1 / 16) < 0.01


def test_every_written_chunk_carries_its_slot() -> None:
    doc = document("company/a.md", acl({tenant_key(TENANT)}), "one", "two", "three")
    for chunk in staged_chunks(doc, "v1"):
        assert chunk.payload[idf_sample.FIELD] == idf_sample.slot_of(chunk.id)


# -- the engine ---------------------------------------------------------------------------------------------------


def _index(folder: Path, sampling: IdfSampling) -> EdgeChunkIndex:
    index = EdgeChunkIndex(path=folder, dimension=DIM, tuning=EdgeTuning(idf_sampling=sampling), fusion=FusionParams())
    index.ensure_schema()
    return index


def _readable_corpus(index: EdgeChunkIndex) -> None:
    everyone = acl({tenant_key(TENANT)})
    for number in range(48):
        # Each document uses a different mix of the words, so term frequencies differ across the corpus.
        words = [WORDS[(number * k) % len(WORDS)] for k in range(1, 2 + number % 5)]
        index.replace_document(document(f"company/{number}.md", everyone, " ".join(words)))


def _sparse_scores(index: EdgeChunkIndex) -> dict[str, float]:
    found = index.search(READER, list(embed(QUERY)), top_k=48, text=QUERY, mode=RetrievalMode.SPARSE)
    return {p.source: round(p.score, 5) for p in found}


def _slots(index: EdgeChunkIndex) -> int:
    """The slots READER's searches sample now, by the rule and the engine's own sizes."""
    security = to_edge_filter(security_filter(READER))
    estimate = index._call(lambda shard: int(shard.count(qe.CountRequest(exact=False, filter=security))))
    points = index._call(lambda shard: int(shard.info().points_count))
    slots = SAMPLED.slots(estimate=estimate, points=points)
    assert slots is not None and 0 < slots < idf_sample.SLOTS
    return slots


def _hide(index: EdgeChunkIndex, count: int, start: int = 0) -> None:
    for number in range(start, start + count):
        hidden = acl({group_key(TENANT, FIN)})
        index.replace_document(document(f"finance/{number}.md", hidden, "quarterly budget", "quarterly"))


def test_sampled_idf_moves_no_score_when_unreadable_chunks_share_the_terms(tmp_path: Path) -> None:
    index = _index(tmp_path / "sampled", SAMPLED)
    full = _index(tmp_path / "full", IdfSampling(max_walked=0))
    try:
        for each in (index, full):
            _readable_corpus(each)
            _hide(each, 8)
        before = _sparse_scores(index)
        assert before, "the query's terms are in readable chunks"
        # Sampling is on: a quarter of the readable chunks gives other statistics than all of them.
        assert before != _sparse_scores(full)

        slots = _slots(index)
        _hide(index, 60, start=8)  # 120 unreadable chunks, about a quarter of them in sampled slots
        assert _slots(index) == slots, "the sample must stay the same for the comparison to mean anything"
        hidden = [p for _, p in index._scroll(qe.Filter(must=[]), ["path", idf_sample.FIELD]) if "finance" in p["path"]]
        assert sum(1 for p in hidden if p[idf_sample.FIELD] < slots) > 10
        assert _sparse_scores(index) == before
    finally:
        index.close()
        full.close()


def test_the_slots_without_the_security_filter_would_have_leaked(tmp_path: Path) -> None:
    # The control: the same sample of slots, but counted over every chunk in them.
    index = _index(tmp_path / "sampled", SAMPLED)
    try:
        _readable_corpus(index)
        _hide(index, 8)
        security = to_edge_filter(security_filter(READER))
        sparse = Bm25Encoder().encode_query(QUERY)
        terms = qe.SparseVector(indices=list(sparse.indices), values=list(sparse.values))
        slots_only = qe.Filter(must=[qe.FieldCondition(key=idf_sample.FIELD, range=qe.RangeFloat(lt=_slots(index)))])

        def scores() -> dict[str, float]:
            request = qe.QueryRequest(
                limit=48,
                query=qe.Query.Nearest(terms, using=SPARSE_VECTOR),
                filter=security,
                params=qe.SearchParams(idf=qe.IdfParams(corpus=slots_only)),
                with_payload=["path"],
            )
            points = index._call(lambda shard: shard.query(request))
            return {str((p.payload or {}).get("path")): round(p.score, 5) for p in points}

        before = scores()
        _hide(index, 60, start=8)
        assert scores() != before
    finally:
        index.close()


def test_a_search_counts_idf_over_the_security_filter_narrowed_to_the_slots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = _index(tmp_path / "sampled", SAMPLED)
    try:
        _readable_corpus(index)
        captured: list[qe.QueryRequest] = []

        def spy(**kwargs: Any) -> qe.QueryRequest:
            captured.append(edge_request(**kwargs))
            return captured[-1]

        monkeypatch.setattr("index.edge.search_request", spy)
        index.search(READER, list(embed(QUERY)), top_k=5, text=QUERY, mode=RetrievalMode.HYBRID)
        # The index checks only the reader's keys that some chunk's deny list holds (none here).
        security = to_edge_filter(security_filter(READER, deny_vocabulary=index._denies.current()))
        [request] = captured
        idf = request.prefetches[1].params
        assert idf is not None and idf.idf is not None
        narrowed = qe.Filter(
            must=[security, qe.FieldCondition(key=idf_sample.FIELD, range=qe.RangeFloat(lt=_slots(index)))]
        )
        assert repr(idf.idf.corpus) == repr(narrowed)
    finally:
        index.close()


def test_chunks_without_slots_turn_sampling_off_until_the_backfill_adds_them(tmp_path: Path) -> None:
    index = _index(tmp_path, SAMPLED)
    try:
        _readable_corpus(index)
        sampled = _sparse_scores(index)
        index._write([qe.UpdateOperation.delete_payload_by_filter(qe.Filter(must=[]), [idf_sample.FIELD])])
        index.close()
        index = _index(tmp_path, SAMPLED)  # start-up finds chunks without slots and leaves them as they are
        assert all(idf_sample.FIELD not in payload for _, payload in index._scroll(qe.Filter(must=[]), None))
        # A sample would now be empty: IDF is counted over every readable chunk instead.
        every = _sparse_scores(index)
        assert every != sampled
        full = _index(tmp_path / "full", IdfSampling(max_walked=0))
        try:
            _readable_corpus(full)
            assert every == _sparse_scores(full)
        finally:
            full.close()

        index.backfill_sparse(batch_size=7)
        stored = list(index._scroll(qe.Filter(must=[]), [idf_sample.FIELD, READ_FIELD]))
        assert len(stored) == 48
        assert all(payload[idf_sample.FIELD] == idf_sample.slot_of(point_id) for point_id, payload in stored)
        assert _sparse_scores(index) == sampled
    finally:
        index.close()


@pytest.mark.parametrize("above", [0, 10_000, 250])
def test_the_setting_reaches_the_embedded_engine(tmp_path: Path, above: int) -> None:
    from clearance.compose import build_index
    from clearance.settings import IndexSettings, RetrievalSettings, Settings

    configured = Settings(
        data_dir=tmp_path / "data",
        index=IndexSettings(location=f"edge:{tmp_path / 'edge'}"),
        retrieval=RetrievalSettings(idf_sample_above=above),
    )
    index = build_index(configured, dimension=DIM)
    try:
        assert isinstance(index, EdgeChunkIndex)
        assert index._tuning.idf_sampling == IdfSampling(max_walked=above)
    finally:
        index.close()
    with pytest.raises(ValueError):
        RetrievalSettings(idf_sample_above=-1)
