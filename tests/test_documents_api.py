"""Cited passages and documents: served whole to callers who may read them, a 404 indistinguishable from a
missing id to everyone else (other tenant, other user, deny entry, removed group, no ACL, odd ids)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from acl.dev.idp import DevIdentityProvider
from acl.principal import Principal
from clearance.compose import Runtime, build_api, build_runtime
from clearance.settings import IndexSettings, Settings, StoreSettings
from index.embedding import SentenceTransformerEmbedder
from ingest.jobs import JobStatus
from ingest.pipeline import document_id
from ingest.source import FilesystemSource
from retrieval.documents import DocumentReader
from store.audit_log import RecordKind
from store.audit_query import AuditQuery
from tests import store_fixtures
from tests.conftest import OTHER_TENANT, TENANT, write_doc
from tests.store_fixtures import StoreTarget
from tests.test_api import assert_problem, auth
from tests.test_permissions import ALICE, DENIED, ENG, FIN, GRACE, build_corpus

target = store_fixtures.target
MISSING = "00000000-0000-4000-8000-000000000000"
LONG = "\n\n".join(
    f"## Part {n}\n\n"
    + " ".join(f"Travel rule {n}.{i}: receipts above {n * 10 + i} euros need approval." for i in range(25))
    for n in range(1, 5)
)
XSS = '# Tricky\n\nThe <script>window.pwned=1</script> and <img src=x onerror="window.pwned=2"> policy.'


def build_documents_corpus(root: Path) -> Path:
    build_corpus(root)
    write_doc(root, "company/travel.md", "# Travel policy\n\n" + LONG)
    write_doc(
        root,
        "company/page.html",
        "<html><body><h1>Canteen</h1><script>alert(1)</script><p>Lunch at noon.</p></body></html>",
    )
    write_doc(root, "company/tricky.md", XSS)
    return root


def doc_id(root: Path, path: str) -> str:
    return document_id(tenant_id=TENANT, source_id=FilesystemSource(root=root, tenant_id=TENANT).source_id, path=path)


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    return build_documents_corpus(tmp_path / "corpus")


@pytest.fixture()
def ingested(runtime: Runtime, corpus: Path) -> Runtime:
    job = runtime.pipeline.run(FilesystemSource(root=corpus, tenant_id=TENANT))
    assert job.status is JobStatus.SUCCEEDED, job.errors
    return runtime


@pytest.fixture()
def client(ingested: Runtime) -> TestClient:
    return TestClient(build_api(ingested.settings, runtime=ingested))


def get_doc(client: TestClient, headers: dict[str, str], doc: str) -> Any:
    return client.get(f"/v1/documents/{doc}", headers=headers)


def chunk_of(runtime: Runtime, principal: Principal, doc: str, *, index: int = 0) -> str:
    reader = runtime.api_components().documents
    assert reader is not None
    return reader.document(principal, doc).chunks[index].passage.chunk_id


def assert_not_found(response: Any) -> None:
    body = assert_problem(response, 404)
    assert body["detail"] == "no such document, or you may not read it"  # one text for missing and forbidden


# -- readers get the document ------------------------------------------------------------------------


def test_reader_gets_the_original_file_unchanged(client: TestClient, idp: DevIdentityProvider, corpus: Path) -> None:
    response = get_doc(client, auth(idp, FIN), doc_id(corpus, "finance/q3.md"))
    assert response.status_code == 200
    assert response.content == (corpus / "finance/q3.md").read_bytes()
    assert response.headers["x-clearance-rendition"] == "original"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"].startswith("sandbox")
    assert "q3.md" in response.headers["content-disposition"]


def test_html_is_downloaded_never_rendered_in_this_origin(
    client: TestClient, idp: DevIdentityProvider, corpus: Path
) -> None:
    response = get_doc(client, auth(idp), doc_id(corpus, "company/page.html"))
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment")
    assert "sandbox" in response.headers["content-security-policy"]
    assert (
        not response.headers["content-type"].startswith("text/html")
        or "sandbox" in response.headers["content-security-policy"]
    )


def test_cited_passage_is_whole_with_its_neighbours(
    client: TestClient, ingested: Runtime, idp: DevIdentityProvider, corpus: Path
) -> None:
    member = Principal(tenant_id=TENANT, object_id=ALICE)
    travel = doc_id(corpus, "company/travel.md")
    document = ingested.api_components().documents.document(member, travel)  # type: ignore[union-attr]
    assert len(document.chunks) >= 3, "the travel policy must span several chunks"
    middle = document.chunks[1]
    body = client.get(f"/v1/passages/{middle.passage.chunk_id}", headers=auth(idp)).json()
    assert body["text"] == middle.passage.text
    assert body["doc_id"] == travel
    assert [c["chunk_id"] for c in body["before"]] == [document.chunks[0].passage.chunk_id]
    assert [c["chunk_id"] for c in body["after"]] == [document.chunks[2].passage.chunk_id]
    assert "acl_allow" not in str(body) and "source_id" not in str(body) and str(corpus) not in str(body)


# -- everyone else gets the same 404 -------------------------------------------------------------------


def test_missing_and_forbidden_documents_answer_alike(
    client: TestClient, idp: DevIdentityProvider, corpus: Path
) -> None:
    missing = get_doc(client, auth(idp), MISSING)
    forbidden = get_doc(client, auth(idp), doc_id(corpus, "finance/q3.md"))  # alice is not in finance
    assert_not_found(missing)
    assert_not_found(forbidden)
    assert missing.json() == forbidden.json()
    assert {k: v for k, v in missing.headers.items() if k not in ("date", "content-length")} == {
        k: v for k, v in forbidden.headers.items() if k not in ("date", "content-length")
    }


def test_user_outside_group_cannot_read_document_or_passage(
    client: TestClient, ingested: Runtime, idp: DevIdentityProvider, corpus: Path
) -> None:
    q3 = doc_id(corpus, "finance/q3.md")
    chunk = chunk_of(ingested, Principal(tenant_id=TENANT, object_id=ALICE, groups=frozenset({FIN})), q3)
    assert get_doc(client, auth(idp, ENG), q3).status_code == 404
    assert_not_found(client.get(f"/v1/passages/{chunk}", headers=auth(idp, ENG)))
    assert client.get(f"/v1/passages/{chunk}", headers=auth(idp, FIN)).status_code == 200


def test_user_of_another_tenant_with_the_same_ids_cannot_read(
    client: TestClient, idp: DevIdentityProvider, corpus: Path
) -> None:
    for path in ("finance/q3.md", "company/handbook.md"):
        assert_not_found(get_doc(client, auth(idp, FIN, tenant=OTHER_TENANT), doc_id(corpus, path)))


def test_deny_entry_beats_group_allow(client: TestClient, idp: DevIdentityProvider, corpus: Path) -> None:
    board = doc_id(corpus, "finance/board.md")
    assert get_doc(client, auth(idp, FIN), board).status_code == 200
    assert_not_found(get_doc(client, auth(idp, FIN, oid=GRACE), board))  # denied on the file
    assert_not_found(get_doc(client, auth(idp, FIN, oid=DENIED), doc_id(corpus, "finance/q3.md")))  # on the folder


def test_user_removed_from_group_loses_access_with_the_next_token(
    client: TestClient, idp: DevIdentityProvider, corpus: Path
) -> None:
    q3 = doc_id(corpus, "finance/q3.md")
    assert get_doc(client, auth(idp, FIN), q3).status_code == 200
    assert_not_found(get_doc(client, auth(idp), q3))


def test_document_without_acl_is_visible_to_nobody(client: TestClient, idp: DevIdentityProvider, corpus: Path) -> None:
    secret = doc_id(corpus, "drafts/secret.md")
    assert_not_found(get_doc(client, auth(idp, FIN, ENG, roles=("Clearance.Admin", "Clearance.Auditor")), secret))


@pytest.mark.parametrize(
    "bad",
    [
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "..",
        "company%2Fhandbook.md",
        "%00",
        "{00000000-0000-4000-8000-000000000000}",
        "00000000000040008000000000000000",
        "urn:uuid:00000000-0000-4000-8000-000000000000",
        "x" * 5000,
    ],
)
def test_odd_ids_name_nothing(client: TestClient, idp: DevIdentityProvider, bad: str) -> None:
    for route in ("documents", "passages"):
        response = client.get(f"/v1/{route}/{bad}", headers=auth(idp))
        assert response.status_code == 404, (route, bad, response.text)
        assert "passwd" not in response.text and "handbook" not in response.text


def test_upper_case_id_is_the_same_document(client: TestClient, idp: DevIdentityProvider, corpus: Path) -> None:
    q3 = doc_id(corpus, "finance/q3.md")
    assert get_doc(client, auth(idp, FIN), q3.upper()).status_code == 200
    assert_not_found(get_doc(client, auth(idp), q3.upper()))


def test_routes_need_a_token(client: TestClient, corpus: Path) -> None:
    assert_problem(client.get(f"/v1/documents/{doc_id(corpus, 'company/handbook.md')}"), 401)
    assert_problem(client.get(f"/v1/passages/{MISSING}"), 401)


# -- the original only when it is exactly what was indexed -----------------------------------------------


def test_file_changed_since_ingestion_is_served_as_indexed_text(
    client: TestClient, idp: DevIdentityProvider, corpus: Path
) -> None:
    (corpus / "finance/q3.md").write_text("# Q3\n\nNEW UNREVIEWED NUMBERS 99 million.", encoding="utf-8")
    response = get_doc(client, auth(idp, FIN), doc_id(corpus, "finance/q3.md"))
    assert response.status_code == 200
    assert response.headers["x-clearance-rendition"] == "text"
    assert response.headers["content-type"].startswith("text/plain")
    assert "12.4 million" in response.text and "99 million" not in response.text


def test_a_link_in_place_of_the_file_is_not_followed(
    client: TestClient, idp: DevIdentityProvider, corpus: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.md"
    q3 = corpus / "finance/q3.md"
    outside.write_bytes(q3.read_bytes())  # same bytes, same hash: only the link check can refuse it
    q3.unlink()
    os.symlink(outside, q3)
    response = get_doc(client, auth(idp, FIN), doc_id(corpus, "finance/q3.md"))
    assert response.headers["x-clearance-rendition"] == "text"


def test_a_root_no_longer_allowed_serves_text_only(ingested: Runtime, corpus: Path) -> None:
    reader = DocumentReader(index=ingested.index, allowed_roots={}, max_file_bytes=10_000_000, max_chunks=100)
    member = Principal(tenant_id=TENANT, object_id=ALICE)
    document = reader.document(member, doc_id(corpus, "company/handbook.md"))
    assert reader.original(member, document) is None
    assert "Riverside Park" in document.text()


def test_a_file_over_the_limit_serves_text_only(ingested: Runtime, corpus: Path) -> None:
    reader = DocumentReader(index=ingested.index, allowed_roots={TENANT: [corpus]}, max_file_bytes=10, max_chunks=100)
    member = Principal(tenant_id=TENANT, object_id=ALICE)
    document = reader.document(member, doc_id(corpus, "company/handbook.md"))
    assert reader.original(member, document) is None
    roomy = DocumentReader(
        index=ingested.index, allowed_roots={TENANT: [corpus]}, max_file_bytes=10_000, max_chunks=100
    )
    assert roomy.original(member, document) is not None


def test_reads_on_the_edge_engine_are_filtered_alike(
    settings: Settings, embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    edge = settings.model_copy(update={"index": IndexSettings(location=f"edge:{tmp_path / 'edge'}")})
    runtime = build_runtime(edge, embedder=embedder)
    try:
        corpus = build_documents_corpus(tmp_path / "corpus")
        runtime.pipeline.run(FilesystemSource(root=corpus, tenant_id=TENANT))
        reader = runtime.api_components().documents
        assert reader is not None
        finance = Principal(tenant_id=TENANT, object_id=ALICE, groups=frozenset({FIN}))
        q3 = doc_id(corpus, "finance/q3.md")
        assert "12.4 million" in reader.document(finance, q3).text()
        chunk = reader.document(finance, q3).chunks[0].passage.chunk_id
        assert reader.passage(finance, chunk).chunk.passage.doc_id == q3
        for outsider in (
            Principal(tenant_id=TENANT, object_id=ALICE),
            Principal(tenant_id=OTHER_TENANT, object_id=ALICE, groups=frozenset({FIN})),
            Principal(tenant_id=TENANT, object_id=DENIED, groups=frozenset({FIN})),
        ):
            with pytest.raises(Exception, match="no such document"):
                reader.document(outsider, q3)
            with pytest.raises(Exception, match="no such document"):
                reader.passage(outsider, chunk)
    finally:
        runtime.close()


# -- every read is audited, on both store backends -----------------------------------------------------------


@pytest.fixture()
def audited(
    target: StoreTarget, settings: Settings, embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> Iterator[Runtime]:
    store = StoreSettings(url=SecretStr(target.url), schema_name=target.schema)
    runtime = build_runtime(settings.model_copy(update={"store": store}), embedder=embedder)
    try:
        runtime.pipeline.run(FilesystemSource(root=build_documents_corpus(tmp_path / "corpus"), tenant_id=TENANT))
        yield runtime
    finally:
        runtime.close()


def test_every_read_is_audited_in_the_readers_tenant(audited: Runtime, tmp_path: Path) -> None:
    assert audited.dev is not None and audited.store is not None
    idp, corpus = audited.dev.idp, tmp_path / "corpus"
    client = TestClient(build_api(audited.settings, runtime=audited))
    q3 = doc_id(corpus, "finance/q3.md")
    assert get_doc(client, auth(idp, FIN), q3).status_code == 200
    assert get_doc(client, auth(idp), q3).status_code == 404
    assert get_doc(client, auth(idp, FIN, tenant=OTHER_TENANT), q3).status_code == 404
    assert client.get(f"/v1/passages/{MISSING}", headers=auth(idp)).status_code == 404
    reads = [
        r
        for r in audited.store.reader.page(AuditQuery(tenant_id=TENANT, kinds=(RecordKind.ADMIN,)))
        if r.action in ("document.read", "passage.read")
    ]
    assert [(r.action, r.outcome, r.record["target"]) for r in reads] == [
        ("document.read", "ok", q3),
        ("document.read", "not_found", q3),
        ("passage.read", "not_found", MISSING),
    ]
    assert reads[0].record["detail"]["rendition"] == "original"
    other = [r for r in audited.store.reader.page(AuditQuery(tenant_id=OTHER_TENANT, kinds=(RecordKind.ADMIN,)))]
    assert [(r.action, r.outcome) for r in other] == [("document.read", "not_found")]
