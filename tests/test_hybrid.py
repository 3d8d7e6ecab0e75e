"""Hybrid retrieval: every branch of a fused query runs under the caller's security filter.

The adversarial corpus puts one chunk the caller may not read at the very top of
both branches: its vector *is* the query vector and its text *is* the query. For
each implementation and each branch, the tests show that (1) the branch alone,
unfiltered, ranks that chunk first, (2) the product's request, with that branch's
filter and the outer filter stripped, returns it, and (3) the product's search
never does. They also show that sparse scores, whose IDF could count chunks the
caller cannot read, do not move when such chunks are added.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import qdrant_edge as qe
from qdrant_client import QdrantClient, models

from acl.index_filter import security_filter
from acl.principal import Principal, group_key, tenant_key
from core.records import Passage
from index.edge import EdgeChunkIndex
from index.edge import search_request as edge_request
from index.edge_filter import to_edge_filter
from index.ports import ChunkIndex, RetrievalMode
from index.qdrant import DENSE_VECTOR, QdrantChunkIndex, scopes_idf
from index.qdrant import search_request as qdrant_request
from index.sparse import SPARSE_VECTOR, Bm25Encoder, FusionParams
from tests.conftest import OTHER_TENANT, TENANT
from tests.test_index_congruence import ALICE, DIM, FIN, acl, document, embed

QUERY = "Nimbus Robotics acquisition price agreed by the board"
FORBIDDEN = "finance/nimbus-deal.md"
READABLE = {
    "company/robotics-day.md": "Robotics day: visitors from Nimbus school see the lab.",
    "company/board.md": "The board meets every quarter to review the budget.",
    "company/price-list.md": "The canteen price list was agreed in March.",
    "company/picnic.md": "The company picnic is on 14 June at Riverside Park.",
}
CORPUS = [
    *(document(path, acl({tenant_key(TENANT)}), text) for path, text in READABLE.items()),
    document(FORBIDDEN, acl({group_key(TENANT, FIN)}), QUERY),
    document("other/nimbus.md", acl({tenant_key(OTHER_TENANT)}), QUERY, tenant=OTHER_TENANT),
]
READER = Principal(tenant_id=TENANT, object_id=ALICE, groups=frozenset())
BRANCHES = {"dense": 0, "sparse": 1}
FUSION = FusionParams(mode=RetrievalMode.HYBRID)


class Engine:
    """One implementation under test: the product index, and a raw query on the same stored chunks."""

    def __init__(self, name: str, folder: Path, fusion: FusionParams = FUSION) -> None:
        self.name = name
        self.folder = folder
        self.fusion = fusion
        self.client = QdrantClient(location=":memory:") if name == "qdrant-local" else None
        self.index: ChunkIndex = (
            QdrantChunkIndex(client=self.client, collection="chunks", dimension=DIM, fusion=fusion)
            if self.client is not None
            else EdgeChunkIndex(path=folder, dimension=DIM, fusion=fusion)
        )
        self.index.ensure_schema()

    def product_request(self, mode: RetrievalMode = RetrievalMode.HYBRID, query: str = QUERY) -> object:
        """The request the product sends for READER and ``query``, built by the implementation's own function."""
        security = security_filter(READER)
        sparse = Bm25Encoder().encode_query(query)
        common = {"vector": list(embed(query)), "sparse": sparse, "top_k": 10, "min_score": None, "fusion": self.fusion}
        if self.client is not None:
            return qdrant_request(mode=mode, security=security, **common)  # type: ignore[arg-type]
        return edge_request(mode=mode, security=to_edge_filter(security), **common)  # type: ignore[arg-type]

    def raw(self, request: object) -> list[str]:
        """Run ``request`` directly on the engine, no filter added: the sources of what comes back, best first."""
        if self.client is not None:
            assert isinstance(request, models.QueryRequest)
            [response] = self.client.query_batch_points("chunks", requests=[request])
            points = [(p.payload or {}, p.score) for p in response.points]
        else:
            assert isinstance(request, qe.QueryRequest)
            self.index.close()  # the shard has one owner: reopen it bare, then hand it back
            shard = qe.EdgeShard.load(str(self.folder / "shard"))
            try:
                points = [(p.payload or {}, p.score) for p in shard.query(request)]
            finally:
                shard.close()
            self.index = EdgeChunkIndex(path=self.folder, dimension=DIM, fusion=self.fusion)
        return [str(payload.get("path")) for payload, _ in points]

    def close(self) -> None:
        self.index.close()


