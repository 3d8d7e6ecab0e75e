"""One suite, every chunk-index implementation: the same rules must hold whichever engine answers.

Runs against qdrant-client local (``:memory:``), Qdrant's in-process engine
(``EdgeChunkIndex`` in a temporary folder) and, when ``CLEARANCE_TEST_QDRANT_URL``
names one, a Qdrant server. Documents are written through the port with a
deterministic hashing embedder, so only the index is exercised. top_k is larger
than the corpus in permission tests: whatever comes back is exactly what the
security filter lets through.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import qdrant_edge as qe
from qdrant_client import QdrantClient, models

from acl.access import AccessList
from acl.index_filter import LIVE_STATE, READ_FIELD, STATE_FIELD
from acl.principal import Principal, group_key, tenant_key, user_key
from core.errors import IndexUnavailableError, InvalidInputError
from core.records import ChunkDraft, DocumentMeta
from index.edge import EdgeChunkIndex, EdgeTuning
from index.edge_filter import to_edge_filter
from index.payload import ACL_SOURCE_FIELDS, ChunkRecord, staged_chunks
from index.ports import ChunkIndex, IndexedDocument, RetrievalMode
from index.qdrant import DENSE_VECTOR, QdrantChunkIndex
from tests.conftest import OTHER_TENANT, TENANT

DIM = 64
REPO_ROOT = Path(__file__).resolve().parents[1]
ALICE, GRACE, DENIED, LEAD, GUEST = (f"b0000000-0000-4000-8000-00000000000{i}" for i in range(1, 6))
FIN, ENG, LEADS, ATLAS = (f"e{i}000000-0000-4000-8000-00000000000{i}" for i in range(1, 5))
SOURCE = "source-main"


def embed(text: str) -> tuple[float, ...]:
    """A deterministic unit vector: each word adds +-1 to a hashed coordinate (no model, no network)."""
    vector = [0.0] * DIM
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[digest[0] % DIM] += 1.0 if digest[1] % 2 else -1.0
        vector[digest[2] % DIM] += 0.5
    norm = sum(x * x for x in vector) ** 0.5 or 1.0
    return tuple(x / norm for x in vector)


def document(
    path: str, acl: AccessList, *texts: str, tenant: str = TENANT, source: str = SOURCE, marker: str = ""
) -> IndexedDocument:
    content_hash = hashlib.sha256(("\n".join(texts) + marker).encode()).hexdigest()
    return IndexedDocument(
        meta=DocumentMeta(
            doc_id=hashlib.sha256(f"{tenant}/{source}/{path}".encode()).hexdigest()[:32],
            tenant_id=tenant,
            source_id=source,
            path=path,
            uri=path,
            title=path.rsplit("/", 1)[-1],
            format="md",
            content_hash=content_hash,
            modified_at=0.0,
        ),
        acl=acl,
        chunks=tuple(ChunkDraft(text=t, section=None, page=None, page_name=None) for t in texts),
        vectors=tuple(embed(t) for t in texts),
    )


def acl(allow: set[str], deny: set[str] | None = None) -> AccessList:
    return AccessList(allow=frozenset(allow), deny=frozenset(deny or ()))


CORPUS = [
    document("company/handbook.md", acl({tenant_key(TENANT)}), "The company picnic is on 14 June at Riverside Park."),
    document(
        "finance/q3.md",
        acl({group_key(TENANT, FIN)}, {user_key(TENANT, DENIED)}),
        "Q3 revenue was 12.4 million euros.",
        "Q3 margin rose 8 percent.",
    ),
    document(
        "finance/board.md",
        acl({group_key(TENANT, FIN)}, {user_key(TENANT, DENIED), user_key(TENANT, GRACE)}),
        "Board compensation totals 1.1 million euros.",
    ),
    document("eng/arch.md", acl({group_key(TENANT, ENG)}), "The robot fleet controller runs on Kubernetes."),
    document(
        "eng/launch.md",
        acl({group_key(TENANT, ENG), group_key(TENANT, ATLAS)}),
        "Atlas launches on 3 March with 40 robots.",
    ),
    document("eng/leads/calibration.md", acl({group_key(TENANT, LEADS)}), "Performance calibration closes on 30 May."),
    document("drafts/secret.md", AccessList.nobody(), "The unannounced acquisition target is Nimbus Robotics."),
    document(
        "other/plans.md",
        acl({tenant_key(OTHER_TENANT), group_key(OTHER_TENANT, FIN)}),
        "The other company plans a merger.",
        tenant=OTHER_TENANT,
    ),
]
BY_PATH = {d.meta.path: d for d in CORPUS}


# -- the implementations ---------------------------------------------------------------


def _qdrant_local(tmp_path: Path) -> Iterator[ChunkIndex]:
    index = QdrantChunkIndex(client=QdrantClient(location=":memory:"), collection="chunks", dimension=DIM)
    index.ensure_schema()
    yield index
    index.close()


def _edge(tmp_path: Path) -> Iterator[ChunkIndex]:
    index = EdgeChunkIndex(path=tmp_path / "edge", dimension=DIM)
    index.ensure_schema()
    yield index
    index.close()


def _qdrant_server(tmp_path: Path) -> Iterator[ChunkIndex]:
    url = os.environ.get("CLEARANCE_TEST_QDRANT_URL")
    if not url:
        pytest.skip("no Qdrant server: set CLEARANCE_TEST_QDRANT_URL=http://host:6333 to run this suite against one")
    client = QdrantClient(url=url, api_key=os.environ.get("CLEARANCE_TEST_QDRANT_API_KEY"), timeout=10)
    collection = f"clearance-congruence-{uuid.uuid4().hex[:12]}"
    index = QdrantChunkIndex(client=client, collection=collection, dimension=DIM)
    index.ensure_schema()
    yield index
    client.delete_collection(collection)
    index.close()


IMPLEMENTATIONS: dict[str, Callable[[Path], Iterator[ChunkIndex]]] = {
    "qdrant-local": _qdrant_local,
    "edge": _edge,
    "qdrant-server": _qdrant_server,
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChunkIndex]:
    yield from IMPLEMENTATIONS[request.param](tmp_path)


@pytest.fixture()
def corpus(index: ChunkIndex) -> ChunkIndex:
    for doc in CORPUS:
        index.replace_document(doc)
    return index


def member(oid: str = ALICE, *groups: str, tenant: str = TENANT, guest: bool = False) -> Principal:
    return Principal(tenant_id=tenant, object_id=oid, groups=frozenset(groups), guest=guest)


def visible(
    index: ChunkIndex, principal: Principal, query: str = "company", narrowing: models.Filter | None = None
) -> set[str]:
    return {p.source for p in index.search(principal, list(embed(query)), top_k=100, narrowing=narrowing)}


def expected(principal: Principal) -> set[str]:
    """The reference rule: same tenant, AccessList.permits."""
    keys = principal.access_keys()
    return {p for p, d in BY_PATH.items() if d.meta.tenant_id == principal.tenant_id and d.acl.permits(keys)}


# -- the permission matrix ------------------------------------------------------------------

MATRIX = [
    member(o, *g, guest=guest, tenant=t)
    for o in (ALICE, GRACE, DENIED, GUEST)
    for g in ((), (FIN,), (ENG, ATLAS), (LEADS,), (FIN, ENG, LEADS, ATLAS))
    for guest in (False, True)
    for t in (TENANT, OTHER_TENANT)
]


def test_every_caller_of_the_matrix_sees_exactly_what_the_reference_rule_permits(corpus: ChunkIndex) -> None:
    answers = {p: visible(corpus, p) for p in MATRIX}
    wrong = {p: (answers[p], expected(p)) for p in MATRIX if answers[p] != expected(p)}
    assert wrong == {}


# Every word of the corpus: in sparse mode every chunk matches some term, so what comes back is exactly what
# the security filter lets through, as in dense mode.
ALL_WORDS = " ".join(chunk.text for doc in CORPUS for chunk in doc.chunks)


@pytest.mark.parametrize("mode", [RetrievalMode.SPARSE, RetrievalMode.HYBRID])
def test_every_caller_sees_exactly_what_the_reference_rule_permits_in_every_mode(
    corpus: ChunkIndex, mode: RetrievalMode
) -> None:
    def seen(principal: Principal) -> set[str]:
        found = corpus.search(principal, list(embed("company")), top_k=100, text=ALL_WORDS, mode=mode)
        return {p.source for p in found}

    wrong = {p: (seen(p), expected(p)) for p in MATRIX if seen(p) != expected(p)}
    assert wrong == {}


def test_tenant_member_without_groups_sees_only_tenant_wide_documents(corpus: ChunkIndex) -> None:
    assert visible(corpus, member()) == {"company/handbook.md"}


def test_user_of_another_tenant_with_the_same_ids_sees_only_that_tenant(corpus: ChunkIndex) -> None:
    assert visible(corpus, member(ALICE, FIN, ENG, LEADS, ATLAS, tenant=OTHER_TENANT)) == {"other/plans.md"}


def test_a_callers_earlier_searches_never_widen_a_later_one(corpus: ChunkIndex) -> None:
    """Searches repeated as one caller's groups, guest status and the documents' ACLs change.

    An implementation may remember a caller's filter and its size between searches (the
    edge engine does); every search must still answer for the caller and the ACLs of now.
    """
    finance = member(ALICE, FIN)
    for _ in range(2):  # the second time from whatever the first one left behind
        assert visible(corpus, finance) == expected(finance)
    assert visible(corpus, member(ALICE)) == expected(member(ALICE))  # the group removed
    assert visible(corpus, member(ALICE, FIN, guest=True)) == expected(member(ALICE, FIN, guest=True))
    assert visible(corpus, member(ALICE, FIN, tenant=OTHER_TENANT)) == expected(member(ALICE, FIN, tenant=OTHER_TENANT))
    # The document's ACL changes under the same caller: Alice's group loses it, a deny names her.
    corpus.update_acl(BY_PATH["finance/q3.md"].meta.doc_id, acl({group_key(TENANT, ENG)}))
    corpus.update_acl(BY_PATH["finance/board.md"].meta.doc_id, acl({group_key(TENANT, FIN)}, {user_key(TENANT, ALICE)}))
    assert visible(corpus, finance) == {"company/handbook.md"}
    assert visible(corpus, finance, "revenue margin board compensation") == {"company/handbook.md"}


def test_deny_entry_beats_group_allow(corpus: ChunkIndex) -> None:
    assert visible(corpus, member(DENIED, FIN)) == {"company/handbook.md"}
    assert visible(corpus, member(GRACE, FIN)) == {"company/handbook.md", "finance/q3.md"}


def test_guest_is_not_a_tenant_member_but_keeps_group_access(corpus: ChunkIndex) -> None:
    assert visible(corpus, member(GUEST, ATLAS, guest=True)) == {"eng/launch.md"}
    assert visible(corpus, member(GUEST, guest=True)) == set()


def test_document_without_acl_is_visible_to_nobody(corpus: ChunkIndex) -> None:
    everyone = member(ALICE, FIN, ENG, LEADS, ATLAS)
    assert "drafts/secret.md" not in visible(corpus, everyone, "unannounced acquisition target Nimbus")


def test_search_returns_no_acl_fields_and_the_chunk_text(corpus: ChunkIndex) -> None:
    [passage] = corpus.search(member(ALICE, ENG), list(embed("robot fleet controller")), top_k=1)
    assert passage.text == "The robot fleet controller runs on Kubernetes." and passage.source == "eng/arch.md"
    assert not {"acl_allow", "acl_deny"} & set(type(passage).__slots__)


# -- narrowing ------------------------------------------------------------------------------


def _key(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _read_keys(*keys: str) -> models.FieldCondition:
    return models.FieldCondition(key="acl_read", match=models.MatchAny(any=list(keys)))


WIDENING_ATTEMPTS = {
    "should-other-keys": models.Filter(
        should=[
            models.FieldCondition(key="acl_allow", match=models.MatchAny(any=[group_key(TENANT, FIN)])),
            _key("tenant_id", OTHER_TENANT),
            _key("state", "staged"),
            models.IsEmptyCondition(is_empty=models.PayloadField(key="acl_allow")),
        ]
    ),
    "must-not-own-deny": models.Filter(must_not=[_key("acl_deny", user_key(TENANT, DENIED))]),
    "nested-any-tenant": models.Filter(
        must=[models.Filter(should=[_key("tenant_id", TENANT), _key("tenant_id", OTHER_TENANT)])]
    ),
    "empty-filter": models.Filter(),
    # Aimed at the deny check: a narrowing that selects exactly the caller's denied chunks, or one
    # true of every chunk whatever its deny list, must still leave them out.
    "only-own-denials": models.Filter(must=[_key("acl_deny", user_key(TENANT, DENIED))]),
    "denied-or-not": models.Filter(
        should=[
            _key("acl_deny", user_key(TENANT, DENIED)),
            models.Filter(must_not=[_key("acl_deny", user_key(TENANT, DENIED))]),
        ]
    ),
    "should-forged-read-keys": models.Filter(
        should=[
            _read_keys(f"{OTHER_TENANT}#{tenant_key(OTHER_TENANT)}", f"{OTHER_TENANT}#{group_key(OTHER_TENANT, FIN)}"),
            _read_keys(f"{TENANT}#{group_key(TENANT, FIN)}", f"{TENANT}#{user_key(TENANT, DENIED)}"),
            models.IsEmptyCondition(is_empty=models.PayloadField(key="acl_read")),
        ]
    ),
}


@pytest.mark.parametrize("attempt", sorted(WIDENING_ATTEMPTS))
def test_caller_narrowing_cannot_widen_access(corpus: ChunkIndex, attempt: str) -> None:
    for principal in (member(), member(DENIED, FIN), member(GUEST, guest=True)):
        assert visible(corpus, principal, narrowing=WIDENING_ATTEMPTS[attempt]) <= expected(principal)


@pytest.mark.parametrize("attempt", sorted(WIDENING_ATTEMPTS))
def test_caller_narrowing_cannot_widen_access_in_hybrid_mode(corpus: ChunkIndex, attempt: str) -> None:
    for principal in (member(), member(DENIED, FIN), member(GUEST, guest=True)):
        found = corpus.search(
            principal,
            list(embed("company")),
            top_k=100,
            text=ALL_WORDS,
            mode=RetrievalMode.HYBRID,
            narrowing=WIDENING_ATTEMPTS[attempt],
        )
        assert {p.source for p in found} <= expected(principal)


def test_caller_narrowing_narrows(corpus: ChunkIndex) -> None:
    reader = member(ALICE, FIN, ENG)
    by_path = models.Filter(must=[_key("path", "finance/q3.md")])
    assert visible(corpus, reader, narrowing=by_path) == {"finance/q3.md"}
    assert visible(corpus, member(), narrowing=by_path) == set()
    by_any = models.Filter(must=[models.FieldCondition(key="path", match=models.MatchAny(any=["eng/arch.md"]))])
    assert visible(corpus, reader, narrowing=by_any) == {"eng/arch.md"}
    excluded = models.Filter(must_not=[models.Filter(should=[_key("path", "finance/q3.md")])])
    assert visible(corpus, reader, narrowing=excluded) == expected(reader) - {"finance/q3.md"}
    second_chunks = models.Filter(must=[models.FieldCondition(key="chunk_index", range=models.Range(gte=1))])
    assert visible(corpus, reader, narrowing=second_chunks) == {"finance/q3.md"}
    null_page = models.Filter(must=[models.IsNullCondition(is_null=models.PayloadField(key="page"))])
    assert visible(corpus, reader, narrowing=null_page) == expected(reader)
    with_denies = {"finance/q3.md", "finance/board.md"} & expected(reader)
    no_deny = models.Filter(must=[models.FieldCondition(key="acl_deny", is_empty=True)])
    assert visible(corpus, reader, narrowing=no_deny) == expected(reader) - with_denies
    some_deny = models.Filter(must=[models.FieldCondition(key="acl_deny", is_empty=False)])
    assert visible(corpus, reader, narrowing=some_deny) == with_denies
    either = models.Filter(
        min_should=models.MinShould(
            conditions=[_key("path", "finance/q3.md"), _key("path", "eng/arch.md")], min_count=1
        )
    )
    assert visible(corpus, reader, narrowing=either) == {"finance/q3.md", "eng/arch.md"}
    [arch_chunk] = corpus.chunk_ids(BY_PATH["eng/arch.md"].meta.doc_id)
    by_id = models.Filter(must=[models.HasIdCondition(has_id=[arch_chunk])])
    assert visible(corpus, reader, narrowing=by_id) == {"eng/arch.md"}
    assert visible(corpus, member(), narrowing=by_id) == set()


def test_min_score_drops_weak_matches(corpus: ChunkIndex) -> None:
    reader = member(ALICE, FIN, ENG, LEADS, ATLAS)
    vector = list(embed("Atlas launches on 3 March with 40 robots."))
    ranked = corpus.search(reader, vector, top_k=100)
    assert ranked[0].source == "eng/launch.md" and ranked[0].score == pytest.approx(1.0, abs=1e-4)
    cut = (ranked[0].score + ranked[1].score) / 2
    assert [p.source for p in corpus.search(reader, vector, top_k=100, min_score=cut)] == ["eng/launch.md"]


# -- incremental writes ----------------------------------------------------------------------


def test_staged_chunks_are_invisible_until_published(corpus: ChunkIndex) -> None:
    reader = member(ALICE, ENG)
    old = BY_PATH["eng/arch.md"]
    new = document("eng/arch.md", old.acl, "The controller moved to Nomad.", marker="v2")
    version = corpus.stage_document(new)
    assert {p.text for p in corpus.search(reader, list(embed("controller")), top_k=100)} >= {old.chunks[0].text}
    assert "The controller moved to Nomad." not in {
        p.text for p in corpus.search(reader, list(embed("Nomad")), top_k=100)
    }
    assert corpus.count(live_only=False) == corpus.count() + 1
    corpus.publish(new.meta.doc_id, version)
    texts = {p.text for p in corpus.search(reader, list(embed("controller")), top_k=100)}
    assert "The controller moved to Nomad." in texts and old.chunks[0].text not in texts
    assert corpus.count(live_only=False) == corpus.count()


def test_replace_swaps_every_chunk_and_reports_the_new_state(corpus: ChunkIndex) -> None:
    old = BY_PATH["finance/q3.md"]
    before = corpus.chunk_ids(old.meta.doc_id)
    new = document("finance/q3.md", old.acl, "Q3 revenue was restated.", marker="v2")
    corpus.replace_document(new)
    after = corpus.chunk_ids(old.meta.doc_id)
    assert len(before) == 2 and len(after) == 1 and not before & after
    state = corpus.document_states(tenant_id=TENANT, source_id=SOURCE)["finance/q3.md"]
    assert (state.content_hash, state.chunk_count, state.doc_id) == (new.meta.content_hash, 1, old.meta.doc_id)


def test_update_acl_rewrites_access_without_new_chunks(corpus: ChunkIndex) -> None:
    doc = BY_PATH["finance/q3.md"]
    ids = corpus.chunk_ids(doc.meta.doc_id)
    moved = acl({group_key(TENANT, ENG)})
    corpus.update_acl(doc.meta.doc_id, moved)
    assert corpus.chunk_ids(doc.meta.doc_id) == ids
    assert corpus.stored_acl(doc.meta.doc_id) == moved
    assert "finance/q3.md" not in visible(corpus, member(ALICE, FIN))
    assert "finance/q3.md" in visible(corpus, member(ALICE, ENG))
    assert corpus.document_states(tenant_id=TENANT, source_id=SOURCE)["finance/q3.md"].acl_hash == moved.fingerprint()


def test_delete_document_removes_chunks_acl_and_state(corpus: ChunkIndex) -> None:
    doc = BY_PATH["finance/q3.md"]
    corpus.delete_document(doc.meta.doc_id)
    assert corpus.chunk_ids(doc.meta.doc_id) == set()
    assert corpus.stored_acl(doc.meta.doc_id) is None
    assert "finance/q3.md" not in corpus.document_states(tenant_id=TENANT, source_id=SOURCE)
    assert "finance/q3.md" not in visible(corpus, member(ALICE, FIN))


def test_document_states_cover_live_documents_of_one_source_and_tenant(corpus: ChunkIndex) -> None:
    corpus.replace_document(document("x.md", acl({tenant_key(TENANT)}), "Elsewhere.", source="source-other"))
    corpus.stage_document(document("staged-only.md", acl({tenant_key(TENANT)}), "Not yet."))
    states = corpus.document_states(tenant_id=TENANT, source_id=SOURCE)
    mine = {p for p, d in BY_PATH.items() if d.meta.tenant_id == TENANT}
    assert set(states) == mine
    for path, state in states.items():
        doc = BY_PATH[path]
        assert (state.doc_id, state.content_hash, state.acl_hash, state.chunk_count) == (
            doc.meta.doc_id,
            doc.meta.content_hash,
            doc.acl.fingerprint(),
            len(doc.chunks),
        )


def test_documents_lists_a_tenant_in_source_and_path_order_a_page_at_a_time(corpus: ChunkIndex) -> None:
    listed = corpus.documents(tenant_id=TENANT)
    assert [d.path for d in listed] == sorted(p for p, d in BY_PATH.items() if d.meta.tenant_id == TENANT)
    assert corpus.documents(tenant_id=TENANT, offset=2, limit=3) == listed[2:5]
    board = next(d for d in listed if d.path == "finance/board.md")
    assert board.acl_allow == BY_PATH["finance/board.md"].acl.allow
    assert board.acl_deny == BY_PATH["finance/board.md"].acl.deny
    assert [d.path for d in corpus.documents(tenant_id=OTHER_TENANT)] == ["other/plans.md"]


def test_a_chunk_naming_another_tenants_group_is_read_by_nobody(index: ChunkIndex) -> None:
    # A misattributed ACL: a document of the other tenant that allows this tenant's finance group.
    stray = document(
        "other/stray.md", acl({group_key(TENANT, FIN)}), "Stray ledger of the other company.", tenant=OTHER_TENANT
    )
    index.replace_document(stray)
    for principal in (member(ALICE, FIN), member(ALICE, FIN, tenant=OTHER_TENANT), member(GUEST, FIN, guest=True)):
        assert visible(index, principal, "stray ledger") == set()


def test_an_acl_rewritten_while_a_version_is_staged_governs_it_once_published(corpus: ChunkIndex) -> None:
    old = BY_PATH["finance/q3.md"]
    new = document("finance/q3.md", old.acl, "Q3 revenue was restated to 11.9 million.", marker="v2")
    version = corpus.stage_document(new)
    corpus.update_acl(old.meta.doc_id, acl({group_key(TENANT, ENG)}))  # finance loses it, engineering gains it
    assert "finance/q3.md" not in visible(corpus, member(ALICE, FIN), "Q3 revenue")
    assert "Q3 revenue was restated to 11.9 million." not in {
        p.text for p in corpus.search(member(ALICE, ENG), list(embed("Q3 revenue restated")), top_k=100)
    }
    corpus.publish(old.meta.doc_id, version)
    assert "finance/q3.md" not in visible(corpus, member(ALICE, FIN), "Q3 revenue")
    texts = {p.text for p in corpus.search(member(ALICE, ENG), list(embed("Q3 revenue restated")), top_k=100)}
    assert "Q3 revenue was restated to 11.9 million." in texts


def test_an_acl_widened_on_a_staged_version_leaves_it_invisible(index: ChunkIndex) -> None:
    doc = document("eng/draft.md", acl({group_key(TENANT, ENG)}), "Draft of the rollout plan.")
    index.stage_document(doc)
    index.update_acl(doc.meta.doc_id, acl({tenant_key(TENANT), group_key(TENANT, ENG)}))
    for principal in (member(ALICE, ENG), member(ALICE), member(ALICE, ENG, tenant=OTHER_TENANT)):
        assert visible(index, principal, "rollout plan draft") == set()


def test_an_acl_narrowed_to_nobody_hides_every_live_chunk(corpus: ChunkIndex) -> None:
    doc = BY_PATH["company/handbook.md"]
    corpus.update_acl(doc.meta.doc_id, AccessList.nobody())
    assert all("company/handbook.md" not in visible(corpus, p, "company picnic") for p in MATRIX)


def test_stored_acl_and_chunk_ids_include_staged_versions(index: ChunkIndex) -> None:
    doc = BY_PATH["eng/launch.md"]
    assert index.stored_acl(doc.meta.doc_id) is None and index.chunk_ids(doc.meta.doc_id) == set()
    index.stage_document(doc)
    assert index.stored_acl(doc.meta.doc_id) == doc.acl
    assert len(index.chunk_ids(doc.meta.doc_id)) == 1
    assert index.count() == 0 and index.count(live_only=False) == 1


def test_searches_during_replacement_never_see_old_and_new_chunks_mixed(index: ChunkIndex) -> None:
    reader = member(ALICE, ENG)
    texts = {m: [f"The {m} edition describes rollout step {n}." for n in range(6)] for m in ("alpha", "beta")}
    index.replace_document(document("guide.md", acl({group_key(TENANT, ENG)}), *texts["alpha"]))
    vector = list(embed("rollout step"))
    mixed: list[set[str]] = []
    stop = threading.Event()

    def search_loop() -> None:
        while not stop.is_set():
            seen = {m for p in index.search(reader, vector, top_k=100) for m in texts if m in p.text}
            if len(seen) > 1:
                mixed.append(seen)

    searcher = threading.Thread(target=search_loop)
    searcher.start()
    try:
        for round_number, marker in enumerate(("beta", "alpha") * 5):
            doc = document("guide.md", acl({group_key(TENANT, ENG)}), *texts[marker], marker=str(round_number))
            index.replace_document(doc)
    finally:
        stop.set()
        searcher.join()
    assert mixed == []


def _rewrite_acl_after_each_read(
    monkeypatch: pytest.MonkeyPatch, client: QdrantClient, doc: IndexedDocument, rewrites: list[AccessList]
) -> None:
    """Another process rewrites the document's ACL right after each time a publish reads it."""
    real_scroll = client.scroll
    other = QdrantChunkIndex(client=client, collection="chunks", dimension=DIM)

    def scroll(*args: Any, **kwargs: Any) -> Any:
        page = real_scroll(*args, **kwargs)
        if kwargs.get("with_payload") == ACL_SOURCE_FIELDS and rewrites:
            other.update_acl(doc.meta.doc_id, rewrites.pop(0))
        return page

    monkeypatch.setattr(client, "scroll", scroll)


