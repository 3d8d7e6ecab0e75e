"""Conversations through the real app, on SQLite and PostgreSQL: follow-ups hand the model the stored turns,
and a conversation is its owner's alone (another user, another tenant: 404 on every route, /v1/chat included)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Generator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from acl.dev.idp import DevIdentityProvider
from acl.principal import Principal
from api.routes.answers import _sse_events
from clearance.compose import Runtime, build_api, build_runtime
from clearance.settings import GeneratorKind, GeneratorSettings, Settings, StoreSettings
from core.cancel import Cancellation
from core.errors import InvalidInputError, NotFoundError
from index.embedding import SentenceTransformerEmbedder
from ingest.source import FilesystemSource
from retrieval.records import AnswerEvent, AnswerOutcome, AnswerResult, ResultEvent, TokenEvent
from store.conversations import HIDDEN_ANSWER, HISTORY_MESSAGES, MAX_MESSAGES, ConversationStore, Owner, title_of
from tests import store_fixtures
from tests.conftest import OTHER_TENANT, TENANT
from tests.store_fixtures import StoreTarget
from tests.test_api import assert_problem, auth, sse_events
from tests.test_generators import chat_stub  # noqa: F401  (fixture)
from tests.test_permissions import ALICE, FIN, GRACE, build_corpus

target = store_fixtures.target
REPLY = "Q3 revenue was 12.4 million euros [1]."


@pytest.fixture()
def chatting(
    target: StoreTarget,
    settings: Settings,
    embedder: SentenceTransformerEmbedder,
    tmp_path: Path,
    chat_stub: tuple[str, Any],  # noqa: F811
) -> Iterator[Runtime]:
    """The whole runtime, its state store on the test's backend, its model a local OpenAI-compatible server."""
    url, stub = chat_stub
    stub.reply = REPLY
    generator = GeneratorSettings(
        kind=GeneratorKind.OPENAI, base_url=url, api_key="test", model="stub-model", timeout_seconds=5
    )
    store = StoreSettings(url=SecretStr(target.url), schema_name=target.schema)
    runtime = build_runtime(settings.model_copy(update={"store": store, "generator": generator}), embedder=embedder)
    try:
        runtime.pipeline.run(FilesystemSource(root=build_corpus(tmp_path / "corpus"), tenant_id=TENANT))
        yield runtime
    finally:
        runtime.close()


@pytest.fixture()
def client(chatting: Runtime) -> TestClient:
    return TestClient(build_api(chatting.settings, runtime=chatting))


