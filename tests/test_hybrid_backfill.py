"""Term weights for an index written before hybrid search: added from the stored text, nothing re-embedded.

"Legacy" indexes are written the way the previous version did (dense vector only,
the same payload), straight through each engine's own API, then opened by the
product. Also: the composition root wires the settings, the migration command,
and the optional cross-encoder reranker (a tiny randomly initialised model built
here: no reranker weights can be downloaded, and the plumbing is what is tested).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe
import typer
from qdrant_client import QdrantClient, models
from typer.testing import CliRunner

from acl.index_filter import LIVE_STATE, READ_FIELD, STATE_FIELD
from clearance.compose import build_index
from clearance.index_migrate import index_app, run_backfill
from clearance.settings import IndexSettings, RetrievalModeSetting, Settings
from index.edge import EdgeChunkIndex
from index.payload import ChunkRecord, staged_chunks
from index.ports import BackfillReport, ChunkIndex, IndexedDocument, RetrievalMode
from index.qdrant import DENSE_VECTOR, QdrantChunkIndex
from index.rerank import CrossEncoderReranker, RerankingIndex
from index.sparse import ENCODER_FIELD, Bm25Encoder, Bm25Params
from tests.test_hybrid import CORPUS, FORBIDDEN, QUERY, READER, readable_paths
from tests.test_index_congruence import DIM, embed

CHUNKS = sum(len(doc.chunks) for doc in CORPUS)


def legacy_chunks(docs: list[IndexedDocument] = CORPUS) -> list[ChunkRecord]:
    """Chunks as an earlier version stored them: no term weights, no encoder mark, no read keys, published."""
    chunks = [chunk for doc in docs for chunk in staged_chunks(doc, "v1")]
    for chunk in chunks:
        chunk.payload[STATE_FIELD] = LIVE_STATE
        del chunk.payload[READ_FIELD]
    return chunks


def legacy_collection(client: QdrantClient, name: str = "chunks") -> dict[str, list[float]]:
    client.create_collection(
        name, vectors_config={DENSE_VECTOR: models.VectorParams(size=DIM, distance=models.Distance.COSINE)}
    )
    chunks = legacy_chunks()
    client.upsert(
        name, points=[models.PointStruct(id=c.id, vector={DENSE_VECTOR: c.vector}, payload=c.payload) for c in chunks]
    )
    return stored_dense(client, name)


def stored_dense(client: QdrantClient, name: str = "chunks") -> dict[str, list[float]]:
    points, _ = client.scroll(name, limit=1000, with_vectors=[DENSE_VECTOR])
    return {str(p.id): list(p.vector[DENSE_VECTOR]) for p in points if isinstance(p.vector, dict)}  # type: ignore[arg-type]


def legacy_shard(folder: Path, *, dimension: int = DIM, docs: list[IndexedDocument] = CORPUS) -> None:
    config = qe.EdgeConfig(vectors={DENSE_VECTOR: qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)})
    shard = qe.EdgeShard.create(str(folder / "shard"), config)
    points = [qe.Point(id=c.id, vector={DENSE_VECTOR: c.vector}, payload=c.payload) for c in legacy_chunks(docs)]
    shard.update(qe.UpdateOperation.upsert_points(points))
    shard.flush()
    shard.close()


def sparse_sources(index: ChunkIndex) -> list[str]:
    return [p.source for p in index.search(READER, list(embed(QUERY)), top_k=10, text=QUERY, mode=RetrievalMode.SPARSE)]


# -- qdrant-client ----------------------------------------------------------------------------------------


def test_qdrant_backfill_adds_term_weights_in_place_and_keeps_dense_vectors_and_acls() -> None:
    client = QdrantClient(location=":memory:")
    before = legacy_collection(client)
    index = QdrantChunkIndex(client=client, collection="chunks", dimension=DIM)
    index.ensure_schema()
    assert sparse_sources(index) == []  # the sparse vector exists, nothing has weights yet
    assert index.backfill_sparse(batch_size=2) == BackfillReport(scanned=CHUNKS, updated=CHUNKS, schema="added")
    found = sparse_sources(index)
    assert found and set(found) <= readable_paths() and FORBIDDEN not in found
    assert stored_dense(client) == before
    assert index.backfill_sparse() == BackfillReport(scanned=0, updated=0, schema="added")  # resumable: done is done
    index.close()


def test_qdrant_rebuild_copies_into_a_new_collection_behind_an_alias() -> None:
    """The path for servers that cannot add a named vector in place."""
    client = QdrantClient(location=":memory:")
    before = legacy_collection(client)
    index = QdrantChunkIndex(client=client, collection="chunks", dimension=DIM)
    for _ in range(2):  # the second time "chunks" is already an alias: swapped atomically, old copy dropped
        index.rebuild_with_sparse()
        aliases = {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
        assert aliases["chunks"].startswith("chunks-")
        assert {c.name for c in client.get_collections().collections} == {aliases["chunks"]}
        assert stored_dense(client, aliases["chunks"]) == before
    index.ensure_schema()  # start-up on the alias works, and gives the copied chunks their read keys
    assert index.backfill_sparse().updated == CHUNKS
    assert set(sparse_sources(index)) <= readable_paths() and sparse_sources(index)
    assert {d.path for d in index.documents(tenant_id=READER.tenant_id)} == readable_paths() | {FORBIDDEN}
    index.close()


def test_a_changed_encoder_setting_is_detected_and_re_encoded() -> None:
    client = QdrantClient(location=":memory:")
    first = QdrantChunkIndex(client=client, collection="chunks", dimension=DIM)
    first.ensure_schema()
    for doc in CORPUS:
        first.replace_document(doc)
    assert first.backfill_sparse().updated == 0  # written with weights
    other = Bm25Encoder(Bm25Params(k=1.5))
    changed = QdrantChunkIndex(client=client, collection="chunks", dimension=DIM, encoder=other)
    assert changed.backfill_sparse().updated == CHUNKS
    marks = {p.payload[ENCODER_FIELD] for p in client.scroll("chunks", limit=100, with_payload=True)[0] if p.payload}
    assert marks == {other.fingerprint}
    changed.close()


# -- the embedded engine ------------------------------------------------------------------------------------


def test_edge_shard_from_before_term_weights_is_upgraded_on_open_and_backfilled(tmp_path: Path) -> None:
    legacy_shard(tmp_path)
    index = EdgeChunkIndex(path=tmp_path, dimension=DIM)
    index.ensure_schema()
    assert sparse_sources(index) == []
    assert index.backfill_sparse(batch_size=2) == BackfillReport(scanned=CHUNKS, updated=CHUNKS, schema="added")
    found = sparse_sources(index)
    assert found and set(found) <= readable_paths()
    index.close()
    reopened = EdgeChunkIndex(path=tmp_path, dimension=DIM)  # now opens with the full configuration
    try:
        assert sparse_sources(reopened) == found
        assert reopened.backfill_sparse() == BackfillReport(scanned=0, updated=0, schema="present")
    finally:
        reopened.close()
    shard = qe.EdgeShard.load(str(tmp_path / "shard"))
    try:
        records, _ = shard.scroll(qe.ScrollRequest(limit=100, with_vector=[DENSE_VECTOR]))
        kept = {str(r.id): _rounded(r.vector) for r in records}
    finally:
        shard.close()
    assert kept == {c.id: [round(x, 5) for x in c.vector] for c in legacy_chunks()}


def _rounded(stored: object) -> list[float]:
    assert isinstance(stored, dict)
    return [round(float(x), 5) for x in stored[DENSE_VECTOR]]


# -- the composition root, the command, the reranker -----------------------------------------------------------


def test_build_index_takes_the_mode_and_fusion_from_settings(settings: Settings) -> None:
    hybrid = settings.model_copy(
        update={"retrieval": settings.retrieval.model_copy(update={"mode": RetrievalModeSetting.HYBRID, "rrf_k": 10})}
    )
    index = build_index(hybrid, dimension=DIM)
    try:
        for doc in CORPUS:
            index.replace_document(doc)
        found = index.search(READER, list(embed(QUERY)), top_k=5, text=QUERY)
        assert found and max(p.score for p in found) <= 2 / 10 + 1e-6  # RRF with k = 10: the settings' fusion
        assert {p.source for p in found} <= readable_paths()
    finally:
        index.close()


def test_backfill_command_upgrades_a_legacy_edge_index(tmp_path: Path, settings: Settings) -> None:
    legacy_shard(tmp_path / "edge")
    configured = settings.model_copy(update={"index": IndexSettings(location=f"edge:{tmp_path / 'edge'}")})
    report = run_backfill(configured, dimension=DIM)
    assert report == BackfillReport(scanned=CHUNKS, updated=CHUNKS, schema="added")
    assert run_backfill(configured, dimension=DIM).updated == 0


def test_backfill_command_line_reports_what_it_did(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dimension = 384  # the command sizes the index from the configured embedder (all-MiniLM-L6-v2)
    rng = random.Random(3)
    docs = [
        IndexedDocument(
            meta=doc.meta,
            acl=doc.acl,
            chunks=doc.chunks,
            vectors=tuple(tuple(rng.uniform(-1, 1) for _ in range(dimension)) for _ in doc.chunks),
        )
        for doc in CORPUS
    ]
    legacy_shard(tmp_path / "edge", dimension=dimension, docs=docs)
    monkeypatch.setenv("CLEARANCE_INDEX__LOCATION", f"edge:{tmp_path / 'edge'}")
    monkeypatch.setenv("CLEARANCE_DATA_DIR", str(tmp_path / "data"))
    cli = typer.Typer()
    cli.add_typer(index_app, name="index")  # as clearance/cli.py registers it: `clearance index backfill-sparse`
    result = CliRunner().invoke(cli, ["index", "backfill-sparse", "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    assert f"{CHUNKS} of {CHUNKS} chunks given term weights" in result.output
    held = EdgeChunkIndex(path=tmp_path / "edge", dimension=dimension)
    try:
        refused = CliRunner().invoke(cli, ["index", "backfill-sparse"])
    finally:
        held.close()
    assert refused.exit_code == 2 and "held by another index object" in refused.output


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-layer BERT cross-encoder with random weights and MiniLM's vocabulary, saved like any other."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from index.embedding import default_model_path

    folder = tmp_path_factory.mktemp("cross-encoder")
    tokenizer = AutoTokenizer.from_pretrained(str(default_model_path()))
    tokenizer.save_pretrained(str(folder))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,  # type: ignore[call-arg]  # a PretrainedConfig keyword the stubs do not list
    )
    BertForSequenceClassification(config).save_pretrained(str(folder))
    return folder


@pytest.fixture()
def reranked(tiny_cross_encoder: Path) -> Iterator[tuple[RerankingIndex, QdrantChunkIndex, CrossEncoderReranker]]:
    inner = QdrantChunkIndex(client=QdrantClient(location=":memory:"), collection="chunks", dimension=DIM)
    inner.ensure_schema()
    for doc in CORPUS:
        inner.replace_document(doc)
    reranker = CrossEncoderReranker(model_path=tiny_cross_encoder)
    yield RerankingIndex(inner=inner, reranker=reranker, candidates=10), inner, reranker
    inner.close()


def test_reranker_only_reorders_what_the_filtered_search_returned(
    reranked: tuple[RerankingIndex, QdrantChunkIndex, CrossEncoderReranker],
) -> None:
    index, inner, reranker = reranked
    vector = list(embed(QUERY))
    candidates = inner.search(READER, vector, top_k=10, text=QUERY, mode=RetrievalMode.HYBRID)
    found = index.search(READER, vector, top_k=3, text=QUERY, mode=RetrievalMode.HYBRID)
    scores = reranker.scores(QUERY, [p.text for p in candidates])
    expected = [candidates[i].chunk_id for i in np.argsort(-np.asarray(scores), kind="stable")[:3]]
    assert [p.chunk_id for p in found] == expected
    assert {p.source for p in found} <= readable_paths()
    assert [p.score for p in found] == sorted((s for s in scores), reverse=True)[:3]
    # Without query text there is nothing to read against: the inner ranking, untouched.
    assert index.search(READER, vector, top_k=3) == inner.search(READER, vector, top_k=3)


def test_build_index_wraps_the_index_in_the_reranker_when_a_model_is_configured(
    settings: Settings, tiny_cross_encoder: Path
) -> None:
    with_model = settings.model_copy(
        update={"retrieval": settings.retrieval.model_copy(update={"rerank_model_path": tiny_cross_encoder})}
    )
    index = build_index(with_model, dimension=DIM)
    try:
        assert isinstance(index, RerankingIndex)
    finally:
        index.close()