def _staged_finance_plan() -> tuple[QdrantClient, QdrantChunkIndex, IndexedDocument, str]:
    """A qdrant-client index holding one staged finance document, and its version."""
    client = QdrantClient(location=":memory:")
    index = QdrantChunkIndex(client=client, collection="chunks", dimension=DIM)
    index.ensure_schema()
    doc = document("finance/plan.md", acl({group_key(TENANT, FIN)}), "The savings plan cuts travel.")
    return client, index, doc, index.stage_document(doc)


def test_a_publish_uses_an_acl_another_process_rewrote_while_it_published(monkeypatch: pytest.MonkeyPatch) -> None:
    client, index, doc, version = _staged_finance_plan()
    _rewrite_acl_after_each_read(monkeypatch, client, doc, [acl({group_key(TENANT, ENG)})])
    index.publish(doc.meta.doc_id, version)
    assert visible(index, member(ALICE, FIN), "savings plan") == set()
    assert visible(index, member(ALICE, ENG), "savings plan") == {"finance/plan.md"}


def test_a_publish_whose_acl_never_settles_leaves_the_version_invisible(monkeypatch: pytest.MonkeyPatch) -> None:
    client, index, doc, version = _staged_finance_plan()
    flips = [acl({group_key(TENANT, (n % 2 and FIN) or ENG)}) for n in range(20)]
    _rewrite_acl_after_each_read(monkeypatch, client, doc, flips)
    with pytest.raises(IndexUnavailableError, match="kept changing"):
        index.publish(doc.meta.doc_id, version)
    assert all(visible(index, p, "savings plan") == set() for p in MATRIX)


