"""The int8 ONNX embedder: agreement with torch fp32, a deterministic cached export, threads, the setting.

The model is exported once per session (about 20-30 s on 2 cores); one further
export proves that exporting is deterministic and that a damaged cache is replaced.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from qdrant_client import QdrantClient

from acl.access import AccessList
from acl.principal import tenant_key
from clearance.compose import build_embedder
from clearance.settings import EmbeddingBackend, EmbeddingSettings, Settings
from core.records import ChunkDraft, DocumentMeta
from index.edge import EdgeChunkIndex
from index.embedding import SentenceTransformerEmbedder, default_model_path
from index.embedding_stamp import CollectionStamp, EmbeddingMismatchError, FolderStamp, verify_embedding
from index.onnx_embedding import ExportedModel, OnnxEmbedder, load_tokenizer
from index.onnx_export import ensure_int8_model
from index.ports import ChunkIndex, IndexedDocument
from index.qdrant import QdrantChunkIndex
from tests.conftest import SHARED_DATA, TENANT

# Realistic chunks and questions of the kind the product embeds (the sample company's, plus a long one).
TEXTS = [
    "Travel expenses must be submitted within 30 days of the trip through the expense portal, with receipts.",
    "The robot fleet controller runs on Kubernetes in two availability zones; failover takes under a minute.",
    "Q3 revenue was 12.4 million euros, up 8 percent on the previous quarter, driven by warehouse contracts.",
    "Employees accrue 2.5 vacation days per month; unused days expire at the end of March of the next year.",
    "Battery packs returned under the recall are stored in the fire-safe cage in building C until collected.",
    "How many vacation days do I get?",
    "Where do I submit travel expenses?",
    "Who approves purchase orders above 10,000 euros?",
    "password reset",
    "Incident report: lidar sensor failure on picker unit 14 caused a collision with shelf B-22. "
    + "The unit was taken out of service and the firmware rolled back. " * 30,
]


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def onnx_model(model_cache: Path) -> ExportedModel:
    return ensure_int8_model(source=default_model_path(), cache_root=model_cache)


@pytest.fixture(scope="session")
def onnx_embedder(onnx_model: ExportedModel) -> OnnxEmbedder:
    return OnnxEmbedder(model=onnx_model, threads=1, query_threads=1)


def _cosines(a: list[list[float]], b: list[list[float]]) -> np.ndarray:
    cosines: np.ndarray = np.sum(np.asarray(a) * np.asarray(b), axis=1)
    return cosines


def _scifact_texts(count: int) -> list[str]:
    corpus = SHARED_DATA / "scifact" / "corpus.jsonl"
    if not corpus.exists():
        pytest.skip(f"shared data not found at {corpus} (set CLEARANCE_SHARED_DATA)")
    with corpus.open(encoding="utf-8") as lines:
        rows = [json.loads(line) for line, _ in zip(lines, range(count), strict=False)]
    return [f"{row['title']}\n{row['text']}" for row in rows]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- agreement with torch fp32 ---------------------------------------------------------------


def test_int8_vectors_are_within_099_cosine_of_fp32(
    onnx_embedder: OnnxEmbedder, embedder: SentenceTransformerEmbedder
) -> None:
    cosines = _cosines(onnx_embedder.embed_documents(TEXTS), embedder.embed_documents(TEXTS))
    assert cosines.min() >= 0.99, dict(zip(TEXTS, cosines.round(4), strict=True))


def test_int8_vectors_of_scientific_abstracts_are_within_099_cosine_of_fp32(
    onnx_embedder: OnnxEmbedder, embedder: SentenceTransformerEmbedder
) -> None:
    texts = _scifact_texts(32)
    cosines = _cosines(onnx_embedder.embed_documents(texts), embedder.embed_documents(texts))
    assert cosines.min() >= 0.99 and cosines.mean() >= 0.993


def test_vectors_are_unit_length_of_the_model_dimension(onnx_embedder: OnnxEmbedder) -> None:
    vectors = np.asarray(onnx_embedder.embed_documents(TEXTS))
    assert onnx_embedder.dimension == 384 and vectors.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert onnx_embedder.embed_documents([]) == []


def test_text_past_the_model_length_is_truncated_where_sentence_transformers_truncates(
    onnx_model: ExportedModel, onnx_embedder: OnnxEmbedder, embedder: SentenceTransformerEmbedder
) -> None:
    # tokenizer.json says 128 tokens, the model card 256: a 300-token text shows which one was applied.
    tokenizer = load_tokenizer(onnx_model.tokenizer_file, max_seq_length=onnx_model.max_seq_length)
    long_text = " ".join(f"word{i}" for i in range(300))
    middle = " ".join(f"word{i}" for i in range(100))
    tokens = tokenizer.encode(long_text).ids
    assert len(tokens) == 256 and tokens[-1] == tokenizer.token_to_id("[SEP]")
    assert 128 < len(tokenizer.encode(middle).ids) < 256
    for text in (long_text, middle):
        assert _cosines(onnx_embedder.embed_documents([text]), embedder.embed_documents([text]))[0] >= 0.99


def test_a_vector_depends_on_its_text_alone(onnx_embedder: OnnxEmbedder) -> None:
    """Dynamic int8 scales come from the whole input; one text per run keeps batch-mates out of a vector."""
    alone = onnx_embedder.embed_documents([TEXTS[5]])[0]
    batched = onnx_embedder.embed_documents(TEXTS)[5]
    assert alone == batched == onnx_embedder.embed_query(TEXTS[5])


# -- export and cache ----------------------------------------------------------------------------


def test_second_construction_reuses_the_cached_export(onnx_model: ExportedModel, model_cache: Path) -> None:
    before = onnx_model.model_file.stat()
    again = ensure_int8_model(source=default_model_path(), cache_root=model_cache)
    after = again.model_file.stat()
    assert again == onnx_model
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in model_cache.iterdir()) == [".export.lock", onnx_model.folder.name]


def test_export_is_deterministic_and_a_damaged_cache_is_exported_again(
    onnx_model: ExportedModel, tmp_path: Path
) -> None:
    damaged = tmp_path / onnx_model.folder.name
    shutil.copytree(onnx_model.folder, damaged)
    with open(damaged / onnx_model.model_file.name, "r+b") as model:
        model.truncate(1000)
    fresh = ensure_int8_model(source=default_model_path(), cache_root=tmp_path)
    assert fresh.folder == damaged and fresh.fingerprint == onnx_model.fingerprint
    assert _sha256(fresh.model_file) == _sha256(onnx_model.model_file)  # byte-identical to the first export
    assert any(p.name.startswith(".damaged-") for p in tmp_path.iterdir())  # set aside, not loaded
    assert not any(p.name.startswith(".export-") for p in tmp_path.iterdir())  # no staging folder left


def test_the_source_model_folder_is_never_written(onnx_model: ExportedModel) -> None:
    source = default_model_path()
    assert not any(p.suffix == ".onnx" for p in source.rglob("*"))
    assert source not in onnx_model.folder.parents


def test_a_model_other_than_mean_pooling_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "cls-model"
    shutil.copytree(default_model_path(), source, ignore=shutil.ignore_patterns("model.safetensors"))
    pooling = source / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text(encoding="utf-8"))
    pooling.write_text(json.dumps(config | {"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}))
    with pytest.raises(ValueError, match="mean pooling"):
        ensure_int8_model(source=source, cache_root=tmp_path / "models")
    assert not any((tmp_path / "models").glob("onnx-int8-*"))


# -- threads -------------------------------------------------------------------------------------


def test_concurrent_queries_each_get_the_vector_of_their_own_text(onnx_model: ExportedModel) -> None:
    embedder = OnnxEmbedder(model=onnx_model, threads=1, query_threads=2)  # two sessions, as configured
    expected = {text: embedder.embed_query(text) for text in TEXTS}
    failures: list[str] = []
    answered: list[int] = []

    def ask(offset: int) -> None:
        for step in range(30):
            text = TEXTS[(offset + step) % len(TEXTS)]
            got = embedder.embed_documents([text])[0] if step % 3 == 0 else embedder.embed_query(text)
            if not np.allclose(got, expected[text], atol=1e-6):
                failures.append(text)
            answered.append(1)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == [] and len(answered) == 8 * 30


# -- the setting ---------------------------------------------------------------------------------


def test_setting_selects_the_onnx_backend(settings: Settings, model_cache: Path, onnx_model: ExportedModel) -> None:
    chosen = settings.model_copy(
        update={"embedding": EmbeddingSettings(backend=EmbeddingBackend.ONNX_INT8, model_cache_dir=model_cache)}
    )
    built = build_embedder(chosen)
    assert isinstance(built, OnnxEmbedder) and built.fingerprint == onnx_model.fingerprint


def test_setting_selects_the_torch_backend_from_the_environment(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLEARANCE_EMBEDDING__BACKEND", "torch")
    chosen = Settings(data_dir=settings.data_dir)
    assert chosen.embedding.backend is EmbeddingBackend.TORCH
    built = build_embedder(chosen)
    assert isinstance(built, SentenceTransformerEmbedder) and built.fingerprint.startswith("torch-fp32/")
    assert not (settings.data_dir / "models").exists()  # no export for the torch backend


def test_unknown_backend_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEARANCE_EMBEDDING__BACKEND", "onnx-int4")
    with pytest.raises(ValidationError):
        Settings()


def test_default_backend_is_int8_onnx() -> None:
    assert EmbeddingSettings().backend is EmbeddingBackend.ONNX_INT8


def test_both_backends_name_the_same_weights_in_their_fingerprints(
    onnx_embedder: OnnxEmbedder, embedder: SentenceTransformerEmbedder
) -> None:
    onnx_kind, onnx_weights = onnx_embedder.fingerprint.split("/")
    torch_kind, torch_weights = embedder.fingerprint.split("/")
    assert onnx_weights == torch_weights and onnx_kind != torch_kind


# -- an index keeps the vectors of one embedder -------------------------------------------------

Stamp = CollectionStamp | FolderStamp
INT8 = "onnx-int8-r1/0123456789abcdef"
FP32 = "torch-fp32/0123456789abcdef"


@pytest.fixture(params=["qdrant", "edge"])
def stamped(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[ChunkIndex, CollectionStamp | FolderStamp]]:
    index: ChunkIndex
    stamp: Stamp
    if request.param == "qdrant":
        client = QdrantClient(location=":memory:")
        index = QdrantChunkIndex(client=client, collection="chunks", dimension=4)
        stamp = CollectionStamp(client=client, collection="chunks")
    else:
        index = EdgeChunkIndex(path=tmp_path / "edge", dimension=4)
        stamp = FolderStamp(tmp_path / "edge")
    index.ensure_schema()
    yield index, stamp
    index.close()


def _add_document(index: ChunkIndex) -> None:
    meta = DocumentMeta(
        doc_id="doc-1",
        tenant_id=TENANT,
        source_id="test",
        path="a.md",
        uri="a.md",
        title="a",
        format="md",
        content_hash="x" * 64,
        modified_at=0.0,
    )
    index.replace_document(
        IndexedDocument(
            meta=meta,
            acl=AccessList(allow=frozenset({tenant_key(TENANT)})),
            chunks=(ChunkDraft(text="a", section=None, page=None, page_name=None),),
            vectors=((0.5, 0.5, 0.5, 0.5),),
        )
    )


def test_new_index_records_its_embedder_and_opens_again_under_it(
    stamped: tuple[ChunkIndex, Stamp],
) -> None:
    index, stamp = stamped
    verify_embedding(stamp, fingerprint=INT8, index=index, where="test")
    _add_document(index)
    verify_embedding(stamp, fingerprint=INT8, index=index, where="test")
    assert stamp.read() == INT8


def test_index_of_one_embedder_refuses_another(stamped: tuple[ChunkIndex, Stamp]) -> None:
    index, stamp = stamped
    verify_embedding(stamp, fingerprint=INT8, index=index, where="test")
    with pytest.raises(EmbeddingMismatchError, match=r"onnx-int8-r1.*torch-fp32"):
        verify_embedding(stamp, fingerprint=FP32, index=index, where="test")
    assert stamp.read() == INT8  # the refusal changed nothing


def test_unrecorded_index_with_chunks_is_adopted_by_torch_only(
    stamped: tuple[ChunkIndex, Stamp],
) -> None:
    """Before records existed every index was filled by torch fp32."""
    index, stamp = stamped
    _add_document(index)
    with pytest.raises(EmbeddingMismatchError, match="before embedders were recorded"):
        verify_embedding(stamp, fingerprint=INT8, index=index, where="test")
    assert stamp.read() is None
    verify_embedding(stamp, fingerprint=FP32, index=index, where="test")
    assert stamp.read() == FP32


def test_unreadable_record_is_an_error_not_a_fresh_index(tmp_path: Path) -> None:
    (tmp_path / "embedding.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(EmbeddingMismatchError, match="cannot read"):
        FolderStamp(tmp_path).read()
