"""The bundled sample company: answers depend on who asks (samples/questions.json)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from acl.groups import UnavailableGroupResolver
from acl.tokens import TokenValidator
from clearance.compose import Runtime, build_api, build_runtime
from clearance.samples import sample_sources
from clearance.settings import IndexSettings, Mode, Settings
from index.embedding import SentenceTransformerEmbedder
from retrieval.prompts import ABSTAIN_ANSWER
from tests.conftest import REPO_ROOT

SAMPLES = REPO_ROOT / "samples"
QUESTIONS: list[dict[str, Any]] = json.loads((SAMPLES / "questions.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sample_runtime(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> Iterator[Runtime]:
    settings = Settings(
        mode=Mode.DEVELOPMENT, data_dir=tmp_path_factory.mktemp("samples"), index=IndexSettings(location=":memory:")
    )
    runtime = build_runtime(settings, embedder=embedder)
    assert runtime.dev is not None
    sources = sample_sources(runtime.dev.directory)
    assert len(sources) == len(runtime.dev.directory.tenant_names)
    for source in sources.values():
        job = runtime.pipeline.run(source)
        assert not job.errors, job.errors
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def sample_client(sample_runtime: Runtime) -> TestClient:
    return TestClient(build_api(sample_runtime.settings, runtime=sample_runtime))


def headers(runtime: Runtime, user: str) -> dict[str, str]:
    assert runtime.dev is not None
    return {"Authorization": f"Bearer {runtime.dev.idp.mint_for(runtime.dev.directory.user(user))}"}


def sources(client: TestClient, runtime: Runtime, user: str, query: str, top_k: int) -> list[str]:
    response = client.post("/v1/search", json={"query": query, "top_k": top_k}, headers=headers(runtime, user))
    assert response.status_code == 200, response.text
    return [hit["source"] for hit in response.json()["results"]]


def _relative(document: str) -> str:
    return document.split("/", 1)[1]  # questions name "<tenant folder>/<path>"; sources are paths in the source


def test_sample_corpus_has_the_promised_shape() -> None:
    files = [p for p in (SAMPLES / "corpus").rglob("*") if p.is_file() and not p.name.endswith(".acl.json")]
    formats = {p.suffix for p in files}
    assert len(files) >= 30 and {".docx", ".pptx", ".xlsx", ".pdf", ".html", ".md", ".eml"} <= formats
    users = json.loads((SAMPLES / "users.json").read_text(encoding="utf-8"))["users"]
    assert len(users) >= 6 and any(u["guest"] for u in users) and any(len(u["groups"]) > 200 for u in users)


def test_every_sample_user_is_covered_by_every_question() -> None:
    names = {u["name"] for u in json.loads((SAMPLES / "users.json").read_text(encoding="utf-8"))["users"]}
    for question in QUESTIONS:
        assert set(question["visible_to"]) | set(question["hidden_from"]) == names, question["id"]


@pytest.mark.parametrize("question", QUESTIONS, ids=[q["id"] for q in QUESTIONS])
def test_hidden_documents_never_reach_the_people_they_are_hidden_from(
    sample_client: TestClient, sample_runtime: Runtime, question: dict[str, Any]
) -> None:
    for user in question["hidden_from"]:
        found = sources(sample_client, sample_runtime, user, question["question"], top_k=50)
        assert _relative(question["document"]) not in found, user


@pytest.mark.parametrize("question", QUESTIONS, ids=[q["id"] for q in QUESTIONS])
def test_permitted_people_find_the_answering_document(
    sample_client: TestClient, sample_runtime: Runtime, question: dict[str, Any]
) -> None:
    for user in question["visible_to"]:
        found = sources(sample_client, sample_runtime, user, question["question"], top_k=5)
        assert _relative(question["document"]) in found, user


def test_answer_depends_on_who_asks(sample_client: TestClient, sample_runtime: Runtime) -> None:
    question = next(q for q in QUESTIONS if q["hidden_from"] and len(q["visible_to"]) >= 1)
    allowed, refused = question["visible_to"][0], question["hidden_from"][0]
    yes = sample_client.post(
        "/v1/chat", json={"question": question["question"]}, headers=headers(sample_runtime, allowed)
    )
    no = sample_client.post(
        "/v1/chat", json={"question": question["question"]}, headers=headers(sample_runtime, refused)
    )
    assert question["answer_contains"] in yes.json()["answer"] or yes.json()["citations"]
    assert question["answer_contains"] not in no.text
    assert all(c["source"] != _relative(question["document"]) for c in no.json()["citations"])


def test_overage_user_without_group_resolution_sees_only_tenant_wide_documents(sample_runtime: Runtime) -> None:
    assert sample_runtime.dev is not None
    frank = sample_runtime.dev.directory.user("frank")
    unresolved = TokenValidator(
        policy=sample_runtime.tokens._policy, keys=sample_runtime.tokens._keys, groups=UnavailableGroupResolver()
    )
    principal = unresolved.authenticate(sample_runtime.dev.idp.mint_for(frank))
    assert not principal.groups_complete and not principal.groups
    sales = [q for q in QUESTIONS if "frank" in q["visible_to"] and "/sales/" in q["document"]]
    assert sales, "the samples must hold a sales question for the overage user"
    for question in sales:
        vector = sample_runtime.embedder.embed_query(question["question"])
        found = {p.source for p in sample_runtime.index.search(principal, vector, top_k=50)}
        assert _relative(question["document"]) not in found
    resolved = sample_runtime.tokens.authenticate(sample_runtime.dev.idp.mint_for(frank))
    assert resolved.groups_complete and len(resolved.groups) > 200


def test_other_tenant_user_gets_an_abstention_for_brightwater_questions(
    sample_client: TestClient, sample_runtime: Runtime
) -> None:
    question = next(q for q in QUESTIONS if "erin" in q["hidden_from"] and "/finance/" in q["document"])
    body = sample_client.post(
        "/v1/chat", json={"question": question["question"]}, headers=headers(sample_runtime, "erin")
    ).json()
    assert question["answer_contains"] not in body["answer"]
    assert all(not c["source"].startswith(("finance/", "hr/")) for c in body["citations"])


def test_no_document_without_acl_is_answerable(sample_client: TestClient, sample_runtime: Runtime) -> None:
    drafts = [q for q in QUESTIONS if "/drafts/" in q["document"]]
    assert drafts
    for question in drafts:
        for user in ("carol", "alice", "grace"):
            body = sample_client.post(
                "/v1/chat", json={"question": question["question"]}, headers=headers(sample_runtime, user)
            ).json()
            assert question["answer_contains"] not in body["answer"]
            assert body["answer"] == ABSTAIN_ANSWER or all("drafts/" not in c["source"] for c in body["citations"])


def test_sample_paths_exist(sample_runtime: Runtime) -> None:
    for question in QUESTIONS:
        assert (SAMPLES / "corpus" / question["document"]).is_file(), question["document"]