@pytest.mark.parametrize(("candidates", "documents"), [(1, 100), (3, 0), (3, 100), (1000, 0), (1000, 100)])
def test_an_edge_search_gone_wide_returns_only_what_the_filter_lets_through(
    tmp_path: Path, candidates: int, documents: int
) -> None:
    """Unfiltered candidates: with 1-3 mostly unreadable ones, with 1000 every chunk; only readable ones come back.

    With ``documents``, the whole documents of the candidates are scored too: most of them
    unreadable (another tenant's, denied, nobody's), and none may come back.
    """
    wide = EdgeTuning(
        exact_max_points=0, wide_min_share=0.0, wide_candidates=candidates, wide_sibling_documents=documents
    )
    with _edge_with_corpus(tmp_path / "edge", wide) as index:
        for mode in (RetrievalMode.DENSE, RetrievalMode.HYBRID):
            for principal in MATRIX:
                found = index.search(principal, list(embed("company")), top_k=100, text=ALL_WORDS, mode=mode)
                seen = {p.source for p in found}
                assert seen <= expected(principal), (mode, principal)
                if candidates == 1000:
                    assert seen == expected(principal), (mode, principal)


@contextmanager
def _edge_with_corpus(path: Path, tuning: EdgeTuning) -> Iterator[EdgeChunkIndex]:
    """An edge index under ``tuning`` holding the corpus, closed afterwards."""
    index = EdgeChunkIndex(path=path, dimension=DIM, tuning=tuning)
    try:
        index.ensure_schema()
        for doc in CORPUS:
            index.replace_document(doc)
        yield index
    finally:
        index.close()