def ask(client: TestClient, headers: dict[str, str], question: str, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/chat", json={"question": question, **body}, headers=headers)
    assert response.status_code == 200, response.text
    answered: dict[str, Any] = response.json()
    return answered


def test_a_follow_up_hands_the_model_the_stored_conversation(
    client: TestClient,
    idp: DevIdentityProvider,
    chat_stub: tuple[str, Any],  # noqa: F811
) -> None:
    _, stub = chat_stub
    first = ask(client, auth(idp, FIN), "What was the Q3 revenue?")
    conversation = first["conversation_id"]
    assert conversation and first["answer"]
    assert [m["role"] for m in stub.requests[-1]["messages"]] == ["system", "user"]  # a new conversation: no history
    second = ask(client, auth(idp, FIN), "How much did the Q3 revenue grow?", conversation_id=conversation)
    assert second["conversation_id"] == conversation and len(stub.requests) == 2
    sent = stub.requests[-1]["messages"]
    assert sent[1:3] == [
        {"role": "user", "content": "What was the Q3 revenue?"},
        {"role": "assistant", "content": first["answer"]},
    ]
    assert "How much did the Q3 revenue grow?" in sent[-1]["content"]
    kept = client.get(f"/v1/conversations/{conversation}", headers=auth(idp, FIN)).json()
    assert [(m["role"], m["content"]) for m in kept["messages"]] == [
        ("user", "What was the Q3 revenue?"),
        ("assistant", first["answer"]),
        ("user", "How much did the Q3 revenue grow?"),
        ("assistant", second["answer"]),
    ]
    answer = kept["messages"][1]
    assert answer["answer_id"] == first["answer_id"] and answer["outcome"] == first["outcome"]
    assert answer["citations"] == first["citations"] and answer["citations"][0]["source"] == "finance/q3.md"
    assert kept["messages"][0].get("answer_id") is None
    assert isinstance(kept["created_at"], float) and kept["updated_at"] >= kept["created_at"]


def test_a_stored_answer_is_hidden_once_the_asker_may_no_longer_read_what_it_cited(
    client: TestClient,
    idp: DevIdentityProvider,
    chat_stub: tuple[str, Any],  # noqa: F811
) -> None:
    """A conversation is a copy of documents' text: removing the asker from a group removes it from view too."""
    _, stub = chat_stub
    first = ask(client, auth(idp, FIN), "What was the Q3 revenue?")
    assert first["citations"][0]["source"] == "finance/q3.md"
    conversation = first["conversation_id"]
    still_member = client.get(f"/v1/conversations/{conversation}", headers=auth(idp, FIN)).json()
    assert still_member["messages"][1]["content"] == first["answer"]

    removed = auth(idp)  # the same person, no longer in the finance group
    shown = client.get(f"/v1/conversations/{conversation}", headers=removed)
    assert shown.status_code == 200
    answer = shown.json()["messages"][1]
    assert answer["content"] == HIDDEN_ANSWER and answer["citations"] == []
    assert first["answer"] not in shown.text and "12.4 million" not in shown.text
    assert answer["answer_id"] == first["answer_id"]  # feedback on it still works; the text is what is withheld

    asked = len(stub.requests)
    ask(client, removed, "When is the company picnic?", conversation_id=conversation)
    assert len(stub.requests) == asked + 1, "the follow-up never reached the model: nothing was checked"
    handed = [m["content"] for m in stub.requests[-1]["messages"]]
    assert first["answer"] not in " ".join(handed), "an answer the asker may no longer read reached the model"
    assert "What was the Q3 revenue?" in handed  # their own question stays


def test_conversations_are_listed_most_recently_active_first(client: TestClient, idp: DevIdentityProvider) -> None:
    older = ask(client, auth(idp, FIN), "When is the company picnic?")["conversation_id"]
    newer = ask(client, auth(idp, FIN), "What was the Q3 revenue?")["conversation_id"]
    listed = client.get("/v1/conversations", headers=auth(idp, FIN)).json()["conversations"]
    assert [c["id"] for c in listed] == [newer, older]
    assert listed[1]["title"] == "When is the company picnic?" and listed[1]["turns"] == 2
    ask(client, auth(idp, FIN), "Where is it?", conversation_id=older)  # activity moves it to the top
    listed = client.get("/v1/conversations", headers=auth(idp, FIN)).json()["conversations"]
    assert [(c["id"], c["turns"]) for c in listed] == [(older, 4), (newer, 2)]
    page = client.get("/v1/conversations", params={"limit": 1, "offset": 1}, headers=auth(idp, FIN)).json()
    assert [c["id"] for c in page["conversations"]] == [newer]
    assert_problem(client.get("/v1/conversations", params={"limit": 0}, headers=auth(idp, FIN)), 422)
    assert_problem(client.get("/v1/conversations", params={"limit": 101}, headers=auth(idp, FIN)), 422)


def test_another_user_cannot_read_continue_or_delete_a_conversation(
    client: TestClient,
    idp: DevIdentityProvider,
    chat_stub: tuple[str, Any],  # noqa: F811
) -> None:
    _, stub = chat_stub
    asked = ask(client, auth(idp, FIN), "What was the Q3 revenue?")
    conversation = asked["conversation_id"]
    strangers = {
        "same tenant, other user": auth(idp, FIN, oid=GRACE),
        "other tenant, same object id": auth(idp, tenant=OTHER_TENANT, oid=ALICE),
    }
    for who, headers in strangers.items():
        calls_before = len(stub.requests)
        for response in (
            client.get(f"/v1/conversations/{conversation}", headers=headers),
            client.delete(f"/v1/conversations/{conversation}", headers=headers),
            client.post("/v1/chat", json={"question": "And?", "conversation_id": conversation}, headers=headers),
            client.post(
                "/v1/chat", json={"question": "And?", "conversation_id": conversation, "stream": True}, headers=headers
            ),
        ):
            body = assert_problem(response, 404)
            assert "12.4" not in response.text and "Q3" not in response.text, who
            assert body["title"] == "Not Found"
        assert client.get("/v1/conversations", headers=headers).json() == {"conversations": []}, who
        assert len(stub.requests) == calls_before, f"{who}: the model was called for someone else's conversation"
    # The owner's conversation is untouched by every attempt.
    kept = client.get(f"/v1/conversations/{conversation}", headers=auth(idp, FIN)).json()
    assert len(kept["messages"]) == 2
    assert_problem(client.get("/v1/conversations/not-an-id", headers=auth(idp, FIN)), 404)
    assert_problem(client.get("/v1/conversations", headers={}), 401)


def test_owner_deletes_a_conversation(client: TestClient, idp: DevIdentityProvider) -> None:
    conversation = ask(client, auth(idp, FIN), "What was the Q3 revenue?")["conversation_id"]
    assert client.delete(f"/v1/conversations/{conversation}", headers=auth(idp, FIN)).status_code == 204
    assert_problem(client.get(f"/v1/conversations/{conversation}", headers=auth(idp, FIN)), 404)
    assert_problem(client.delete(f"/v1/conversations/{conversation}", headers=auth(idp, FIN)), 404)
    response = client.post("/v1/chat", json={"question": "And?", "conversation_id": conversation}, headers=auth(idp))
    assert_problem(response, 404)


def test_a_request_with_history_is_stateless(
    client: TestClient,
    idp: DevIdentityProvider,
    chat_stub: tuple[str, Any],  # noqa: F811
) -> None:
    _, stub = chat_stub
    history = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi."}]
    answered = ask(client, auth(idp, FIN), "What was the Q3 revenue?", history=history)
    assert answered["conversation_id"] is None
    assert stub.requests[-1]["messages"][1:3] == history  # the client's history, as today
    assert client.get("/v1/conversations", headers=auth(idp, FIN)).json() == {"conversations": []}


def test_history_and_conversation_id_together_are_refused(client: TestClient, idp: DevIdentityProvider) -> None:
    conversation = ask(client, auth(idp, FIN), "What was the Q3 revenue?")["conversation_id"]
    body = {
        "question": "And?",
        "conversation_id": conversation,
        "history": [{"role": "user", "content": "Something else entirely"}],
    }
    assert_problem(client.post("/v1/chat", json=body, headers=auth(idp, FIN)), 422)
    assert len(client.get(f"/v1/conversations/{conversation}", headers=auth(idp, FIN)).json()["messages"]) == 2


def test_a_streamed_answer_is_kept_and_done_names_the_conversation(
    client: TestClient,
    idp: DevIdentityProvider,
    chat_stub: tuple[str, Any],  # noqa: F811
) -> None:
    _, stub = chat_stub
    body = {"question": "What was the Q3 revenue?", "stream": True}
    with client.stream("POST", "/v1/chat", json=body, headers=auth(idp, FIN)) as response:
        events = sse_events(response.read().decode())
    done = dict(events)["done"]
    conversation = done["conversation_id"]
    assert conversation and done["answer_id"]
    follow = {"question": "How much did the Q3 revenue grow?", "stream": True, "conversation_id": conversation}
    with client.stream("POST", "/v1/chat", json=follow, headers=auth(idp, FIN)) as response:
        events = sse_events(response.read().decode())
    assert dict(events)["done"]["conversation_id"] == conversation
    assert {"role": "user", "content": "What was the Q3 revenue?"} in stub.requests[-1]["messages"]
    kept = client.get(f"/v1/conversations/{conversation}", headers=auth(idp, FIN)).json()
    assert [m["role"] for m in kept["messages"]] == ["user", "assistant", "user", "assistant"]
    assert kept["messages"][1]["answer_id"] == done["answer_id"]


def test_an_abandoned_stream_keeps_nothing_and_a_finished_one_is_kept_once() -> None:
    """The route's stream: the answer is kept when its result arrives, never when the client left before."""
    principal = Principal(tenant_id=TENANT, object_id=ALICE)
    result = AnswerResult(answer="Done [1].", citations=(), outcome=AnswerOutcome.GROUNDED, generator="g", prompt="p")
    kept: list[AnswerResult] = []

    def keep(answer: AnswerResult) -> str:
        kept.append(answer)
        return "c" * 32

    def events() -> Generator[AnswerEvent, None, None]:
        yield TokenEvent("Done [1].")
        yield ResultEvent(result)

    async def abandon() -> None:
        stream = _sse_events(events(), Cancellation(), principal, keep)
        assert isinstance(stream, AsyncGenerator)
        first = await stream.__anext__()
        assert first.event == "token"
        await stream.aclose()  # what the response does when the client disconnects

    async def finish() -> list[tuple[str | None, Any]]:
        return [(sse.event, sse.data) async for sse in _sse_events(events(), Cancellation(), principal, keep)]

    anyio.run(abandon)
    assert kept == []
    sent = anyio.run(finish)
    assert kept == [result]
    done = json.loads(next(data for event, data in sent if event == "done"))
    assert done["conversation_id"] == "c" * 32


def test_a_full_conversation_asks_for_a_new_one(
    client: TestClient, chatting: Runtime, idp: DevIdentityProvider
) -> None:
    assert chatting.store is not None
    conversations = chatting.store.conversations
    owner = Owner(tenant_id=TENANT, object_id=ALICE)
    result = AnswerResult(answer="Yes.", citations=(), outcome=AnswerOutcome.ABSTAINED, generator="g", prompt="p")
    conversation = conversations.finish(conversations.begin(owner, conversation_id=None), question="Q0", result=result)
    assert conversation is not None
    for number in range(1, MAX_MESSAGES // 2):
        exchange = conversations.begin(owner, conversation_id=conversation)
        conversations.finish(exchange, question=f"Q{number}", result=result)
    history = conversations.begin(owner, conversation_id=None)  # a new one is fine
    assert history.history == ()
    response = client.post("/v1/chat", json={"question": "And?", "conversation_id": conversation}, headers=auth(idp))
    assert f"{MAX_MESSAGES} messages" in assert_problem(response, 422)["detail"]
    with pytest.raises(InvalidInputError):
        conversations.begin(owner, conversation_id=conversation)


def test_history_is_the_most_recent_messages_in_order(target: StoreTarget) -> None:
    store = target.open()
    try:
        conversations: ConversationStore = store.conversations
        owner = Owner(tenant_id=TENANT, object_id=ALICE)
        conversation: str | None = None
        for number in range(HISTORY_MESSAGES):
            result = AnswerResult(
                answer=f"A{number}", citations=(), outcome=AnswerOutcome.GROUNDED, generator="g", prompt="p"
            )
            exchange = conversations.begin(owner, conversation_id=conversation)
            conversation = conversations.finish(exchange, question=f"Q{number}", result=result)
        assert conversation is not None
        history = conversations.begin(owner, conversation_id=conversation).history
        expected = [
            (role, f"{letter}{n}") for n in range(10, 20) for role, letter in (("user", "Q"), ("assistant", "A"))
        ]
        assert list(history) == expected
        with pytest.raises(NotFoundError):
            conversations.begin(Owner(tenant_id=OTHER_TENANT, object_id=ALICE), conversation_id=conversation)
        with pytest.raises(InvalidInputError):
            conversations.begin(owner, conversation_id=conversation, client_history=[("user", "x")])
    finally:
        store.close()


def test_a_title_is_the_first_question_on_one_line_shortened() -> None:
    assert title_of("  What was\n the Q3   revenue? ") == "What was the Q3 revenue?"
    long = title_of("word " * 40)
    assert len(long) <= 80 and long.endswith("…") and not long.endswith(" …")
    assert title_of("x" * 200) == "x" * 79 + "…"
