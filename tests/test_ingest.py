"""Incremental ingestion: skip, ACL-only rewrite, replacement without mixing, deletion, the CLI."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from acl.access import AccessList
from acl.principal import Principal, group_key
from clearance.compose import Runtime
from core.records import ChunkDraft, DocumentMeta
from index.ports import IndexedDocument
from ingest.jobs import FileOutcome, JobStatus
from ingest.parse import parse_document
from ingest.parse.elements import ParsedDocument
from ingest.pipeline import MB, IngestionPipeline, document_id
from ingest.source import FilesystemSource
from tests.conftest import G1, TENANT, write_acl, write_doc

READER = Principal(tenant_id=TENANT, object_id="d0000000-0000-4000-8000-000000000001", groups=frozenset({G1}))


def _version_text(marker: str) -> str:
    sections = [f"## Part {n}\n\n" + f"The {marker} edition describes step {n} of the rollout. " * 12 for n in range(6)]
    return "# Rollout guide\n\n" + "\n\n".join(sections)


def _source(root: Path) -> FilesystemSource:
    return FilesystemSource(root=root, tenant_id=TENANT)


@pytest.fixture()
def docs(tmp_path: Path) -> Path:
    """The documents folder, apart from the runtime's data directory (also under tmp_path)."""
    folder = tmp_path / "docs"
    folder.mkdir()
    return folder


def test_rerun_without_changes_skips_every_file(runtime: Runtime, docs: Path) -> None:
    write_doc(docs, "a.md", "# A\n\nAlpha text.")
    write_doc(docs, "b.md", "# B\n\nBeta text.")
    write_acl(docs, allow=[f"group:{G1}"])
    first = runtime.pipeline.run(_source(docs))
    second = runtime.pipeline.run(_source(docs))
    assert first.counts[FileOutcome.ADDED.value] == 2
    assert second.counts[FileOutcome.UNCHANGED.value] == 2 and second.chunks_written == 0
    assert runtime.index.count() == first.chunks_written


def test_content_change_replaces_all_chunks_of_the_document(runtime: Runtime, docs: Path) -> None:
    doc = write_doc(docs, "guide.md", _version_text("alpha"))
    write_acl(docs, allow=[f"group:{G1}"])
    runtime.pipeline.run(_source(docs))
    doc.write_text(_version_text("beta"), encoding="utf-8")
    job = runtime.pipeline.run(_source(docs))
    assert job.counts[FileOutcome.UPDATED.value] == 1
    texts = [p.text for p in runtime.index.search(READER, runtime.embedder.embed_query("rollout step"), top_k=100)]
    assert texts and all("beta" in t and "alpha" not in t for t in texts)
    assert runtime.index.count(live_only=False) == runtime.index.count()  # nothing staged left behind


def test_searches_during_replacement_never_see_old_and_new_chunks_mixed(runtime: Runtime, docs: Path) -> None:
    doc = write_doc(docs, "guide.md", _version_text("alpha"))
    write_acl(docs, allow=[f"group:{G1}"])
    runtime.pipeline.run(_source(docs))
    vector = runtime.embedder.embed_query("rollout step")
    mixed: list[set[str]] = []
    stop = threading.Event()

    def search_loop() -> None:
        while not stop.is_set():
            markers = {
                m for p in runtime.index.search(READER, vector, top_k=100) for m in ("alpha", "beta") if m in p.text
            }
            if len(markers) > 1:
                mixed.append(markers)

    searcher = threading.Thread(target=search_loop)
    searcher.start()
    try:
        for marker in ("beta", "alpha", "beta", "alpha"):
            doc.write_text(_version_text(marker), encoding="utf-8")
            job = runtime.pipeline.run(_source(docs))
            assert job.status is JobStatus.SUCCEEDED, (job.errors, job.failure)
    finally:
        stop.set()
        searcher.join()
    assert mixed == []