def _one_candidate(documents: int, chunk_budget: int = 2_000) -> EdgeTuning:
    """Every search wide, its walk keeping one candidate, with the documents of ``documents`` candidates."""
    return EdgeTuning(
        exact_max_points=0,
        wide_min_share=0.0,
        wide_candidates=1,
        wide_sibling_documents=documents,
        wide_sibling_chunks=chunk_budget,
    )


def _texts(index: ChunkIndex, principal: Principal, query: str) -> set[str]:
    return {p.text for p in index.search(principal, list(embed(query)), top_k=10)}


def test_a_wide_search_scores_the_whole_document_of_its_best_candidate(tmp_path: Path) -> None:
    """The walk keeps only the revenue chunk; the margin chunk of the same document comes back with it."""
    finance = member(ALICE, FIN)
    revenue, margin = BY_PATH["finance/q3.md"].chunks[0].text, BY_PATH["finance/q3.md"].chunks[1].text
    with _edge_with_corpus(tmp_path / "candidate-only", _one_candidate(0)) as index:
        assert _texts(index, finance, revenue) == {revenue}  # the control: the walk's one candidate
    with _edge_with_corpus(tmp_path / "one-chunk-budget", _one_candidate(1, chunk_budget=1)) as index:
        # A document larger than what is left of the chunk budget is passed over (it has 2 chunks).
        assert _texts(index, finance, revenue) == {revenue}
    with _edge_with_corpus(tmp_path / "its-document", _one_candidate(1)) as index:
        assert _texts(index, finance, revenue) == {revenue, margin}
        # A caller denied on that document gets none of it, however it was reached.
        assert _texts(index, member(DENIED, FIN), revenue) == set()
        # Another tenant's caller neither: the document's chunks are scored, the security filter drops them.
        assert _texts(index, member(ALICE, FIN, tenant=OTHER_TENANT), revenue) == set()


