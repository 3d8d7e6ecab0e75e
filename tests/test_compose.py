"""The composition root builds what each entry point needs, with production's defaults."""

from __future__ import annotations

from pathlib import Path

from clearance.compose import build_indexing
from clearance.settings import IndexSettings, IngestSettings, Settings
from index.embedding import SentenceTransformerEmbedder
from ingest.jobs import JobStatus
from ingest.parse import IsolatedParser
from ingest.source import FilesystemSource
from tests.conftest import TENANT, write_acl, write_doc


def test_ingestion_parses_in_an_isolated_worker_by_default(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    settings = Settings(data_dir=tmp_path / "data", index=IndexSettings(location=":memory:"))
    indexing = build_indexing(settings, embedder=embedder)
    try:
        assert isinstance(indexing.parser, IsolatedParser)
        write_doc(tmp_path / "docs", "a.md", "# Alpha\n\nThe Alpha project ships in May.")
        write_acl(tmp_path / "docs", allow=["tenant"])
        job = indexing.pipeline.run(FilesystemSource(root=tmp_path / "docs", tenant_id=TENANT))
        assert job.status is JobStatus.SUCCEEDED and job.chunks_written == 1
        assert indexing.parser.worker_pid is not None  # the worker really parsed it
    finally:
        indexing.close()
    assert indexing.parser.worker_pid is None  # closing the indexing side ends the worker


def test_edge_location_selects_qdrants_in_process_engine(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    from acl.principal import Principal
    from index.edge import EdgeChunkIndex

    settings = Settings(
        data_dir=tmp_path / "data",
        index=IndexSettings(location=f"edge:{tmp_path / 'shard'}"),
        ingest=IngestSettings(isolate_parsing=False),
    )
    indexing = build_indexing(settings, embedder=embedder)
    try:
        assert isinstance(indexing.index, EdgeChunkIndex)
        write_doc(tmp_path / "docs", "a.md", "# Alpha\n\nThe Alpha project ships in May.")
        write_acl(tmp_path / "docs", allow=["tenant"])
        indexing.pipeline.run(FilesystemSource(root=tmp_path / "docs", tenant_id=TENANT))
        member = Principal(tenant_id=TENANT, object_id="a0000000-0000-4000-8000-0000000000e1")
        hits = indexing.index.search(member, embedder.embed_query("When does Alpha ship?"), top_k=5)
        assert [h.source for h in hits] == ["a.md"]
    finally:
        indexing.close()


def test_the_api_authenticates_through_the_principal_cache_bounded_by_the_group_cache(
    settings: Settings, embedder: SentenceTransformerEmbedder
) -> None:
    from acl.principal_cache import PrincipalCache
    from clearance.compose import build_runtime
    from clearance.settings import AuthSettings

    runtime = build_runtime(settings, embedder=embedder)
    try:
        assert isinstance(runtime.api_components().authenticator, PrincipalCache)
    finally:
        runtime.close()
    off = settings.model_copy(update={"auth": AuthSettings(principal_cache_ttl_seconds=0)})
    runtime = build_runtime(off, embedder=embedder)
    try:  # a TTL of 0 validates every request
        assert runtime.api_components().authenticator is runtime.identity.tokens
    finally:
        runtime.close()


def test_default_index_is_qdrants_in_process_engine(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.index_location == f"edge:{tmp_path / 'data' / 'edge'}"