def test_staged_chunks_are_invisible_to_search(runtime: Runtime, docs: Path) -> None:
    write_doc(docs, "guide.md", _version_text("alpha"))
    write_acl(docs, allow=[f"group:{G1}"])
    runtime.pipeline.run(_source(docs))
    vector = runtime.embedder.embed_query("rollout")
    live = [p.text for p in runtime.index.search(READER, vector, top_k=10)]
    assert live
    staged = IndexedDocument(
        meta=DocumentMeta(
            doc_id=runtime.index.document_states(tenant_id=TENANT, source_id=_source(docs).source_id)[
                "guide.md"
            ].doc_id,
            tenant_id=TENANT,
            source_id=_source(docs).source_id,
            path="guide.md",
            uri="guide.md",
            title="Guide",
            format="md",
            content_hash="f" * 64,
            modified_at=0.0,
        ),
        acl=AccessList(allow=frozenset({group_key(TENANT, G1)})),
        chunks=(ChunkDraft(text="Staged rollout text.", section=None, page=None, page_name=None),),
        vectors=(tuple(vector),),
    )
    version = runtime.index.stage_document(staged)
    assert [p.text for p in runtime.index.search(READER, vector, top_k=10)] == live
    runtime.index.publish(staged.meta.doc_id, version)
    assert [p.text for p in runtime.index.search(READER, vector, top_k=10)] == ["Staged rollout text."]


def test_unparseable_file_is_an_error_line_not_a_failed_job(runtime: Runtime, docs: Path) -> None:
    write_doc(docs, "good.md", "# Good\n\nReadable text.")
    (docs / "broken.docx").write_bytes(b"PK\x03\x04 this is not really a docx")
    (docs / "tool.exe").write_bytes(b"MZ\x90\x00")
    write_acl(docs, allow=[f"group:{G1}"])
    job = runtime.pipeline.run(_source(docs))
    assert job.status is JobStatus.COMPLETED_WITH_ERRORS
    assert job.counts[FileOutcome.ADDED.value] == 1
    reasons = {issue.path: issue.reason for issue in job.errors}
    assert set(reasons) == {"broken.docx", "tool.exe"} and all(reasons.values())
    assert runtime.jobs.get(job.id).errors[0].reason  # persisted with the record


def test_file_that_stops_parsing_loses_its_stale_chunks(runtime: Runtime, docs: Path) -> None:
    doc = write_doc(docs, "notes.md", "# Notes\n\nThe launch code word is Heron.")
    write_acl(docs, allow=[f"group:{G1}"])
    runtime.pipeline.run(_source(docs))
    doc.write_bytes(b"")
    job = runtime.pipeline.run(_source(docs))
    assert [e.path for e in job.errors] == ["notes.md"]
    assert runtime.index.search(READER, runtime.embedder.embed_query("launch code word"), top_k=10) == []


def test_job_record_is_readable_after_the_run(runtime: Runtime, docs: Path) -> None:
    write_doc(docs, "a.md", "# A\n\nAlpha text.")
    job = runtime.pipeline.run(_source(docs))
    stored = runtime.jobs.get(job.id).to_dict()
    assert stored["status"] == "succeeded" and stored["files_total"] == 1
    assert stored["warnings"] == [{"path": "a.md", "reason": "no ACL manifest applies: stored as visible to nobody"}]
    assert set(stored["timings"]) == {"parse_s", "embed_s", "index_s"} and stored["duration_s"] >= 0


def test_manifest_with_unknown_entry_is_rejected_with_the_file_named(runtime: Runtime, docs: Path) -> None:
    write_doc(docs, "a.md", "# A\n\nAlpha text.")
    (docs / ".acl.json").write_text(json.dumps({"allow": ["everyone"]}), encoding="utf-8")
    job = runtime.pipeline.run(_source(docs))
    assert job.errors and "everyone" in job.errors[0].reason and ".acl.json" in job.errors[0].reason


@pytest.fixture()
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from tests.conftest import write_users

    monkeypatch.setenv("CLEARANCE_DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.setenv("CLEARANCE_USERS_FILE", str(write_users(tmp_path / "users.json")))
    return tmp_path


def test_cli_ingest_prints_a_summary_and_records_the_job(cli_env: Path) -> None:
    from clearance.cli import app

    docs = cli_env / "docs"
    write_doc(docs, "a.md", "# A\n\nAlpha text.")
    write_acl(docs, allow=["tenant"])
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(docs), "--tenant", TENANT])
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output and "added 1" in result.output
    listed = runner.invoke(app, ["jobs", "list"])
    assert "succeeded" in listed.output