# -- chunks written before read keys -----------------------------------------------------------


def _write_raw(index: ChunkIndex, chunks: list[ChunkRecord]) -> None:
    """Points exactly as given, past the port: what an earlier version of the product left behind."""
    if isinstance(index, EdgeChunkIndex):
        points = [qe.Point(id=c.id, vector={DENSE_VECTOR: c.vector}, payload=c.payload) for c in chunks]
        index._call(lambda shard: shard.update(qe.UpdateOperation.upsert_points(points)))
        return
    assert isinstance(index, QdrantChunkIndex)
    index._client.upsert(
        index._collection,
        points=[models.PointStruct(id=c.id, vector={DENSE_VECTOR: c.vector}, payload=c.payload) for c in chunks],
    )


@pytest.mark.parametrize("engine", ["qdrant-local", "edge"])
def test_chunks_written_before_read_keys_match_nobody_until_the_schema_backfills_them(
    engine: str, tmp_path: Path
) -> None:
    legacy = [chunk for doc in CORPUS for chunk in staged_chunks(doc, "v1")]
    for chunk in legacy:
        chunk.payload[STATE_FIELD] = LIVE_STATE
        del chunk.payload[READ_FIELD]
    # A version that was still staged when the earlier product stopped: it must stay invisible.
    unpublished = document("eng/unpublished.md", acl({tenant_key(TENANT)}), "Unpublished rollout notes.")
    staged = staged_chunks(unpublished, "v1")
    for chunk in staged:
        del chunk.payload[READ_FIELD]
    opened = IMPLEMENTATIONS[engine](tmp_path)
    index = next(opened)
    try:
        _write_raw(index, legacy + staged)
        assert {p: visible(index, p) for p in MATRIX if visible(index, p)} == {}
        index.ensure_schema()
        wrong = {p: (visible(index, p), expected(p)) for p in MATRIX if visible(index, p) != expected(p)}
        assert wrong == {}
        index.ensure_schema()  # a second pass finds nothing to do and changes nothing
        assert all(visible(index, p) == expected(p) for p in MATRIX)
        assert "eng/unpublished.md" not in visible(index, member(ALICE, ENG), "unpublished rollout notes")
    finally:
        next(opened, None)  # the rest of the generator closes the index


