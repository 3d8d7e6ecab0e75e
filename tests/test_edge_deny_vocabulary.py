"""The edge index checks a caller's keys only against deny entries some chunk holds.

The shortcut is only safe if the vocabulary never misses an entry a chunk holds:
each test tries to get a denied chunk past it (a deny arriving after the caller's
filter was remembered, by an ACL rewrite, a new document or a new version; a shard
reopened; more entries than the vocabulary may hold; a deny written while the same
caller searches from another thread), in every retrieval mode.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import qdrant_edge as qe
from qdrant_client import models

import index.edge as edge_module
from acl.access import AccessList
from acl.index_filter import DENY_FIELD, security_filter
from acl.principal import Principal, group_key, tenant_key, user_key
from core.errors import AccessDeniedError
from index.edge import EdgeChunkIndex
from index.payload import live_payload, staged_chunks
from index.ports import IndexedDocument, RetrievalMode
from index.qdrant import DENSE_VECTOR
from tests.conftest import TENANT
from tests.test_index_congruence import ALICE, DIM, ENG, FIN, GRACE, LEADS, acl, document, embed, member

QUERY = "quarterly budget forecast"
MODES = [RetrievalMode.DENSE, RetrievalMode.SPARSE, RetrievalMode.HYBRID]


@pytest.fixture()
def edge(tmp_path: Path) -> Iterator[EdgeChunkIndex]:
    index = EdgeChunkIndex(path=tmp_path / "edge", dimension=DIM)
    index.ensure_schema()
    yield index
    index.close()


def visible(index: EdgeChunkIndex, principal: Principal, mode: RetrievalMode) -> set[str]:
    return {p.source for p in index.search(principal, list(embed(QUERY)), top_k=100, text=QUERY, mode=mode)}


def budget(path: str, access: AccessList, marker: str = "") -> IndexedDocument:
    return document(path, access, f"The quarterly budget forecast for {path}.", marker=marker)


# -- the filter ----------------------------------------------------------------------------


def test_the_filter_checks_only_the_callers_keys_that_some_deny_list_holds() -> None:
    caller = member(ALICE, FIN, ENG)
    denied = {group_key(TENANT, FIN), user_key(TENANT, GRACE)}

    def deny_values(vocabulary: frozenset[str] | None) -> list[str] | None:
        flt = security_filter(caller, deny_vocabulary=vocabulary)
        if not flt.must_not:
            return None
        [condition] = flt.must_not
        assert isinstance(condition, models.FieldCondition) and condition.key == DENY_FIELD
        assert isinstance(condition.match, models.MatchAny)
        return [str(value) for value in condition.match.any]

    assert deny_values(frozenset(denied)) == [group_key(TENANT, FIN)]
    assert deny_values(frozenset({user_key(TENANT, GRACE)})) is None  # none of the caller's keys is denied anywhere
    assert deny_values(None) == sorted(caller.access_keys())  # no vocabulary: every key is checked
    # The read keys are the same whatever the vocabulary.
    assert security_filter(caller, deny_vocabulary=frozenset()).must == security_filter(caller).must


def test_a_caller_without_keys_is_still_refused_with_a_vocabulary() -> None:
    class Keyless(Principal):
        def access_keys(self) -> frozenset[str]:
            return frozenset()

    with pytest.raises(AccessDeniedError):
        security_filter(Keyless(tenant_id=TENANT, object_id=ALICE), deny_vocabulary=frozenset({"x"}))


# -- denies that arrive after a caller's filter was remembered -------------------------------


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_a_deny_written_by_an_acl_rewrite_applies_to_the_next_search(edge: EdgeChunkIndex, mode: RetrievalMode) -> None:
    plan = budget("finance/plan.md", acl({group_key(TENANT, FIN)}))
    edge.replace_document(plan)
    alice, lead = member(ALICE, FIN), member(GRACE, FIN, LEADS)
    assert visible(edge, alice, mode) == visible(edge, lead, mode) == {"finance/plan.md"}  # remembered, no denies yet
    edge.update_acl(plan.meta.doc_id, acl({group_key(TENANT, FIN)}, {user_key(TENANT, ALICE)}))
    assert visible(edge, alice, mode) == set()
    assert visible(edge, lead, mode) == {"finance/plan.md"}
    edge.update_acl(plan.meta.doc_id, acl({group_key(TENANT, FIN)}, {group_key(TENANT, LEADS)}))
    assert visible(edge, lead, mode) == set()
    assert visible(edge, alice, mode) == {"finance/plan.md"}  # her deny is gone: the vocabulary may keep it


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_a_deny_in_a_new_document_or_version_applies_to_the_next_search(
    edge: EdgeChunkIndex, mode: RetrievalMode
) -> None:
    edge.replace_document(budget("finance/plan.md", acl({group_key(TENANT, FIN)})))
    lead = member(GRACE, FIN, LEADS)
    assert visible(edge, lead, mode) == {"finance/plan.md"}
    edge.replace_document(budget("finance/board.md", acl({group_key(TENANT, FIN)}, {group_key(TENANT, LEADS)})))
    assert visible(edge, lead, mode) == {"finance/plan.md"}
    edge.replace_document(
        budget("finance/plan.md", acl({group_key(TENANT, FIN)}, {user_key(TENANT, GRACE)}), marker="v2")
    )
    assert visible(edge, lead, mode) == set()
    assert visible(edge, member(ALICE, FIN), mode) == {"finance/plan.md", "finance/board.md"}


def test_a_reopened_shard_reads_its_deny_entries_back(tmp_path: Path) -> None:
    index = EdgeChunkIndex(path=tmp_path / "edge", dimension=DIM)
    index.ensure_schema()
    index.replace_document(budget("finance/plan.md", acl({group_key(TENANT, FIN)}, {user_key(TENANT, ALICE)})))
    index.replace_document(budget("eng/plan.md", acl({tenant_key(TENANT)}, {group_key(TENANT, ENG)})))
    index.close()

    reopened = EdgeChunkIndex(path=tmp_path / "edge", dimension=DIM)
    try:
        # The shortcut is in use (not the fallback that checks every key) and holds every entry.
        assert reopened._denies.current() == frozenset({user_key(TENANT, ALICE), group_key(TENANT, ENG)})
        for mode in MODES:
            assert visible(reopened, member(ALICE, FIN), mode) == {"eng/plan.md"}
            assert visible(reopened, member(GRACE, FIN, ENG), mode) == {"finance/plan.md"}
            assert visible(reopened, member(GRACE, FIN), mode) == {"finance/plan.md", "eng/plan.md"}
    finally:
        reopened.close()


def test_more_deny_entries_than_the_vocabulary_holds_checks_every_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = EdgeChunkIndex(path=tmp_path / "edge", dimension=DIM)
    index.ensure_schema()
    index.replace_document(budget("finance/plan.md", acl({group_key(TENANT, FIN)}, {user_key(TENANT, ALICE)})))
    index.replace_document(budget("eng/plan.md", acl({group_key(TENANT, FIN)}, {user_key(TENANT, GRACE)})))
    index.close()
    monkeypatch.setattr(edge_module, "_DENY_VOCABULARY_LIMIT", 2)

    reopened = EdgeChunkIndex(path=tmp_path / "edge", dimension=DIM)
    try:
        assert reopened._denies.current() is None
        assert visible(reopened, member(ALICE, FIN), RetrievalMode.DENSE) == {"eng/plan.md"}
        assert visible(reopened, member(GRACE, FIN), RetrievalMode.DENSE) == {"finance/plan.md"}
        reopened.replace_document(budget("hr/plan.md", acl({group_key(TENANT, FIN)}, {group_key(TENANT, LEADS)})))
        assert visible(reopened, member(ALICE, FIN, LEADS), RetrievalMode.DENSE) == {"eng/plan.md"}
    finally:
        reopened.close()


def test_denies_written_while_the_same_caller_searches_never_leak(edge: EdgeChunkIndex) -> None:
    """New versions that each deny a key of Alice's no chunk denied before, published while she searches.

    Every first version allows her; a second version's text says "revised", so a revised chunk
    in any of her answers is a chunk whose deny list names her.
    """
    teams = [f"f{number:07d}-0000-4000-8000-000000000000" for number in range(30)]
    alice = member(ALICE, FIN, *teams)
    for number in range(len(teams)):
        edge.replace_document(budget(f"finance/plan-{number}.md", acl({group_key(TENANT, FIN)})))
    leaked: list[str] = []
    searches = 0
    done = threading.Event()

    def search() -> None:
        nonlocal searches
        while not done.is_set():
            found = edge.search(alice, list(embed(QUERY)), top_k=100)
            searches += 1
            leaked.extend(p.source for p in found if "revised" in p.text)

    reader = threading.Thread(target=search)
    reader.start()
    try:
        for number, team in enumerate(teams):
            path = f"finance/plan-{number}.md"
            revised = acl({group_key(TENANT, FIN)}, {group_key(TENANT, team)})
            edge.replace_document(document(path, revised, f"The quarterly budget forecast for {path}, revised."))
    finally:
        done.set()
        reader.join()
    assert leaked == []
    assert searches > len(teams) // 2  # the searches did run beside the writes
    assert visible(edge, alice, RetrievalMode.DENSE) == set()


def test_a_write_that_names_no_deny_entries_has_them_listed_again(edge: EdgeChunkIndex) -> None:
    """A write path that does not name what it stores costs one listing, never a leak."""
    alice = member(ALICE, FIN)
    assert visible(edge, alice, RetrievalMode.DENSE) == set()  # the (empty) vocabulary is known now
    denied = document("finance/raw.md", acl({group_key(TENANT, FIN)}, {user_key(TENANT, ALICE)}), QUERY)
    [chunk] = staged_chunks(denied, "v1")
    chunk.payload.update(live_payload(chunk.payload))
    point = qe.Point(id=chunk.id, vector={DENSE_VECTOR: chunk.vector}, payload=chunk.payload)
    edge._write([qe.UpdateOperation.upsert_points([point])])
    assert visible(edge, alice, RetrievalMode.DENSE) == set()
    assert visible(edge, member(GRACE, FIN), RetrievalMode.DENSE) == {"finance/raw.md"}


def test_the_ports_writes_keep_the_vocabulary_without_listing_it_again(
    edge: EdgeChunkIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    listings = 0
    list_entries = edge._denies._list_entries

    def counted() -> set[str] | None:
        nonlocal listings
        listings += 1
        return list_entries()

    monkeypatch.setattr(edge._denies, "_list_entries", counted)
    plan = budget("finance/plan.md", acl({group_key(TENANT, FIN)}))
    edge.replace_document(plan)
    lead = member(GRACE, FIN, LEADS)
    assert visible(edge, lead, RetrievalMode.HYBRID) == {"finance/plan.md"}
    edge.replace_document(budget("finance/board.md", acl({group_key(TENANT, FIN)}, {group_key(TENANT, LEADS)})))
    edge.update_acl(plan.meta.doc_id, acl({group_key(TENANT, FIN)}, {user_key(TENANT, GRACE)}))
    edge.delete_document(plan.meta.doc_id)
    edge.replace_document(budget("finance/plan.md", acl({group_key(TENANT, FIN)}), marker="v2"))
    edge.backfill_sparse()
    assert visible(edge, lead, RetrievalMode.HYBRID) == {"finance/plan.md"}
    assert visible(edge, member(ALICE, FIN), RetrievalMode.HYBRID) == {"finance/plan.md", "finance/board.md"}
    assert listings == 1
    assert edge._denies.current() == frozenset({group_key(TENANT, LEADS), user_key(TENANT, GRACE)})


def test_a_search_the_moment_a_deny_lands_already_checks_it(edge: EdgeChunkIndex) -> None:
    """A search run from inside the write, right after the engine applied the ACL rewrite."""
    plan = budget("finance/plan.md", acl({group_key(TENANT, FIN)}))
    edge.replace_document(plan)
    alice = member(ALICE, FIN)
    assert visible(edge, alice, RetrievalMode.DENSE) == {"finance/plan.md"}
    engine = edge._shard
    assert engine is not None
    shard: qe.EdgeShard = engine
    seen: list[set[str]] = []

    class SearchAfterEachUpdate:
        def __getattr__(self, name: str) -> object:
            return getattr(shard, name)

        def update(self, operation: qe.UpdateOperation) -> None:
            shard.update(operation)
            seen.append(visible(edge, alice, RetrievalMode.DENSE))

    edge._shard = SearchAfterEachUpdate()  # type: ignore[assignment]
    try:
        edge.update_acl(plan.meta.doc_id, acl({group_key(TENANT, FIN)}, {user_key(TENANT, ALICE)}))
    finally:
        edge._shard = engine
    assert seen and seen[-1] == set()  # the live chunks' rewrite is the last update
