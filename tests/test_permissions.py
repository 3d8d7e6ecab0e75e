"""The permission matrix: who may retrieve which chunk, written as rules.

Every test searches through the real index with the real embedder; top_k is
larger than the corpus, so whatever comes back is exactly what the security
filter lets through.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from qdrant_client import models

from acl.access import AccessList
from acl.groups import CachedGroupResolver
from acl.principal import Principal, group_key, tenant_key, user_key
from clearance.compose import Runtime
from core.errors import AccessDeniedError, GroupResolutionError
from ingest.jobs import FileOutcome, JobStatus
from ingest.pipeline import document_id
from ingest.source import FilesystemSource
from tests.conftest import OTHER_TENANT, TENANT, write_acl, write_doc

ALICE, GRACE, DENIED, LEAD, GUEST = (f"b0000000-0000-4000-8000-00000000000{i}" for i in range(1, 6))
FIN, ENG, LEADS, ATLAS = (f"e{i}000000-0000-4000-8000-00000000000{i}" for i in range(1, 5))


def build_corpus(root: Path) -> Path:
    write_doc(root, "company/handbook.md", "# Handbook\n\nThe company picnic is on 14 June at Riverside Park.")
    write_acl(root / "company", allow=["tenant"])
    write_doc(root, "finance/q3.md", "# Q3 results\n\nQ3 revenue was 12.4 million euros, up 8 percent.")
    board = write_doc(root, "finance/board.md", "# Board pay\n\nBoard compensation totals 1.1 million euros.")
    write_acl(root / "finance", allow=[f"group:{FIN}"], deny=[f"user:{DENIED}"])
    write_acl(board, allow=[], deny=[f"user:{GRACE}"], inherit=True)
    write_doc(root, "eng/arch.md", "# Architecture\n\nThe robot fleet controller runs on Kubernetes.")
    launch = write_doc(root, "eng/launch.md", "# Atlas launch\n\nAtlas launches on 3 March with 40 robots.")
    write_acl(root / "eng", allow=[f"group:{ENG}"])
    write_acl(launch, allow=[f"group:{ATLAS}"], inherit=True)
    write_doc(root, "eng/leads/calibration.md", "# Calibration\n\nPerformance calibration closes on 30 May.")
    write_acl(root / "eng" / "leads", allow=[f"group:{LEADS}"], inherit=False)
    write_doc(root, "drafts/secret.md", "# Draft\n\nThe unannounced acquisition target is Nimbus Robotics.")
    return root


ALL_DOCS = {
    "company/handbook.md",
    "finance/q3.md",
    "finance/board.md",
    "eng/arch.md",
    "eng/launch.md",
    "eng/leads/calibration.md",
    "drafts/secret.md",
}


@pytest.fixture()
def corpus_runtime(runtime: Runtime, tmp_path: Path) -> Runtime:
    source = FilesystemSource(root=build_corpus(tmp_path / "corpus"), tenant_id=TENANT)
    job = runtime.pipeline.run(source)
    assert job.status is JobStatus.SUCCEEDED, job.errors
    assert job.counts[FileOutcome.ADDED.value] == len(ALL_DOCS)
    return runtime


def visible(
    runtime: Runtime, principal: Principal, query: str = "company information", narrowing: models.Filter | None = None
) -> set[str]:
    vector = runtime.embedder.embed_query(query)
    passages = runtime.index.search(principal, vector, top_k=100, narrowing=narrowing)
    return {p.source for p in passages}


def member(oid: str = ALICE, *groups: str, tenant: str = TENANT, guest: bool = False) -> Principal:
    return Principal(tenant_id=tenant, object_id=oid, groups=frozenset(groups), guest=guest)


def test_tenant_member_without_groups_sees_only_tenant_wide_documents(corpus_runtime: Runtime) -> None:
    assert visible(corpus_runtime, member()) == {"company/handbook.md"}


def test_group_member_sees_group_folder_and_inherited_files(corpus_runtime: Runtime) -> None:
    assert visible(corpus_runtime, member(ALICE, FIN)) == {"company/handbook.md", "finance/q3.md", "finance/board.md"}


def test_user_outside_group_cannot_retrieve_group_chunk(corpus_runtime: Runtime) -> None:
    assert not visible(corpus_runtime, member(ALICE, ENG)) & {"finance/q3.md", "finance/board.md"}


def test_deny_entry_on_folder_beats_group_allow(corpus_runtime: Runtime) -> None:
    assert visible(corpus_runtime, member(DENIED, FIN)) == {"company/handbook.md"}


def test_inherited_file_deny_hides_only_that_file(corpus_runtime: Runtime) -> None:
    assert visible(corpus_runtime, member(GRACE, FIN)) == {"company/handbook.md", "finance/q3.md"}


def test_non_inheriting_subfolder_excludes_parent_group(corpus_runtime: Runtime) -> None:
    assert "eng/leads/calibration.md" not in visible(corpus_runtime, member(ALICE, ENG))
    assert visible(corpus_runtime, member(LEAD, LEADS)) == {"company/handbook.md", "eng/leads/calibration.md"}


def test_inheriting_file_override_adds_its_group_to_the_folder_acl(corpus_runtime: Runtime) -> None:
    assert visible(corpus_runtime, member(ALICE, ENG)) == {"company/handbook.md", "eng/arch.md", "eng/launch.md"}
    assert visible(corpus_runtime, member(LEAD, ATLAS)) == {"company/handbook.md", "eng/launch.md"}


def test_guest_is_not_a_tenant_member_but_keeps_group_access(corpus_runtime: Runtime) -> None:
    assert visible(corpus_runtime, member(GUEST, ATLAS, guest=True)) == {"eng/launch.md"}
    assert visible(corpus_runtime, member(GUEST, guest=True)) == set()


def test_document_without_acl_is_visible_to_nobody(corpus_runtime: Runtime) -> None:
    everyone = member(ALICE, FIN, ENG, LEADS, ATLAS)
    assert "drafts/secret.md" not in visible(corpus_runtime, everyone, "unannounced acquisition target")
    assert visible(corpus_runtime, everyone) == ALL_DOCS - {"drafts/secret.md"}


def test_no_acl_document_is_reported_by_the_job(runtime: Runtime, tmp_path: Path) -> None:
    job = runtime.pipeline.run(FilesystemSource(root=build_corpus(tmp_path / "c"), tenant_id=TENANT))
    assert [w.path for w in job.warnings] == ["drafts/secret.md"]


def test_user_of_another_tenant_with_the_same_ids_sees_nothing(corpus_runtime: Runtime) -> None:
    outsider = member(ALICE, FIN, ENG, LEADS, ATLAS, tenant=OTHER_TENANT)
    assert visible(corpus_runtime, outsider) == set()


def test_user_removed_from_group_loses_access_with_the_next_token(corpus_runtime: Runtime) -> None:
    assert "finance/q3.md" in visible(corpus_runtime, member(ALICE, FIN))
    assert "finance/q3.md" not in visible(corpus_runtime, member(ALICE))


def test_caller_filter_cannot_widen_access(corpus_runtime: Runtime) -> None:
    # A narrowing filter that tries every trick: match other ACL keys, another tenant, staged chunks.
    widen = models.Filter(
        should=[
            models.FieldCondition(key="acl_allow", match=models.MatchAny(any=[group_key(TENANT, FIN)])),
            models.FieldCondition(key="tenant_id", match=models.MatchValue(value=OTHER_TENANT)),
            models.FieldCondition(key="state", match=models.MatchValue(value="staged")),
            models.IsEmptyCondition(is_empty=models.PayloadField(key="acl_allow")),
        ]
    )
    assert visible(corpus_runtime, member(), narrowing=widen) <= {"company/handbook.md"}
    narrow = models.Filter(must=[models.FieldCondition(key="path", match=models.MatchValue(value="finance/q3.md"))])
    assert visible(corpus_runtime, member(ALICE, FIN), narrowing=narrow) == {"finance/q3.md"}
    assert visible(corpus_runtime, member(), narrowing=narrow) == set()


MATRIX_PRINCIPALS = [
    member(o, *g, guest=guest)
    for o in (ALICE, GRACE, DENIED, GUEST)
    for g in ((), (FIN,), (ENG, ATLAS), (LEADS,))
    for guest in (False, True)
]


@pytest.mark.parametrize(
    "principal",
    MATRIX_PRINCIPALS,
    ids=[
        f"{p.object_id[-1]}-{'+'.join(sorted(p.groups)) or 'nogroups'}-{'guest' if p.guest else 'member'}"
        for p in MATRIX_PRINCIPALS
    ],
)
def test_index_filter_agrees_with_the_reference_rule(
    corpus_runtime: Runtime, principal: Principal, tmp_path: Path
) -> None:
    """Each principal of the matrix is its own test: what the index returns is exactly what the rule permits."""
    acls = {p: _acl_of(corpus_runtime, tmp_path / "corpus", p) for p in ALL_DOCS}
    expected = {p for p, acl in acls.items() if acl.permits(principal.access_keys())}
    assert visible(corpus_runtime, principal) == expected


def _doc_id(root: Path, path: str) -> str:
    # Job records no longer carry the server's path, so the corpus root is passed in.
    return document_id(tenant_id=TENANT, source_id=FilesystemSource(root=root, tenant_id=TENANT).source_id, path=path)


def _acl_of(runtime: Runtime, root: Path, path: str) -> AccessList:
    acl = runtime.index.stored_acl(_doc_id(root, path))  # the stored ACL payload, as the index holds it
    assert acl is not None, path
    return acl


def test_stored_acl_keys_are_tenant_qualified() -> None:
    assert user_key(TENANT, ALICE) == f"user:{TENANT}/{ALICE}"
    assert tenant_key(TENANT) != tenant_key(OTHER_TENANT)
    with pytest.raises(ValueError):
        group_key(TENANT, "x/../../tenant")


def test_principal_with_separator_in_an_id_is_rejected() -> None:
    with pytest.raises(ValueError):
        Principal(tenant_id=TENANT, object_id="a/b")
    with pytest.raises(ValueError):
        Principal(tenant_id="", object_id=ALICE)
    with pytest.raises(ValueError):
        Principal(tenant_id=TENANT, object_id=ALICE, groups=frozenset({"g:1"}))


def test_filter_without_principals_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    from acl import index_filter

    class Keyless(Principal):
        def access_keys(self) -> frozenset[str]:
            return frozenset()

    with pytest.raises(AccessDeniedError):
        index_filter.security_filter(Keyless(tenant_id=TENANT, object_id=ALICE))


def test_acl_only_change_rewrites_payload_without_reembedding(corpus_runtime: Runtime, tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    chunk_ids_before = _chunk_ids(corpus_runtime, tmp_path / "corpus", "finance/q3.md")
    write_acl(root / "finance", allow=[f"group:{ENG}"])  # finance moves to engineering
    job = corpus_runtime.pipeline.run(FilesystemSource(root=root, tenant_id=TENANT))
    assert job.counts[FileOutcome.ACL_UPDATED.value] == 2
    assert job.counts[FileOutcome.UPDATED.value] == 0 and job.chunks_written == 0
    assert _chunk_ids(corpus_runtime, tmp_path / "corpus", "finance/q3.md") == chunk_ids_before
    assert "finance/q3.md" not in visible(corpus_runtime, member(ALICE, FIN))
    assert "finance/q3.md" in visible(corpus_runtime, member(ALICE, ENG))


def test_deleted_file_is_removed_from_the_index(corpus_runtime: Runtime, tmp_path: Path) -> None:
    (tmp_path / "corpus" / "finance" / "q3.md").unlink()
    job = corpus_runtime.pipeline.run(FilesystemSource(root=tmp_path / "corpus", tenant_id=TENANT))
    assert job.counts[FileOutcome.DELETED.value] == 1
    assert "finance/q3.md" not in visible(corpus_runtime, member(ALICE, FIN), "Q3 revenue")
    assert _chunk_ids(corpus_runtime, tmp_path / "corpus", "finance/q3.md") == set()


def test_broken_manifest_fails_closed_and_removes_earlier_chunks(corpus_runtime: Runtime, tmp_path: Path) -> None:
    (tmp_path / "corpus" / "finance" / ".acl.json").write_text("{not json", encoding="utf-8")
    job = corpus_runtime.pipeline.run(FilesystemSource(root=tmp_path / "corpus", tenant_id=TENANT))
    assert {e.path for e in job.errors} == {"finance/q3.md", "finance/board.md"}
    assert all("manifest" in e.reason for e in job.errors)
    assert visible(corpus_runtime, member(ALICE, FIN)) == {"company/handbook.md"}


def _chunk_ids(runtime: Runtime, root: Path, path: str) -> set[str]:
    return runtime.index.chunk_ids(_doc_id(root, path))


class _Flaky:
    def __init__(self) -> None:
        self.groups: frozenset[str] = frozenset({FIN})
        self.fail = False

    def member_groups(self, tenant_id: str, object_id: str) -> frozenset[str]:
        if self.fail:
            raise GroupResolutionError("directory down")
        return self.groups


def test_group_cache_forgets_a_removed_group_after_its_ttl() -> None:
    now = [0.0]
    inner = _Flaky()
    cache = CachedGroupResolver(inner=inner, ttl_seconds=60, clock=lambda: now[0])
    assert cache.member_groups(TENANT, ALICE) == {FIN}
    inner.groups = frozenset()
    now[0] = 61.0
    assert cache.member_groups(TENANT, ALICE) == frozenset()


def test_group_cache_does_not_cache_failures() -> None:
    inner = _Flaky()
    inner.fail = True
    cache = CachedGroupResolver(inner=inner, ttl_seconds=60)
    with pytest.raises(GroupResolutionError):
        cache.member_groups(TENANT, ALICE)
    inner.fail = False
    assert cache.member_groups(TENANT, ALICE) == {FIN}
