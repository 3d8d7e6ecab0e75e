"""Fail-closed ingestion: when the source is unsure about access, nobody may read.

Each test is a rule from DESIGN.md's fail-closed checklist, run through the real
pipeline, index and embedder; what a caller can retrieve is checked by searching
as that caller with ``top_k`` larger than the corpus.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from dataclasses import fields
from pathlib import Path

import pytest

from acl.principal import Principal
from clearance.compose import Runtime
from core.errors import InvalidInputError
from ingest.acl_decision import ALL_DENIED_WARNING, EMPTY_ALLOW_WARNING, Nobody
from ingest.jobs import FileIssue, FileOutcome, JobStatus, JobStore
from ingest.manifest import is_manifest
from ingest.parse import parse_document
from ingest.parse.elements import ParsedDocument
from ingest.pipeline import IngestionPipeline
from ingest.source import FilesystemSource, SourceItem
from tests.conftest import G1, REPO_ROOT, TENANT, deadline, write_acl, write_doc

ALICE = "b0000000-0000-4000-8000-00000000000a"
DENIED = "b0000000-0000-4000-8000-00000000000d"
BAD_NAME = b"bad-\xff.txt"
BAD_NAME_SHOWN = "bad-\\xff.txt"
NOT_REGULAR = ["directory", "fifo", "broken_symlink", "symlink_to_dev_null", "symlink_to_a_valid_manifest"]


@pytest.fixture()
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    return folder


def member(oid: str = ALICE, *groups: str) -> Principal:
    return Principal(tenant_id=TENANT, object_id=oid, groups=frozenset(groups))


def visible(runtime: Runtime, principal: Principal) -> set[str]:
    vector = runtime.embedder.embed_query("company information")
    return {passage.source for passage in runtime.index.search(principal, vector, top_k=100)}


def indexed_paths(runtime: Runtime, source: FilesystemSource) -> set[str]:
    return set(runtime.index.document_states(tenant_id=TENANT, source_id=source.source_id))


def run(runtime: Runtime, root: Path, **kwargs: Path) -> tuple[FilesystemSource, list[FileIssue], JobStatus]:
    source = FilesystemSource(root=root, tenant_id=TENANT, **kwargs)
    job = runtime.pipeline.run(source)
    assert job.status is not JobStatus.FAILED, job.failure
    return source, job.errors, job.status


def make_not_regular(path: Path, kind: str, tmp_path: Path) -> None:
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "broken_symlink":
        path.symlink_to(tmp_path / "missing.json")
    elif kind == "symlink_to_dev_null":
        path.symlink_to("/dev/null")
    else:  # even a link to a valid manifest: its content is not the folder's own
        target = tmp_path / "valid-manifest.json"
        target.write_text(json.dumps({"allow": ["tenant"]}), encoding="utf-8")
        path.symlink_to(target)


# -- 1. one bad file never freezes revocation ---------------------------------------------------


def test_undecodable_name_does_not_stop_a_narrowing_or_a_deletion(runtime: Runtime, docs: Path) -> None:
    write_doc(docs, "plan.md", "# Plan\n\nThe company plan for next year.")
    gone = write_doc(docs, "old.md", "# Old\n\nThe old company memo.")
    write_acl(docs, allow=["tenant"])
    run(runtime, docs)
    assert visible(runtime, member()) == {"plan.md", "old.md"}

    fd = os.open(os.path.join(os.fsencode(docs), BAD_NAME), os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"text under a name that is not utf-8")
    os.close(fd)
    write_acl(docs / "plan.md", allow=[f"group:{G1}"])  # narrowing
    gone.unlink()
    job = runtime.pipeline.run(FilesystemSource(root=docs, tenant_id=TENANT))

    assert job.status is JobStatus.COMPLETED_WITH_ERRORS, job.failure
    assert job.counts[FileOutcome.ACL_UPDATED.value] == 1 and job.counts[FileOutcome.DELETED.value] == 1
    assert [issue.path for issue in job.errors] == [BAD_NAME_SHOWN] and "UTF-8" in job.errors[0].reason
    assert visible(runtime, member()) == set()
    assert visible(runtime, member(ALICE, G1)) == {"plan.md"}
    assert runtime.jobs.get(job.id).errors[0].path == BAD_NAME_SHOWN
    assert job.id in [listed.id for listed in runtime.jobs.list()]


def test_exception_while_handling_one_file_is_that_files_error(runtime: Runtime, docs: Path) -> None:
    boom = write_doc(docs, "boom.md", "# Boom\n\nThe company boom notes.")
    write_doc(docs, "fine.md", "# Fine\n\nThe company fine notes.")
    write_acl(docs, allow=["tenant"])
    run(runtime, docs)
    boom.write_text("# Boom\n\nThe changed company boom notes.", encoding="utf-8")
    write_acl(docs / "fine.md", allow=[f"group:{G1}"])

    def parser(path: Path) -> ParsedDocument:
        if path.name == "boom.md":
            raise TypeError("a bug in a parser")
        return parse_document(path)

    pipeline = IngestionPipeline(index=runtime.index, embedder=runtime.embedder, jobs=runtime.jobs, parser=parser)
    job = pipeline.run(FilesystemSource(root=docs, tenant_id=TENANT))

    assert job.status is JobStatus.COMPLETED_WITH_ERRORS, job.failure
    assert [(e.path, "TypeError" in e.reason) for e in job.errors] == [("boom.md", True)]
    assert visible(runtime, member()) == set()  # boom.md's stale version is gone, fine.md is narrowed
    assert visible(runtime, member(ALICE, G1)) == {"fine.md"}


def test_one_corrupt_job_record_does_not_hide_the_others(tmp_path: Path) -> None:
    """The file job store (queue tests, single-machine setups): a half-written record is skipped, not fatal."""
    store = JobStore(root=tmp_path / "jobs")
    job = store.create(source="docs", tenant_id=TENANT)
    (tmp_path / "jobs" / "job-99999999-999999-corrupt.json").write_text("{half a rec", encoding="utf-8")
    assert [listed.id for listed in store.list()] == [job.id]


# -- 2. case and format of ids -----------------------------------------------------------------


def test_upper_case_deny_entry_still_denies(runtime: Runtime, docs: Path) -> None:
    write_doc(docs, "a.md", "# A\n\nThe company alpha text.")
    write_acl(docs, allow=["tenant"], deny=[f"user:{DENIED.upper()}"])
    run(runtime, docs)
    assert visible(runtime, member(DENIED)) == set() and visible(runtime, member()) == {"a.md"}


def test_upper_case_allow_entry_still_allows(runtime: Runtime, docs: Path) -> None:
    write_doc(docs, "a.md", "# A\n\nThe company alpha text.")
    write_acl(docs, allow=[f"group:{G1.upper()}"])
    run(runtime, docs)
    assert visible(runtime, member(ALICE, G1)) == {"a.md"}


def test_non_guid_object_id_is_a_manifest_error_naming_the_entry(runtime: Runtime, docs: Path) -> None:
    write_doc(docs, "a.md", "# A\n\nThe company alpha text.")
    write_acl(docs, allow=["tenant", "user:alice@example.com"])
    _, errors, _ = run(runtime, docs)
    assert [e.path for e in errors] == ["a.md"] and "user:alice@example.com" in errors[0].reason
    assert visible(runtime, member()) == set()


def test_non_guid_tenant_id_is_rejected_by_the_source(docs: Path) -> None:
    with pytest.raises(InvalidInputError):
        FilesystemSource(root=docs, tenant_id="contoso.onmicrosoft.com")


def test_upper_case_tenant_id_is_normalised_by_the_source(runtime: Runtime, docs: Path) -> None:
    write_doc(docs, "a.md", "# A\n\nThe company alpha text.")
    write_acl(docs, allow=["tenant"])
    source = FilesystemSource(root=docs, tenant_id=TENANT.upper())
    runtime.pipeline.run(source)
    assert source.tenant_id == TENANT and visible(runtime, member()) == {"a.md"}


@pytest.mark.parametrize(
    ("allow", "deny", "warning"),
    [([], [], EMPTY_ALLOW_WARNING), ([f"user:{ALICE}"], [f"user:{ALICE}"], ALL_DENIED_WARNING)],
    ids=["empty-allow", "allow-all-denied"],
)
def test_acl_that_admits_nobody_is_a_warning(
    runtime: Runtime, docs: Path, allow: list[str], deny: list[str], warning: str
) -> None:
    write_doc(docs, "a.md", "# A\n\nThe company alpha text.")
    write_acl(docs, allow=allow, deny=deny)
    job = runtime.pipeline.run(FilesystemSource(root=docs, tenant_id=TENANT))
    assert [(w.path, w.reason) for w in job.warnings] == [("a.md", warning)]


# -- 3. manifests that are not regular files -----------------------------------------------------


@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_folder_manifest_that_is_not_a_regular_file_hides_every_file_below(
    runtime: Runtime, docs: Path, tmp_path: Path, kind: str
) -> None:
    write_acl(docs, allow=["tenant"])
    write_doc(docs, "top.md", "# Top\n\nThe company top text.")
    write_doc(docs, "team/a.md", "# A\n\nThe company team text.")
    write_doc(docs, "team/sub/b.md", "# B\n\nThe company sub-team text.")
    write_acl(docs / "team" / "sub", allow=["tenant"])  # a deeper valid manifest does not rescue it
    make_not_regular(docs / "team" / ".acl.json", kind, tmp_path)
    with deadline(60):
        _, errors, status = run(runtime, docs)
    assert status is JobStatus.COMPLETED_WITH_ERRORS
    assert {e.path for e in errors} == {"team/a.md", "team/sub/b.md"}
    assert all("team/.acl.json" in e.reason for e in errors)
    assert visible(runtime, member(ALICE, G1)) == {"top.md"}


@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_sidecar_that_is_not_a_regular_file_hides_its_file(
    runtime: Runtime, docs: Path, tmp_path: Path, kind: str
) -> None:
    write_acl(docs, allow=["tenant"])
    write_doc(docs, "a.md", "# A\n\nThe company alpha text.")
    write_doc(docs, "b.md", "# B\n\nThe company beta text.")
    make_not_regular(docs / "a.md.acl.json", kind, tmp_path)
    with deadline(60):
        _, errors, _ = run(runtime, docs)
    assert [e.path for e in errors] == ["a.md"] and "a.md.acl.json" in errors[0].reason
    assert visible(runtime, member()) == {"b.md"}


# -- 4. symbolic links inside the tree ----------------------------------------------------------


def test_symlink_inside_the_tree_is_never_indexed_and_is_reported(runtime: Runtime, docs: Path) -> None:
    write_doc(docs, "a.md", "# A\n\nThe company alpha text.")
    (docs / "alias.md").symlink_to("a.md")
    write_acl(docs, allow=["tenant"])
    job = runtime.pipeline.run(FilesystemSource(root=docs, tenant_id=TENANT))
    assert indexed_paths(runtime, FilesystemSource(root=docs, tenant_id=TENANT)) == {"a.md"}
    assert [(w.path, "symbolic link" in w.reason) for w in job.warnings] == [("alias.md", True)]


def test_link_to_a_restricted_file_never_publishes_it_under_the_links_acl(runtime: Runtime, docs: Path) -> None:
    write_doc(docs, "restricted/pay.md", "# Pay\n\nThe company salary bands.")
    write_acl(docs / "restricted", allow=[f"group:{G1}"])
    notes = write_doc(docs, "team/notes.md", "# Notes\n\nThe company team notes.")
    write_acl(docs / "team", allow=["tenant"])
    run(runtime, docs)
    notes.unlink()
    notes.symlink_to(Path("..") / "restricted" / "pay.md")  # an earlier run indexed this path
    job = runtime.pipeline.run(FilesystemSource(root=docs, tenant_id=TENANT))
    assert job.counts[FileOutcome.DELETED.value] == 1
    assert visible(runtime, member()) == set()
    assert visible(runtime, member(ALICE, G1)) == {"restricted/pay.md"}


# -- 5. manifests above the job's folder, overlapping jobs -------------------------------------


@pytest.fixture()
def scoped_tree(docs: Path) -> Path:
    write_acl(docs, allow=["tenant"], deny=[f"user:{DENIED}"])
    write_doc(docs, "top.md", "# Top\n\nThe company top text.")
    write_doc(docs, "team/plan.md", "# Plan\n\nThe company team plan.")
    write_acl(docs / "team", allow=[f"group:{G1}"], inherit=True)
    return docs


def test_deny_above_the_scope_applies_to_a_scoped_job(runtime: Runtime, scoped_tree: Path) -> None:
    run(runtime, scoped_tree, scope=Path("team"))
    assert visible(runtime, member(DENIED, G1)) == set()
    assert visible(runtime, member(ALICE, G1)) == {"team/plan.md"}


def test_overlapping_jobs_index_a_file_once_under_one_acl(runtime: Runtime, scoped_tree: Path) -> None:
    source, _, _ = run(runtime, scoped_tree)
    chunks = runtime.index.count()
    scoped = runtime.pipeline.run(FilesystemSource(root=scoped_tree, tenant_id=TENANT, scope=scoped_tree / "team"))
    assert scoped.counts[FileOutcome.UNCHANGED.value] == 1 and scoped.chunks_written == 0
    assert runtime.index.count() == chunks and indexed_paths(runtime, source) == {"top.md", "team/plan.md"}


def test_scoped_job_deletes_only_documents_under_its_scope(runtime: Runtime, scoped_tree: Path) -> None:
    source, _, _ = run(runtime, scoped_tree)
    (scoped_tree / "top.md").unlink()
    (scoped_tree / "team" / "plan.md").unlink()
    job = runtime.pipeline.run(FilesystemSource(root=scoped_tree, tenant_id=TENANT, scope=Path("team")))
    assert job.counts[FileOutcome.DELETED.value] == 1
    assert indexed_paths(runtime, source) == {"top.md"}  # outside the scope: left to a job that walks it


def test_job_record_names_the_source_without_the_server_path(
    runtime: Runtime, scoped_tree: Path, tmp_path: Path
) -> None:
    job = runtime.pipeline.run(FilesystemSource(root=scoped_tree, tenant_id=TENANT, scope=Path("team")))
    stored = json.dumps(runtime.jobs.get(job.id).to_dict())
    assert job.source == "docs/team" and str(tmp_path) not in stored


@pytest.mark.parametrize("scope", ["..", "/etc", "missing", ".hidden"])
def test_scope_must_be_a_walkable_folder_inside_the_root(scoped_tree: Path, scope: str) -> None:
    (scoped_tree / ".hidden").mkdir()
    with pytest.raises(InvalidInputError):
        FilesystemSource(root=scoped_tree, tenant_id=TENANT, scope=Path(scope))


# -- 6. duplicate keys, wrong types, near-miss sidecars ----------------------------------------


def test_duplicate_key_in_a_manifest_is_an_error(runtime: Runtime, docs: Path) -> None:
    write_doc(docs, "a.md", "# A\n\nThe company alpha text.")
    (docs / ".acl.json").write_text(f'{{"deny": ["user:{DENIED}"], "allow": ["tenant"], "deny": []}}', encoding="utf-8")
    _, errors, _ = run(runtime, docs)
    assert [e.path for e in errors] == ["a.md"] and "duplicate key 'deny'" in errors[0].reason
    assert visible(runtime, member(DENIED)) == set() and visible(runtime, member()) == set()


@pytest.mark.parametrize(
    "text",
    [
        '{"allow": "tenant"}',
        '{"allow": ["tenant"], "inherit": "yes"}',
        '{"allow": ["tenant", 1]}',
        '{"allow": ["tenant"], "deny": [null]}',
        '{"allow": ["tenant"], "Deny": []}',
        '["tenant"]',
    ],
)
def test_manifest_with_wrong_types_is_an_error(runtime: Runtime, docs: Path, text: str) -> None:
    write_doc(docs, "a.md", "# A\n\nThe company alpha text.")
    (docs / ".acl.json").write_text(text, encoding="utf-8")
    _, errors, _ = run(runtime, docs)
    assert [e.path for e in errors] == ["a.md"] and visible(runtime, member()) == set()


CAFE_NFC = unicodedata.normalize("NFC", "café.md")
CAFE_NFD = unicodedata.normalize("NFD", "café.md")


@pytest.mark.parametrize(
    ("document", "sidecar"),
    [
        ("plan.md", "plan.md.ACL.json"),
        ("plan.md", "PLAN.MD.acl.json"),
        (CAFE_NFC, CAFE_NFD + ".acl.json"),
        (CAFE_NFD, CAFE_NFC + ".acl.json"),
    ],
    ids=["suffix-case", "name-case", "nfc-file-nfd-sidecar", "nfd-file-nfc-sidecar"],
)
def test_near_miss_sidecar_hides_the_file_it_was_meant_for(
    runtime: Runtime, docs: Path, document: str, sidecar: str
) -> None:
    write_acl(docs, allow=["tenant"])
    write_doc(docs, document, "# Doc\n\nThe company document text.")
    write_doc(docs, "other.md", "# Other\n\nThe company other text.")
    (docs / sidecar).write_text(json.dumps({"allow": ["tenant"], "deny": [f"user:{DENIED}"]}), encoding="utf-8")
    _, errors, _ = run(runtime, docs)
    assert [e.path for e in errors] == [document] and "letter case or Unicode normalisation" in errors[0].reason
    assert visible(runtime, member(DENIED)) == {"other.md"} and visible(runtime, member()) == {"other.md"}


def test_manifest_suffix_in_any_case_is_never_a_document(docs: Path) -> None:
    write_doc(docs, "notes.ACL.JSON", '{"allow": ["tenant"]}')
    write_doc(docs, "a.md", "# A\n\nAlpha.")
    assert is_manifest(Path("notes.Acl.Json"))
    assert [item.path for item in FilesystemSource(root=docs, tenant_id=TENANT).items()] == ["a.md"]


# -- 7. one choke point ---------------------------------------------------------------------


def test_access_lists_for_files_are_built_only_by_the_decision_module() -> None:
    builders = re.compile(r"\bAccessList\s*(\(|\.nobody\s*\()")
    offenders = [
        path.relative_to(REPO_ROOT).as_posix()
        for path in sorted((REPO_ROOT / "ingest").rglob("*.py"))
        if path.name != "acl_decision.py" and builders.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
    assert "decision" in {field.name for field in fields(SourceItem)}
    assert not {"acl", "acl_error"} & {field.name for field in fields(SourceItem)}


def test_reused_source_reads_narrowed_manifests_afresh(runtime: Runtime, docs: Path) -> None:
    write_doc(docs, "a.md", "# A\n\nThe company alpha text.")
    write_acl(docs, allow=["tenant"])
    source = FilesystemSource(root=docs, tenant_id=TENANT)
    runtime.pipeline.run(source)
    write_acl(docs, allow=[f"group:{G1}"])
    job = runtime.pipeline.run(source)  # the same source object, e.g. a scheduled re-run
    assert job.counts[FileOutcome.ACL_UPDATED.value] == 1 and visible(runtime, member()) == set()


def test_folder_with_undecodable_name_is_an_error_and_is_not_walked(docs: Path) -> None:
    folder = os.path.join(os.fsencode(docs), b"team-\xfe")
    os.mkdir(folder)
    fd = os.open(os.path.join(folder, b"inside.md"), os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)
    [item] = FilesystemSource(root=docs, tenant_id=TENANT).items()
    assert item.path == "team-\\xfe" and isinstance(item.decision, Nobody) and item.decision.cause.is_error
