"""Feedback and human review through the real app, on SQLite and PostgreSQL.

The rule under test above all: a reviewer never sees more than the asker could.
Passages are read from the index under the asker's keys as the audit recorded
them, so a reviewer who may read more sees no more, and a chunk deleted or
re-permissioned since shows as unavailable.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from acl.access import AccessList
from acl.dev.idp import DevIdentityProvider
from acl.principal import Principal, group_key, tenant_key, user_key
from acl.recorded import principal_from_keys
from clearance.compose import Runtime, build_api, build_runtime
from clearance.evaluation.reviewed import parse_reviewed_items
from clearance.settings import Settings, StoreSettings
from index.embedding import SentenceTransformerEmbedder
from index.ports import ChunkIndex
from ingest.source import FilesystemSource
from retrieval.answer import AnswerService
from retrieval.audit import AnswerAudit, ChunkRef
from retrieval.generation.extractive import ExtractiveGenerator
from retrieval.generation.openai_compatible import OpenAICompatibleGenerator
from store.audit_erasure import erase_user
from store.audit_query import AuditQuery, AuditRecord
from store.audit_verify import verify
from store.feedback import FeedbackRow
from store.review import ReviewQueue, ReviewReason
from store.review_desk import passages_as_asked
from store.review_sink import review_reasons
from store.state import Store
from tests import store_fixtures
from tests import test_index_congruence as congruence
from tests.conftest import OTHER_TENANT, TENANT
from tests.store_fixtures import StoreTarget
from tests.test_api import assert_problem, auth
from tests.test_generators import chat_stub  # noqa: F401  (fixture)
from tests.test_permissions import ALICE, FIN, GRACE, LEAD, build_corpus

target = store_fixtures.target
index = congruence.index
corpus = congruence.corpus
REVIEWER = "c0000000-0000-4000-8000-0000000000b1"
REVIEWER_ROLE = "Clearance.Reviewer"
Q3 = "What was the Q3 revenue?"
Q3_FACT = "12.4 million"


@pytest.fixture()
def served(
    target: StoreTarget, settings: Settings, embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> Iterator[Runtime]:
    """The whole runtime, its state store on the test's backend, over the permissions corpus."""
    store = StoreSettings(url=SecretStr(target.url), schema_name=target.schema)
    runtime = build_runtime(settings.model_copy(update={"store": store}), embedder=embedder)
    try:
        runtime.pipeline.run(FilesystemSource(root=build_corpus(tmp_path / "corpus"), tenant_id=TENANT))
        yield runtime
    finally:
        runtime.close()


@pytest.fixture()
def client(served: Runtime) -> TestClient:
    return TestClient(build_api(served.settings, runtime=served))


def store_of(runtime: Runtime) -> Store:
    assert runtime.store is not None
    return runtime.store


def as_reviewer(idp: DevIdentityProvider, *groups: str, tenant: str = TENANT) -> dict[str, str]:
    return auth(idp, *groups, tenant=tenant, roles=(REVIEWER_ROLE,), oid=REVIEWER)


def ask(client: TestClient, idp: DevIdentityProvider, question: str, *groups: str, oid: str = ALICE) -> dict[str, Any]:
    response = client.post("/v1/chat", json={"question": question}, headers=auth(idp, *groups, oid=oid))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def rate(client: TestClient, idp: DevIdentityProvider, answer_id: str, rating: str, *groups: str, **extra: Any) -> Any:
    headers = extra.pop("headers", None) or auth(idp, *groups, oid=extra.pop("oid", ALICE))
    return client.post("/v1/feedback", json={"answer_id": answer_id, "rating": rating, **extra}, headers=headers)