# -- the same answers from every engine ----------------------------------------------------------


def test_every_engine_ranks_the_same_chunks_with_the_same_scores(tmp_path: Path) -> None:
    opened = [IMPLEMENTATIONS[name](tmp_path / name) for name in ("qdrant-local", "edge")]
    engines = [next(generator) for generator in opened]
    try:
        for engine in engines:
            for doc in CORPUS:
                engine.replace_document(doc)
        for principal in MATRIX:
            for query in ("company revenue", "robots launch", "calibration"):
                # Dense cosines and sparse BM25 scores (IDF over what the caller may read) alike.
                # Scores, rounded, then ids: hashed vectors tie often, and the order of ties is the engine's own.
                for mode in (RetrievalMode.DENSE, RetrievalMode.SPARSE):
                    answers = [
                        sorted(
                            (-round(p.score, 4), p.doc_id, p.text)
                            for p in engine.search(principal, list(embed(query)), top_k=100, text=query, mode=mode)
                        )
                        for engine in engines
                    ]
                    assert answers[0] == answers[1], (principal, query, mode)
    finally:
        for generator in opened:
            next(generator, None)  # runs the implementation's teardown


# -- the embedded engine only: translation, ownership, persistence ----------------------------------

UNTRANSLATABLE: dict[str, models.Condition] = {
    "text-match": models.FieldCondition(key="text", match=models.MatchText(text="revenue")),
    "except": models.FieldCondition(key="path", match=models.MatchExcept(**{"except": ["a.md"]})),
    "boolean": models.FieldCondition(key="flag", match=models.MatchValue(value=True)),
    "values-count": models.FieldCondition(key="acl_deny", values_count=models.ValuesCount(gte=1)),
    "datetime-range": models.FieldCondition(
        key="modified_at", range=models.DatetimeRange(gte=datetime(2024, 1, 1, tzinfo=UTC))
    ),
    "nested-object": models.NestedCondition(nested=models.Nested(key="parts", filter=models.Filter())),
    "has-vector": models.HasVectorCondition(has_vector="dense"),
}