def test_cli_ingest_without_tenant_is_a_clear_error(cli_env: Path) -> None:
    from clearance.cli import app

    result = CliRunner().invoke(app, ["ingest", str(cli_env)])
    assert result.exit_code == 2 and "--tenant" in result.output


def test_cli_dev_token_is_accepted_by_the_validator(cli_env: Path, runtime: Runtime) -> None:
    from clearance.cli import app
    from clearance.settings import Mode, Settings

    result = CliRunner().invoke(
        app,
        [
            "dev",
            "token",
            "--oid",
            "d0000000-0000-4000-8000-000000000009",
            "--tid",
            TENANT,
            "--group",
            G1,
            "--role",
            "Clearance.Admin",
        ],
    )
    assert result.exit_code == 0, result.output
    from clearance.compose import build_identity

    validator = build_identity(Settings(mode=Mode.DEVELOPMENT)).tokens
    principal = validator.authenticate(result.output.strip())
    assert principal.groups == {G1} and principal.has_role("Clearance.Admin")


def test_symlink_out_of_the_source_tree_is_not_ingested(runtime: Runtime, docs: Path, tmp_path: Path) -> None:
    outside = write_doc(tmp_path / "elsewhere", "secret.md", "# Secret\n\nThe vault code is 4711.")
    write_doc(docs, "a.md", "# A\n\nAlpha text.")
    (docs / "linked.md").symlink_to(outside)
    write_acl(docs, allow=["tenant"])
    job = runtime.pipeline.run(_source(docs))
    assert job.counts[FileOutcome.ADDED.value] == 1 and job.counts[FileOutcome.SKIPPED.value] == 1
    assert [(w.path, "symbolic link" in w.reason) for w in job.warnings] == [("linked.md", True)]
    assert set(runtime.index.document_states(tenant_id=TENANT, source_id=_source(docs).source_id)) == {"a.md"}


# -- bounds: over a limit is that file's clear error, never a stall ------------------------------

_TENANT_MEMBER = Principal(tenant_id=TENANT, object_id="d0000000-0000-4000-8000-000000000002")


def _visible_to_members(runtime: Runtime) -> set[str]:
    vector = runtime.embedder.embed_query("company words")
    return {p.source for p in runtime.index.search(_TENANT_MEMBER, vector, top_k=100)}


def bounded_pipeline(runtime: Runtime, **limits: int) -> IngestionPipeline:
    parser: Callable[[Path], ParsedDocument] = parse_document
    return IngestionPipeline(index=runtime.index, embedder=runtime.embedder, jobs=runtime.jobs, parser=parser, **limits)


def test_file_over_the_size_limit_is_an_error_and_is_not_parsed(runtime: Runtime, docs: Path) -> None:
    write_doc(docs, "big.md", "# Big\n\n" + "company words " * (MB // 14 + 10))
    write_doc(docs, "small.md", "# Small\n\nThe company small text.")
    write_acl(docs, allow=["tenant"])
    job = bounded_pipeline(runtime, max_file_bytes=MB).run(FilesystemSource(root=docs, tenant_id=TENANT))
    assert [(e.path, e.reason) for e in job.errors] == [("big.md", "file is larger than the limit of 1 MB")]
    assert _visible_to_members(runtime) == {"small.md"}


def test_file_over_the_chunk_limit_is_an_error_and_nothing_of_it_is_indexed(runtime: Runtime, docs: Path) -> None:
    sections = "\n\n".join(f"## Part {n}\n\n" + f"The company step {n} text. " * 40 for n in range(8))
    write_doc(docs, "long.md", "# Long\n\n" + sections)
    write_acl(docs, allow=["tenant"])
    source = FilesystemSource(root=docs, tenant_id=TENANT)
    job = bounded_pipeline(runtime, max_chunks_per_file=2).run(source)
    assert [e.path for e in job.errors] == ["long.md"] and "limit of 2 chunks" in job.errors[0].reason
    doc_id = document_id(tenant_id=TENANT, source_id=source.source_id, path="long.md")
    assert runtime.index.chunk_ids(doc_id) == set() and job.chunks_written == 0