def items(client: TestClient, idp: DevIdentityProvider, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/v1/review/items", params=params, headers=as_reviewer(idp))
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["items"]
    return found


def inspect(client: TestClient, idp: DevIdentityProvider, item_id: str, *groups: str) -> dict[str, Any]:
    response = client.get(f"/v1/review/items/{item_id}", headers=as_reviewer(idp, *groups))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def queued_for(client: TestClient, idp: DevIdentityProvider, answer_id: str) -> dict[str, Any]:
    [item] = [i for i in items(client, idp) if i["answer_id"] == answer_id]
    return item


def keys(principal: Principal) -> tuple[str, ...]:
    return tuple(sorted(principal.access_keys()))


def forged_answer(principal: Principal, chunks: tuple[ChunkRef, ...], **changes: Any) -> AnswerAudit:
    """An answer record as the answer service writes it, for a principal and chunks of the test's choosing."""
    audit = AnswerAudit(
        tenant_id=principal.tenant_id,
        object_id=principal.object_id,
        principals=keys(principal),
        groups_complete=True,
        question=Q3,
        retrieved=tuple(c.chunk_id for c in chunks),
        cited=tuple(c.chunk_id for c in chunks[:1]),
        outcome="extractive_fallback",
        generator="extractive",
        prompt="grounded-answer/v1",
        timings_ms={},
        streamed=False,
        chunks=chunks,
        answer="Q3 revenue was 12.4 million euros [1].",
    )
    return dataclasses.replace(audit, **changes)


def finance_chunks(client: TestClient, idp: DevIdentityProvider, runtime: Runtime) -> tuple[str, tuple[ChunkRef, ...]]:
    """A finance member's answer about Q3 and the chunks its record lists."""
    answer = ask(client, idp, Q3, FIN)
    [record] = store_of(runtime).reader.page(AuditQuery(tenant_id=TENANT, user=ALICE))
    chunks = tuple(
        ChunkRef(chunk_id=c["chunk_id"], doc_id=c["doc_id"], source=c["source"], version=c["version"])
        for c in record.record["retrieved"]
    )
    assert any(c.source.endswith("finance/q3.md") for c in chunks)
    return answer["answer_id"], chunks


# -- feedback ------------------------------------------------------------------


def test_asker_rates_own_answer_and_a_second_rating_replaces_the_first(
    client: TestClient, served: Runtime, idp: DevIdentityProvider
) -> None:
    answer = ask(client, idp, Q3, FIN)
    first = rate(client, idp, answer["answer_id"], "down", FIN, reason="incorrect", comment="Wrong quarter")
    assert first.status_code == 201, first.text
    second = rate(client, idp, answer["answer_id"], "up", FIN)
    assert second.status_code == 201 and second.json() == first.json()
    with store_of(served).database.read() as session:
        [row] = session.execute(select(FeedbackRow)).scalars()
    assert (row.rating, row.reason, row.comment, row.object_id) == ("up", None, None, ALICE)
    admin = store_of(served).reader.page(AuditQuery(tenant_id=TENANT, user=ALICE))
    submitted = [r for r in admin if r.action == "feedback.submit"]
    assert [r.record["detail"]["rating"] for r in submitted] == ["down", "up"]
    assert "Wrong quarter" not in json.dumps([r.record for r in submitted])  # the comment is never chained
    assert verify(store_of(served).database).ok


def test_nobody_but_the_asker_can_rate_an_answer_and_all_get_the_same_404(
    client: TestClient, served: Runtime, idp: DevIdentityProvider
) -> None:
    answer_id = ask(client, idp, Q3, FIN)["answer_id"]
    search = client.post("/v1/search", json={"query": "picnic"}, headers=auth(idp, FIN))
    [search_record] = [
        r for r in store_of(served).reader.page(AuditQuery(tenant_id=TENANT, user=ALICE)) if r.kind == "search"
    ]
    assert search.status_code == 200
    refusals = [
        rate(client, idp, answer_id, "down", FIN, oid=GRACE),  # another user of the tenant, same groups
        rate(client, idp, answer_id, "down", headers=auth(idp, tenant=OTHER_TENANT, oid=ALICE)),  # same oid elsewhere
        rate(client, idp, answer_id, "down", headers=as_reviewer(idp)),  # a reviewer is not the asker either
        rate(client, idp, "0" * 32, "down", FIN),  # no such answer
        rate(client, idp, search_record.id, "down", FIN),  # a search is not an answer
    ]
    bodies = [assert_problem(r, 404) for r in refusals]
    assert all(body == bodies[0] for body in bodies)  # nothing tells "exists" from "not yours"
    assert answer_id not in json.dumps(bodies)
    with store_of(served).database.read() as session:
        assert list(session.execute(select(FeedbackRow)).scalars()) == []
    assert items(client, idp) == []


def test_feedback_body_is_bounded_and_strict(client: TestClient, idp: DevIdentityProvider) -> None:
    answer_id = ask(client, idp, Q3, FIN)["answer_id"]
    assert_problem(rate(client, idp, answer_id, "down", FIN, comment="x" * 2001), 422)
    assert_problem(rate(client, idp, answer_id, "sideways", FIN), 422)
    assert_problem(rate(client, idp, answer_id, "down", FIN, reason="boring"), 422)
    assert_problem(rate(client, idp, answer_id, "down", FIN, tenant_id=OTHER_TENANT), 422)
    assert_problem(rate(client, idp, answer_id, "down", FIN, comment="nul \x00 byte"), 422)  # PostgreSQL text
    assert_problem(rate(client, idp, "../" + answer_id, "down", FIN), 422)
    assert_problem(client.get("/v1/review/items/a%00b", headers=as_reviewer(idp)), 422)
    assert rate(client, idp, answer_id, "down", FIN, comment="x" * 2000).status_code == 201


# -- the queue --------------------------------------------------------------------


def test_negative_feedback_queues_the_answer_and_a_thumbs_up_withdraws_it(
    client: TestClient, idp: DevIdentityProvider
) -> None:
    answer = ask(client, idp, Q3, FIN)
    assert answer["outcome"] == "grounded" and items(client, idp) == []  # a grounded answer is not queued
    assert rate(client, idp, answer["answer_id"], "down", FIN, reason="outdated").status_code == 201
    item = queued_for(client, idp, answer["answer_id"])
    assert item["reasons"] == ["negative_feedback"] and item["feedback_reason"] == "outdated"
    assert item["status"] == "open" and item["outcome"] == "grounded"
    assert [i["id"] for i in items(client, idp, reason="outdated")] == [item["id"]]
    assert [i["id"] for i in items(client, idp, reason="negative_feedback", status="open")] == [item["id"]]
    assert items(client, idp, reason="harmful") == [] and items(client, idp, status="resolved") == []
    assert_problem(client.get("/v1/review/items", params={"reason": "x"}, headers=as_reviewer(idp)), 422)
    assert rate(client, idp, answer["answer_id"], "up", FIN).status_code == 201
    assert items(client, idp) == []


def test_fallback_and_policy_answers_are_queued_as_they_are_audited(
    served: Runtime,
    chat_stub: tuple[str, Any],  # noqa: F811
) -> None:
    url, stub = chat_stub
    stub.reply = "Revenue went up, trust me."  # no citation: replaced by the extractive answer
    service = AnswerService(
        index=served.index,
        embedder=served.embedder,
        generator=OpenAICompatibleGenerator(base_url=url, api_key="test", model="stub-model", timeout_seconds=5),
        fallback=ExtractiveGenerator(),
        audit=store_of(served).audit_sink,
    )
    asker = Principal(tenant_id=TENANT, object_id=ALICE, groups=frozenset({FIN}))
    result = service.answer(asker, Q3)
    assert result.outcome.value == "extractive_fallback"
    queue = store_of(served).review
    [item] = queue.page(tenant_id=TENANT)
    # The content policy's output rule may record the replacement too: then the item has both reasons.
    assert item.answer_id == result.id and ReviewReason.EXTRACTIVE_FALLBACK in item.reasons
    assert item.asker == ALICE and item.outcome == "extractive_fallback"

    sink = store_of(served).audit_sink
    chunk = (ChunkRef(chunk_id="c1", doc_id="d1"),)
    sink.record(forged_answer(asker, chunk, outcome="grounded", policy=("input:pii-email:warn:email",), id="p" * 32))
    sink.record(forged_answer(asker, chunk, outcome="grounded", policy=("policy=default@abc",), id="v" * 32))
    sink.record(forged_answer(asker, chunk, outcome="grounded", cited=(), id="w" * 32))
    sink.record(forged_answer(asker, chunk, outcome="search", kind="search", id="s" * 32))
    sink.record(forged_answer(asker, chunk, outcome="abstained", cited=(), id="a" * 32))
    reasons = {i.answer_id: i.reasons for i in queue.page(tenant_id=TENANT)}
    assert reasons == {
        result.id: item.reasons,
        "p" * 32: (ReviewReason.POLICY,),
        "w" * 32: (ReviewReason.WEAK_GROUNDING,),
    }
    assert verify(store_of(served).database).ok


def test_review_reasons_rules() -> None:
    asker = Principal(tenant_id=TENANT, object_id=ALICE)
    chunk = (ChunkRef(chunk_id="c1", doc_id="d1"),)
    assert review_reasons(forged_answer(asker, chunk)) == (ReviewReason.EXTRACTIVE_FALLBACK,)
    assert review_reasons(forged_answer(asker, chunk, outcome="grounded")) == ()
    both = forged_answer(asker, chunk, policy=("output:refusal-loop:abstain",))
    assert review_reasons(both) == (ReviewReason.EXTRACTIVE_FALLBACK, ReviewReason.POLICY)


# -- roles and tenants ---------------------------------------------------------------


def test_review_routes_need_the_reviewer_role(client: TestClient, idp: DevIdentityProvider) -> None:
    routes = [
        ("GET", "/v1/review/items", None),
        ("GET", "/v1/review/items/abc", None),
        ("POST", "/v1/review/items/abc/resolve", {"resolution": "correct", "note": ""}),
        ("GET", "/v1/review/export", None),
    ]
    for method, path, body in routes:
        assert_problem(client.request(method, path, json=body), 401)
        for roles in ((), ("Clearance.Auditor",), ("Clearance.Admin",)):
            assert_problem(client.request(method, path, json=body, headers=auth(idp, FIN, roles=roles)), 403)


def test_another_tenants_reviewer_sees_nothing(client: TestClient, idp: DevIdentityProvider) -> None:
    answer = ask(client, idp, Q3, FIN)
    assert rate(client, idp, answer["answer_id"], "down", FIN, reason="incorrect").status_code == 201
    item = queued_for(client, idp, answer["answer_id"])
    resolved = client.post(
        f"/v1/review/items/{item['id']}/resolve",
        json={"resolution": "correct", "note": "fine"},
        headers=as_reviewer(idp),
    )
    assert resolved.status_code == 200
    elsewhere = as_reviewer(idp, tenant=OTHER_TENANT)
    listed = client.get("/v1/review/items", headers=elsewhere)
    assert listed.status_code == 200 and listed.json() == {"items": []}
    assert_problem(client.get(f"/v1/review/items/{item['id']}", headers=elsewhere), 404)
    stolen = client.post(
        f"/v1/review/items/{item['id']}/resolve", json={"resolution": "incorrect", "note": "x"}, headers=elsewhere
    )
    assert_problem(stolen, 404)
    exported = client.get("/v1/review/export", headers=elsewhere)
    assert exported.status_code == 200 and exported.text == ""
    assert Q3_FACT not in listed.text + exported.text


# -- what a reviewer sees ----------------------------------------------------------------


def test_a_reviewer_who_may_read_more_sees_no_more_than_the_asker_could(
    client: TestClient, served: Runtime, idp: DevIdentityProvider
) -> None:
    """The record names a finance chunk the asker's keys cannot read (as a tampered or buggy record would):
    the reviewer, a finance member, still does not get its text, because it is read under the asker's keys."""
    _, retrieved = finance_chunks(client, idp, served)
    chunks = tuple(c for c in retrieved if "finance/" in c.source)  # none the outsider below may read
    outsider = Principal(tenant_id=TENANT, object_id=GRACE)  # member of the tenant, not of finance
    sink = store_of(served).audit_sink
    sink.record(forged_answer(outsider, chunks, answer="", id="1" * 32))
    insider = Principal(tenant_id=TENANT, object_id=LEAD, groups=frozenset({FIN}))
    sink.record(forged_answer(insider, chunks, answer="", id="2" * 32))

    seen = inspect(client, idp, queued_for(client, idp, "1" * 32)["id"], FIN)
    assert seen["passages"] and all(not p["available"] and p["text"] is None for p in seen["passages"])
    assert all(p["source"] is None and p["title"] is None for p in seen["passages"])
    assert Q3_FACT not in json.dumps(seen)
    control = inspect(client, idp, queued_for(client, idp, "2" * 32)["id"], FIN)  # same chunks, asker may read
    assert any(p["available"] and Q3_FACT in p["text"] for p in control["passages"])


def test_a_reviewer_who_may_read_less_sees_what_the_asker_saw(
    client: TestClient, served: Runtime, idp: DevIdentityProvider
) -> None:
    answer = ask(client, idp, Q3, FIN)
    assert rate(client, idp, answer["answer_id"], "down", FIN, reason="incorrect", comment="old").status_code == 201
    seen = inspect(client, idp, queued_for(client, idp, answer["answer_id"])["id"])  # reviewer in no group
    assert seen["question"] == Q3 and seen["answer"] == answer["answer"]
    assert seen["item"]["outcome"] == "grounded"
    cited = [p for p in seen["passages"] if p["cited"]]
    assert cited and seen["citations"] == cited
    assert all(p["available"] for p in cited) and any(Q3_FACT in p["text"] for p in cited)
    assert [c["chunk_id"] for c in answer["citations"]] == [p["chunk_id"] for p in cited]
    assert [(f["rating"], f["reason"], f["comment"]) for f in seen["feedback"]] == [("down", "incorrect", "old")]
    assert "asker" not in json.dumps(seen["item"]) and ALICE not in json.dumps(seen)
    inspections = [
        r
        for r in store_of(served).reader.page(AuditQuery(tenant_id=TENANT, user=REVIEWER))
        if r.action == "review.inspect"
    ]
    assert len(inspections) == 1 and inspections[0].record["target"] == seen["item"]["id"]


def test_chunks_deleted_or_repermissioned_since_are_unavailable(
    client: TestClient, served: Runtime, idp: DevIdentityProvider
) -> None:
    answer = ask(client, idp, Q3, FIN)
    assert rate(client, idp, answer["answer_id"], "down", FIN).status_code == 201
    item_id = queued_for(client, idp, answer["answer_id"])["id"]
    before = inspect(client, idp, item_id, FIN)
    finance = {p["chunk_id"]: p for p in before["passages"] if p["available"] and Q3_FACT in p["text"]}
    assert finance
    [record] = [r for r in store_of(served).reader.page(AuditQuery(tenant_id=TENANT, user=ALICE)) if r.kind == "answer"]
    doc_id = next(c["doc_id"] for c in record.record["retrieved"] if c["chunk_id"] in finance)

    served.index.update_acl(doc_id, AccessList(allow=frozenset({group_key(TENANT, LEAD)})))  # finance lost it
    narrowed = inspect(client, idp, item_id, FIN)
    assert all(not p["available"] for p in narrowed["passages"] if p["chunk_id"] in finance)
    assert Q3_FACT not in json.dumps(narrowed["passages"])

    served.index.update_acl(doc_id, AccessList(allow=frozenset({group_key(TENANT, FIN)})))
    assert any(p["available"] for p in inspect(client, idp, item_id)["passages"] if p["chunk_id"] in finance)
    served.index.delete_document(doc_id)
    gone = inspect(client, idp, item_id, FIN)
    assert all(not p["available"] for p in gone["passages"] if p["chunk_id"] in finance)


def test_after_forget_user_the_question_and_passages_are_gone(
    client: TestClient, served: Runtime, idp: DevIdentityProvider
) -> None:
    answer = ask(client, idp, Q3, FIN)
    assert rate(client, idp, answer["answer_id"], "down", FIN).status_code == 201
    item_id = queued_for(client, idp, answer["answer_id"])["id"]
    store = store_of(served)
    erase_user(store.audit, tenant_id=TENANT, object_id=ALICE, actor="cli:test")
    seen = inspect(client, idp, item_id, FIN)
    assert seen["question"] is None and all(not p["available"] for p in seen["passages"])
    assert Q3_FACT not in json.dumps(seen["passages"])
    assert_problem(rate(client, idp, answer["answer_id"], "up", FIN), 404)  # the erased record is nobody's

    assert store.feedback.delete_user(tenant_id=TENANT, object_id=ALICE) == 1
    assert store.review.delete_user(tenant_id=TENANT, object_id=ALICE) == 1
    assert items(client, idp) == []
    assert verify(store.database).ok


# -- resolve and export ----------------------------------------------------------------------


def test_resolved_items_export_as_evaluation_items(
    client: TestClient, served: Runtime, idp: DevIdentityProvider
) -> None:
    verdicts = {
        "correct": {"resolution": "correct", "note": "good"},
        "incorrect": {
            "resolution": "incorrect",
            "note": "wrong figure",
            "expected_answer": "Q3 revenue was 12.4 million euros.",
            "expected_sources": ["finance/q3.md"],
        },
        "needs_content": {"resolution": "needs_content", "note": "no document on it"},
        "policy_ok": {"resolution": "policy_ok", "note": "fine"},
    }
    ids = {}
    for name, verdict in verdicts.items():
        answer = ask(client, idp, f"{Q3} ({name})", FIN)
        assert rate(client, idp, answer["answer_id"], "down", FIN).status_code == 201
        item_id = queued_for(client, idp, answer["answer_id"])["id"]
        resolved = client.post(f"/v1/review/items/{item_id}/resolve", json=verdict, headers=as_reviewer(idp))
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["status"] == "resolved" and resolved.json()["resolution"] == name
        ids[name] = item_id
    assert_problem(
        client.post(f"/v1/review/items/{ids['correct']}/resolve", json={"resolution": "x"}, headers=as_reviewer(idp)),
        422,
    )
    assert len(items(client, idp, status="resolved")) == 4 and items(client, idp, status="open") == []

    exported = client.get("/v1/review/export", headers=as_reviewer(idp))
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("application/x-ndjson")
    loaded = {item.question_id: item for item in parse_reviewed_items(exported.text.splitlines())}
    assert set(loaded) == {f"review-{ids[n]}" for n in ("correct", "incorrect", "needs_content")}
    correct = loaded[f"review-{ids['correct']}"]
    assert correct.persona == ALICE and correct.question == f"{Q3} (correct)"
    assert any(source.endswith("finance/q3.md") for source in correct.relevant) and correct.references
    incorrect = loaded[f"review-{ids['incorrect']}"]
    assert dict(incorrect.relevant) == {"finance/q3.md": 1}
    assert incorrect.references == ("Q3 revenue was 12.4 million euros.",)
    needs = loaded[f"review-{ids['needs_content']}"]
    assert not needs.answerable and needs.references == ()
    actions = [r.action for r in store_of(served).reader.page(AuditQuery(tenant_id=TENANT, user=REVIEWER))]
    assert actions.count("review.resolve") == 4 and actions[-1] == "review.export"


def test_the_loader_refuses_lines_that_are_not_evaluation_items() -> None:
    good: dict[str, Any] = {
        "id": "q@u",
        "question_id": "q",
        "persona": "u",
        "question": "?",
        "relevant": {},
        "facts": [],
        "references": [],
        "withheld_facts": [],
        "forbidden_sources": [],
        "follow_up_to": None,
    }
    assert parse_reviewed_items([json.dumps(good)])[0].id == "q@u"
    for bad in (
        {**good, "extra": 1},
        {k: v for k, v in good.items() if k != "facts"},
        {**good, "relevant": {"a": "1"}},
    ):
        with pytest.raises(ValueError, match="line 1"):
            parse_reviewed_items([json.dumps(bad)])


# -- store calls for retention and forget-user -------------------------------------------------------


def test_retention_deletes_exactly_what_is_older_than_the_cutoff(target: StoreTarget) -> None:
    store = target.open()
    try:
        now = [1_000.0]
        queue = ReviewQueue(database=store.database, clock=lambda: now[0])
        with store.database.write() as session:
            for number, at in enumerate((1_000.0, 2_000.0)):
                now[0] = at
                queue.add_reasons_in(
                    session,
                    tenant_id=TENANT,
                    answer_id=f"answer-{number}",
                    asker=ALICE,
                    outcome="grounded",
                    reasons=(ReviewReason.POLICY,),
                )
        assert queue.delete_older_than(cutoff=1_999.0) == 1
        assert [i.answer_id for i in queue.page(tenant_id=TENANT)] == ["answer-1"]
        assert queue.delete_older_than(cutoff=2_000.0) == 0  # exactly at the cutoff survives
    finally:
        store.close()


# -- recorded keys ---------------------------------------------------------------------------------------


def test_recorded_keys_read_back_exactly_or_not_at_all() -> None:
    member = Principal(tenant_id=TENANT, object_id=ALICE, groups=frozenset({FIN}))
    assert principal_from_keys(tenant_id=TENANT, object_id=ALICE, keys=keys(member)) == member
    guest = Principal(tenant_id=TENANT, object_id=ALICE, guest=True)
    assert principal_from_keys(tenant_id=TENANT, object_id=ALICE, keys=keys(guest)) == guest
    refused = [
        (*keys(member), tenant_key(OTHER_TENANT)),  # another tenant's key
        (*keys(member), user_key(TENANT, GRACE)),  # another user's key
        (group_key(TENANT, FIN), tenant_key(TENANT)),  # no key of the asker's own
        (*keys(member), "role:admin"),  # a kind we do not know
        (*keys(member), 7),  # not a string
        (),
    ]
    for recorded in refused:
        assert principal_from_keys(tenant_id=TENANT, object_id=ALICE, keys=recorded) is None
    assert principal_from_keys(tenant_id=TENANT, object_id=GRACE, keys=keys(member)) is None
    assert principal_from_keys(tenant_id="not-a-guid", object_id=ALICE, keys=keys(member)) is None


# -- every index implementation reads the asker's passages alike ------------------------------------------


def recorded_answer(
    principal: Principal | None, chunk_ids: list[tuple[str, str]], *, actor: str = ALICE
) -> AuditRecord:
    """An answer's stored record listing ``(chunk id, doc id)``; ``principal`` None: its personal part erased."""
    return AuditRecord(
        chain=TENANT,
        seq=1,
        id="r" * 32,
        at_us=0,
        kind="answer",
        action="answer",
        outcome="grounded",
        actor=actor,
        record={
            "retrieved": [{"chunk_id": c, "doc_id": d, "source": "", "version": ""} for c, d in chunk_ids],
            "cited": [chunk_ids[0][0]],
        },
        personal={"principals": list(keys(principal)), "question": Q3} if principal is not None else None,
        personal_digest="",
        erased_at_us=None,
        prev_hash="",
        hash="",
    )


def test_every_index_shows_the_asker_exactly_the_chunks_their_recorded_keys_read(corpus: ChunkIndex) -> None:
    chunks = [
        (chunk_id, congruence.BY_PATH[path].meta.doc_id)
        for path in ("company/handbook.md", "finance/q3.md", "finance/board.md", "drafts/secret.md", "other/plans.md")
        for chunk_id in sorted(corpus.chunk_ids(congruence.BY_PATH[path].meta.doc_id))
    ]
    chunks.append(("not-a-uuid", "x"))
    texts = {
        chunk_id: path
        for path in congruence.BY_PATH
        for chunk_id in corpus.chunk_ids(congruence.BY_PATH[path].meta.doc_id)
    }

    def shown(principal: Principal | None, actor: str = ALICE) -> set[str]:
        found = passages_as_asked(corpus, recorded_answer(principal, chunks, actor=actor))
        assert [p.number for p in found] == list(range(1, len(chunks) + 1))
        return {texts[p.chunk_id] for p in found if p.available}

    member = Principal(tenant_id=TENANT, object_id=ALICE)
    assert shown(member) == {"company/handbook.md"}
    finance = Principal(tenant_id=TENANT, object_id=ALICE, groups=frozenset({FIN}))
    assert shown(finance) == {"company/handbook.md", "finance/q3.md", "finance/board.md"}
    grace = Principal(tenant_id=TENANT, object_id=GRACE, groups=frozenset({FIN}))
    assert shown(grace, actor=GRACE) == {"company/handbook.md", "finance/q3.md"}  # denied on the board minutes
    assert shown(None) == set()  # erased keys: nobody's view
    assert shown(finance, actor=GRACE) == set()  # keys that are not the actor's own: not trusted
    doc = congruence.BY_PATH["finance/q3.md"]
    corpus.update_acl(doc.meta.doc_id, AccessList(allow=frozenset({group_key(TENANT, LEAD)})))
    assert shown(finance) == {"company/handbook.md", "finance/board.md"}