def _narrowing(clause: str, shape: str) -> models.Filter:
    conditions: list[models.Condition] = [UNTRANSLATABLE[shape]]
    return models.Filter.model_validate({clause: conditions})


@pytest.mark.parametrize("shape", sorted(UNTRANSLATABLE))
@pytest.mark.parametrize("clause", ["must", "should", "must_not"])
def test_edge_translation_refuses_a_shape_it_does_not_know(shape: str, clause: str) -> None:
    with pytest.raises(InvalidInputError):
        to_edge_filter(_narrowing(clause, shape))


def test_edge_search_with_an_untranslatable_narrowing_fails_closed(tmp_path: Path) -> None:
    index = EdgeChunkIndex(path=tmp_path / "edge", dimension=DIM)
    try:
        index.ensure_schema()
        index.replace_document(BY_PATH["company/handbook.md"])
        for shape in UNTRANSLATABLE:
            with pytest.raises(InvalidInputError):
                index.search(member(), list(embed("picnic")), top_k=10, narrowing=_narrowing("must_not", shape))
        assert visible(index, member(), "picnic") == {"company/handbook.md"}
    finally:
        index.close()


def test_edge_keeps_documents_across_a_reopen(tmp_path: Path) -> None:
    first = EdgeChunkIndex(path=tmp_path / "edge", dimension=DIM)
    first.ensure_schema()
    for doc in CORPUS:
        first.replace_document(doc)
    before = visible(first, member(ALICE, FIN))
    first.close()
    second = EdgeChunkIndex(path=tmp_path / "edge", dimension=DIM)
    try:
        second.ensure_schema()
        assert visible(second, member(ALICE, FIN)) == before == expected(member(ALICE, FIN))
    finally:
        second.close()