@pytest.fixture(params=["qdrant-local", "edge"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    opened = Engine(request.param, tmp_path / "edge")
    for doc in CORPUS:
        opened.index.replace_document(doc)
    yield opened
    opened.close()


def stripped(request: object, *, branch: int | None, outer: bool) -> object:
    """``request`` with the filter of prefetch ``branch`` removed, and the outer filter too when ``outer``."""
    if isinstance(request, models.QueryRequest):
        given = request.prefetch if isinstance(request.prefetch, list) else []
        kept = [p.model_copy(update={"filter": None}) if n == branch else p for n, p in enumerate(given)]
        return request.model_copy(update={"filter": None if outer else request.filter, "prefetch": kept})
    assert isinstance(request, qe.QueryRequest)
    edge_kept = [
        qe.Prefetch(
            limit=p.limit,
            query=p.query,
            params=p.params,
            score_threshold=p.score_threshold,
            filter=None if n == branch else p.filter,
        )
        for n, p in enumerate(request.prefetches)
    ]
    return qe.QueryRequest(
        limit=request.limit,
        query=request.query,
        prefetches=edge_kept,
        filter=None if outer else request.filter,
        with_payload=True,
    )


def readable_paths() -> set[str]:
    keys = READER.access_keys()
    return {d.meta.path for d in CORPUS if d.meta.tenant_id == READER.tenant_id and d.acl.permits(keys)}


# -- the adversarial corpus is adversarial -----------------------------------------------------------


@pytest.mark.parametrize("branch", sorted(BRANCHES))
def test_each_branch_alone_and_unfiltered_ranks_the_forbidden_chunk_first(engine: Engine, branch: str) -> None:
    vector, terms = list(embed(QUERY)), Bm25Encoder().encode_query(QUERY)
    indices, values = list(terms.indices), list(terms.values)
    using = DENSE_VECTOR if branch == "dense" else SPARSE_VECTOR
    request: object
    if engine.client is not None:
        query: list[float] | models.SparseVector = (
            vector if branch == "dense" else models.SparseVector(indices=indices, values=values)
        )
        request = models.QueryRequest(query=query, using=using, limit=3, with_payload=True)
    else:
        edge_query = vector if branch == "dense" else qe.SparseVector(indices=indices, values=values)
        request = qe.QueryRequest(limit=3, query=qe.Query.Nearest(edge_query, using=using), with_payload=True)
    assert engine.raw(request)[0] in {FORBIDDEN, "other/nimbus.md"}


# -- each branch's own filter keeps it out ----------------------------------------------------------------


@pytest.mark.parametrize("branch", sorted(BRANCHES))
def test_a_branch_without_its_filter_and_without_the_outer_filter_leaks(engine: Engine, branch: str) -> None:
    leaky = stripped(engine.product_request(), branch=BRANCHES[branch], outer=True)
    assert set(engine.raw(leaky)) - readable_paths(), "the stripped request should have leaked: the test is blind"


@pytest.mark.parametrize("branch", sorted(BRANCHES))
def test_a_branch_filter_alone_keeps_its_branch_trimmed(engine: Engine, branch: str) -> None:
    # The outer filter removed: each branch's own copy of the security filter is enough.
    assert set(engine.raw(stripped(engine.product_request(), branch=None, outer=True))) <= readable_paths()
    # And the other way round: the outer filter alone also trims (the engine carries it into prefetches).
    assert set(engine.raw(stripped(engine.product_request(), branch=BRANCHES[branch], outer=False))) <= readable_paths()


@pytest.mark.parametrize("mode", list(RetrievalMode))
def test_product_search_returns_only_readable_chunks_in_every_mode(engine: Engine, mode: RetrievalMode) -> None:
    found = engine.index.search(READER, list(embed(QUERY)), top_k=10, text=QUERY, mode=mode)
    assert found, "every mode finds something readable for this query"
    assert {p.source for p in found} <= readable_paths()


def test_hybrid_request_carries_the_security_filter_on_every_branch_and_the_fusion(engine: Engine) -> None:
    request = engine.product_request()
    security = security_filter(READER)
    if isinstance(request, models.QueryRequest):
        assert isinstance(request.prefetch, list) and len(request.prefetch) == 2
        assert request.filter == security
        assert all(p.filter == security for p in request.prefetch)
        sparse_params = request.prefetch[1].params
        assert sparse_params is not None and sparse_params.idf == models.IdfCorpusParams(corpus=security)
    else:
        assert isinstance(request, qe.QueryRequest) and len(request.prefetches) == 2
        expected = repr(to_edge_filter(security))
        assert repr(request.filter) == expected
        assert all(repr(p.filter) == expected for p in request.prefetches)
        idf = request.prefetches[1].params
        assert idf is not None and idf.idf is not None and repr(idf.idf.corpus) == expected


# -- IDF counts only what the caller may read -------------------------------------------------------------------


def test_sparse_scores_do_not_move_when_unreadable_chunks_share_the_query_terms(engine: Engine) -> None:
    def scores() -> dict[str, float]:
        found = engine.index.search(READER, list(embed(QUERY)), top_k=10, text=QUERY, mode=RetrievalMode.SPARSE)
        return {p.source: round(p.score, 5) for p in found}

    def global_idf_scores() -> dict[str, float]:
        request = engine.product_request(RetrievalMode.SPARSE)
        if isinstance(request, models.QueryRequest):
            request = request.model_copy(update={"params": None})
        else:
            assert isinstance(request, qe.QueryRequest)
            request = qe.QueryRequest(limit=10, query=request.query, filter=request.filter, with_payload=True)
        return _raw_scores(engine, request)

    before, global_before = scores(), global_idf_scores()
    for number in range(12):
        hidden = document(f"finance/nimbus-{number}.md", acl({group_key(TENANT, FIN)}), f"Nimbus board {number}")
        engine.index.replace_document(hidden)
    assert scores() == before
    # The control: with collection-wide IDF the caller's own scores would have moved.
    assert global_idf_scores() != global_before


def _raw_scores(engine: Engine, request: object) -> dict[str, float]:
    if isinstance(request, models.QueryRequest) and engine.client is not None:
        [response] = engine.client.query_batch_points("chunks", requests=[request])
        return {str((p.payload or {}).get("path")): round(p.score, 5) for p in response.points}
    engine.index.close()
    shard = qe.EdgeShard.load(str(engine.folder / "shard"))
    try:
        assert isinstance(request, qe.QueryRequest)
        return {str((p.payload or {}).get("path")): round(p.score, 5) for p in shard.query(request)}
    finally:
        shard.close()
        engine.index = EdgeChunkIndex(path=engine.folder, dimension=DIM, fusion=FUSION)


@pytest.mark.parametrize("name", ["qdrant-local", "edge"])
def test_the_sparse_branch_of_a_hybrid_query_ranks_by_idf_over_readable_chunks_only(tmp_path: Path, name: str) -> None:
    # Only the sparse branch votes (dense weight 0), so the fused order is the sparse branch's order.
    # Among readable chunks "alpha" is rarer than "beta": alpha's chunk ranks first. Hidden chunks full
    # of "alpha" would flip that under collection-wide IDF (the control), and must not under the product's.
    engine = Engine(name, tmp_path / "edge", FusionParams(mode=RetrievalMode.HYBRID, dense_weight=0.0))
    try:
        everyone = acl({tenant_key(TENANT)})
        for path, text in (("a.md", "alpha report"), ("b.md", "beta report"), ("c.md", "beta memo")):
            engine.index.replace_document(document(path, everyone, text))
        for number in range(20):
            engine.index.replace_document(document(f"hidden/{number}.md", acl({group_key(TENANT, FIN)}), "alpha"))

        def first_of_a_and_b(paths: list[str]) -> str:
            return next(path for path in paths if path in {"a.md", "b.md"})

        found = engine.index.search(READER, list(embed("alpha beta")), top_k=10, text="alpha beta")
        assert first_of_a_and_b([p.source for p in found]) == "a.md"
        request = engine.product_request(query="alpha beta")
        if isinstance(request, models.QueryRequest):
            assert isinstance(request.prefetch, list)
            request = request.model_copy(
                update={"prefetch": [request.prefetch[0], request.prefetch[1].model_copy(update={"params": None})]}
            )
        else:
            assert isinstance(request, qe.QueryRequest)
            dense, terms = request.prefetches
            request = qe.QueryRequest(
                limit=10,
                query=request.query,
                prefetches=[dense, qe.Prefetch(limit=terms.limit, query=terms.query, filter=terms.filter)],
                filter=request.filter,
                with_payload=True,
            )
        assert first_of_a_and_b(engine.raw(request)) == "b.md", "collection-wide IDF should flip the order"
    finally:
        engine.close()


# -- modes ------------------------------------------------------------------------------------------------------


def test_configured_mode_is_used_and_a_search_without_text_is_dense(engine: Engine) -> None:
    vector = list(embed(QUERY))
    dense = engine.index.search(READER, vector, top_k=10, mode=RetrievalMode.DENSE)
    assert _ranked(engine.index.search(READER, vector, top_k=10)) == _ranked(dense)  # no text: dense
    hybrid = engine.index.search(READER, vector, top_k=10, text=QUERY)  # the configured mode: hybrid
    assert _ranked(hybrid) == _ranked(engine.index.search(READER, vector, top_k=10, text=QUERY, mode=FUSION.mode))
    assert max(p.score for p in hybrid) <= 2 / FUSION.rrf_k + 1e-6  # reciprocal ranks (from 0), not cosines


def test_min_score_floors_the_dense_branch_only(engine: Engine) -> None:
    vector = list(embed("company picnic Riverside Park"))
    dense = engine.index.search(READER, vector, top_k=10, mode=RetrievalMode.DENSE)
    floor = dense[0].score - 1e-6  # only the best dense match passes
    hybrid = engine.index.search(READER, vector, top_k=10, text=QUERY, mode=RetrievalMode.HYBRID, min_score=floor)
    sources = {p.source for p in hybrid}
    assert dense[0].source in sources
    # The rest came back on their terms (the sparse branch has no cosine floor).
    assert sources - {dense[0].source} and sources <= readable_paths()


def _ranked(passages: list[Passage]) -> list[tuple[str, float]]:
    return [(p.chunk_id, round(p.score, 5)) for p in passages]


# -- the encoder -------------------------------------------------------------------------------------------------


def test_encoder_stems_drops_stop_words_and_saturates_term_frequency() -> None:
    encoder = Bm25Encoder()
    assert encoder.encode_query("The runners were running") == encoder.encode_query("runner run")
    once = encoder.encode_document("robot arm")
    thrice = encoder.encode_document("robot robot robot arm")
    weight = dict(zip(once.indices, once.values, strict=True))
    heavy = dict(zip(thrice.indices, thrice.values, strict=True))
    robot = next(i for i in heavy if heavy[i] > weight[i])
    assert weight[robot] < heavy[robot] < 3 * weight[robot]
    assert encoder.fingerprint.startswith("qdrant-bm25/") and "k=1.2" in encoder.fingerprint


def test_an_empty_query_after_stop_words_finds_nothing_by_terms(engine: Engine) -> None:
    found = engine.index.search(READER, list(embed("x")), top_k=10, text="the of and", mode=RetrievalMode.SPARSE)
    assert found == []


def test_a_server_that_may_not_scope_idf_is_not_trusted_with_term_searches() -> None:
    # Qdrant 1.19 added IDF over a corpus filter; an older server may use collection-wide counts.
    assert scopes_idf("1.19.0") and scopes_idf("1.20.3") and scopes_idf("2.0.0")
    assert not scopes_idf("1.15.4") and not scopes_idf("dev") and not scopes_idf("")