def test_edge_refuses_to_open_with_another_dimension(tmp_path: Path) -> None:
    EdgeChunkIndex(path=tmp_path / "edge", dimension=DIM).close()
    with pytest.raises(IndexUnavailableError, match="cannot open the index"):
        EdgeChunkIndex(path=tmp_path / "edge", dimension=DIM * 2)


def test_edge_index_is_unavailable_after_close(tmp_path: Path) -> None:
    index = EdgeChunkIndex(path=tmp_path / "edge", dimension=DIM)
    index.close()
    with pytest.raises(IndexUnavailableError, match="closed"):
        index.ping()


def test_second_process_opening_a_held_edge_index_gets_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "edge"
    held = EdgeChunkIndex(path=folder, dimension=DIM)
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from core.errors import IndexUnavailableError
        from index.edge import EdgeChunkIndex
        try:
            EdgeChunkIndex(path=Path({str(folder)!r}), dimension={DIM}).close()
        except IndexUnavailableError as exc:
            print(exc)
            raise SystemExit(3)
        print("opened")
        """
    )

    def second_process() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
        )

    try:
        refused = second_process()
        assert refused.returncode == 3, refused.stderr
        assert refused.stdout.strip() == (
            f"the index at {folder} is held by another process (pid {os.getpid()}): "
            "ingest through the running server's API"
        )
        assert "Traceback" not in refused.stderr
        with pytest.raises(IndexUnavailableError, match="another index object of this process"):
            EdgeChunkIndex(path=folder, dimension=DIM)
    finally:
        held.close()
    assert second_process().stdout.strip() == "opened"  # closing released the lock
