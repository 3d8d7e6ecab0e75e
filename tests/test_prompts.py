"""Versioned prompts on SQLite and PostgreSQL: seeding, immutability, tenant scope, activation and rollback,
the next request using the new version, and whole templates under concurrent requests during rollbacks."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from acl.principal import Principal
from clearance.compose import Runtime, build_runtime
from clearance.settings import Settings, StoreSettings
from core.errors import InvalidInputError, NotFoundError
from index.embedding import SentenceTransformerEmbedder
from ingest.source import FilesystemSource
from retrieval.answer import AnswerService
from retrieval.generation.extractive import ExtractiveGenerator
from retrieval.generation.openai_compatible import OpenAICompatibleGenerator
from retrieval.prompt_files import builtin_prompts, parse_prompt, to_toml
from retrieval.prompt_template import ABSTAIN_ANSWER, PromptTemplate, PromptTemplateError
from retrieval.prompts import GROUNDED_ANSWER, GROUNDED_ANSWER_V1, chat_messages
from store.audit_log import RecordKind
from store.audit_query import AuditQuery
from store.audit_verify import verify
from store.prompts import Acceptance, Gate
from store.state import Store
from tests import store_fixtures, test_generators
from tests.conftest import G1, OTHER_TENANT, TENANT, write_acl, write_doc
from tests.store_fixtures import StoreTarget

target = store_fixtures.target
state_store = store_fixtures.state_store
model_stub = test_generators.chat_stub  # a local OpenAI-compatible server (a process boundary)
ADMIN = "a0000000-0000-4000-8000-000000000001"
READER = Principal(tenant_id=TENANT, object_id="f0000000-0000-4000-8000-000000000001", groups=frozenset({G1}))
# The text answers used before prompts were versioned (retrieval/prompts.py at b23abfc): v1 must not change it.
TODAYS_SYSTEM = (
    "You answer employees' questions using only the numbered passages you are given. "
    "Write one to four short sentences. End every sentence with the number of the passage "
    "that supports it, in square brackets, like this: The limit is 40 euros [2]. "
    "Never use knowledge that is not in the passages. If the passages do not answer the "
    f"question, reply exactly: {ABSTAIN_ANSWER}"
)
FORCED = Acceptance(gate=Gate.FORCED, reason="tested by hand")


def version(label: str, words: str = "one to three") -> PromptTemplate:
    return PromptTemplate(
        name=GROUNDED_ANSWER, version=label, system=TODAYS_SYSTEM.replace("one to four", words), description=label
    )


def test_v1_file_is_the_text_answers_used_before_versioning() -> None:
    assert GROUNDED_ANSWER_V1.id == "grounded-answer/v1" and GROUNDED_ANSWER_V1.system == TODAYS_SYSTEM
    passages: list[Any] = []
    messages = chat_messages(GROUNDED_ANSWER_V1, question="Q?", passages=passages)
    assert messages[-1]["content"] == "Passages:\n\n\n\nQuestion: Q?"
    assert [f.template.id for f in builtin_prompts() if f.default] == ["grounded-answer/v1"]


def test_a_prompt_file_round_trips_and_bad_ones_are_refused() -> None:
    assert parse_prompt(to_toml(version("v2"))).template == version("v2")
    for bad, why in [
        (version("v2").system.replace(ABSTAIN_ANSWER, "I don't know."), "abstention sentence"),
        ("", "empty"),
    ]:
        with pytest.raises(PromptTemplateError, match=why):
            parse_prompt(to_toml(PromptTemplate(name=GROUNDED_ANSWER, version="v2", system=bad)))
    twice = PromptTemplate(name=GROUNDED_ANSWER, version="v2", system=TODAYS_SYSTEM, user="{question} {question}")
    with pytest.raises(PromptTemplateError, match="passages"):
        parse_prompt(to_toml(twice))
    with pytest.raises(PromptTemplateError, match="unknown keys"):
        parse_prompt(to_toml(version("v2")) + 'temperature = "hot"\n')
    with pytest.raises(PromptTemplateError, match="version"):
        parse_prompt(to_toml(version("../v2")))


def test_a_question_cannot_inject_into_the_passages_placeholder() -> None:
    rendered = GROUNDED_ANSWER_V1.render_user(passages="[1] fact", question="{passages} again?")
    assert rendered == "Passages:\n\n[1] fact\n\nQuestion: {passages} again?"


def test_builtins_are_seeded_once_and_an_edited_builtin_refuses_to_open(target: StoreTarget) -> None:
    store = target.open()
    try:
        assert [v.template.id for v in store.prompts.versions(tenant_id=TENANT)] == ["grounded-answer/v1"]
        assert store.prompts.seed(builtin_prompts()) == []  # idempotent
        edited = parse_prompt(to_toml(GROUNDED_ANSWER_V1).replace("one to four", "one to five"))
        with pytest.raises(PromptTemplateError, match="immutable"):
            store.prompts.seed([edited])
    finally:
        store.close()
    target.open().close()  # the unchanged files still open the store


def test_added_versions_are_immutable_and_belong_to_their_tenant(state_store: Store) -> None:
    prompts = state_store.prompts
    prompts.add(version("v2"), tenant_id=TENANT, actor=ADMIN)
    with pytest.raises(InvalidInputError, match="exists already"):
        prompts.add(version("v2", "two"), tenant_id=TENANT, actor=ADMIN)
    with pytest.raises(InvalidInputError, match="exists already"):
        prompts.add(version("v1", "two"), tenant_id=OTHER_TENANT, actor=ADMIN)  # a built-in's label
    assert prompts.get(tenant_id=TENANT, name=GROUNDED_ANSWER, version="v2").template == version("v2")
    # The other tenant cannot see, diff or activate it: "not found", as for a version that does not exist.
    assert [v.template.id for v in prompts.versions(tenant_id=OTHER_TENANT)] == ["grounded-answer/v1"]
    for attempt in (
        lambda: prompts.get(tenant_id=OTHER_TENANT, name=GROUNDED_ANSWER, version="v2"),
        lambda: prompts.diff(tenant_id=OTHER_TENANT, name=GROUNDED_ANSWER, old="v1", new="v2"),
        lambda: prompts.activate(
            tenant_id=OTHER_TENANT, name=GROUNDED_ANSWER, version="v2", actor=ADMIN, acceptance=FORCED
        ),
    ):
        with pytest.raises(NotFoundError, match=r"no prompt version grounded-answer/v2$"):
            attempt()


def test_diff_shows_the_changed_sentence(state_store: Store) -> None:
    state_store.prompts.add(version("v2"), tenant_id=TENANT, actor=ADMIN)
    diff = state_store.prompts.diff(tenant_id=TENANT, name=GROUNDED_ANSWER, old="v1", new="v2")
    assert diff.startswith("--- grounded-answer/v1\n+++ grounded-answer/v2\n")
    assert "-  Write one to four short sentences.\n+  Write one to three short sentences.\n" in diff
    assert state_store.prompts.diff(tenant_id=TENANT, name=GROUNDED_ANSWER, old="v1", new="v1") == ""


def test_rollback_returns_to_the_version_active_before_and_every_change_is_audited(state_store: Store) -> None:
    prompts = state_store.prompts

    def active() -> str:
        return prompts.active(tenant_id=TENANT, name=GROUNDED_ANSWER).template.version

    with pytest.raises(InvalidInputError, match="nothing to roll back"):
        prompts.rollback(tenant_id=TENANT, name=GROUNDED_ANSWER, actor=ADMIN)
    prompts.add(version("v2"), tenant_id=TENANT, actor=ADMIN)
    prompts.add(version("v3", "one or two"), tenant_id=TENANT, actor=ADMIN)
    passed = Acceptance(gate=Gate.PASSED, summary={"resolved_safely": 0.83})
    prompts.activate(tenant_id=TENANT, name=GROUNDED_ANSWER, version="v2", actor=ADMIN, acceptance=passed)
    prompts.activate(tenant_id=TENANT, name=GROUNDED_ANSWER, version="v3", actor=ADMIN, acceptance=FORCED)
    assert active() == "v3"
    assert prompts.rollback(tenant_id=TENANT, name=GROUNDED_ANSWER, actor=ADMIN, reason="v3 rambles").version == "v2"
    assert prompts.rollback(tenant_id=TENANT, name=GROUNDED_ANSWER, actor=ADMIN).version == "v1"
    assert active() == "v1"
    with pytest.raises(InvalidInputError, match="nothing to roll back"):
        prompts.rollback(tenant_id=TENANT, name=GROUNDED_ANSWER, actor=ADMIN)
    assert prompts.active(tenant_id=OTHER_TENANT, name=GROUNDED_ANSWER).template == GROUNDED_ANSWER_V1
    history = prompts.history(tenant_id=TENANT, name=GROUNDED_ANSWER)
    assert [(a.action, a.previous, a.version, a.gate) for a in history] == [
        ("activate", "v1", "v2", "passed"),
        ("activate", "v2", "v3", "forced"),
        ("rollback", "v3", "v2", "rollback"),
        ("rollback", "v2", "v1", "rollback"),
    ]
    records = list(state_store.reader.export(AuditQuery(tenant_id=TENANT, kinds=(RecordKind.ADMIN,))))
    changes = [
        (r.action, r.record["target"], r.record["detail"].get("gate"))
        for r in records
        if r.action.startswith("prompt.")
    ]
    assert changes == [
        ("prompt.add", "grounded-answer/v2", None),
        ("prompt.add", "grounded-answer/v3", None),
        ("prompt.activate", "grounded-answer/v2", "passed"),
        ("prompt.activate", "grounded-answer/v3", "forced"),
        ("prompt.rollback", "grounded-answer/v2", "rollback"),
        ("prompt.rollback", "grounded-answer/v1", "rollback"),
    ]
    forced = next(r for r in records if r.action == "prompt.activate" and r.record["target"].endswith("v3"))
    assert forced.actor == ADMIN and forced.personal is not None
    assert forced.personal["private"] == {"reason": "tested by hand"}
    assert "tested by hand" not in json.dumps(forced.record)  # the reason is erasable, never chained in clear
    assert verify(state_store.database).ok


def test_a_forced_activation_needs_a_reason() -> None:
    with pytest.raises(InvalidInputError, match="reason"):
        Acceptance(gate=Gate.FORCED, reason="  ")


# -- the answer service over the store ---------------------------------------------------------


@pytest.fixture()
def served(
    target: StoreTarget, settings: Settings, embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> Iterator[Runtime]:
    """The runtime with its store on the test's backend, over a small policy corpus."""
    store = StoreSettings(url=SecretStr(target.url), schema_name=target.schema)
    runtime = build_runtime(settings.model_copy(update={"store": store}), embedder=embedder)
    try:
        docs = tmp_path / "docs"
        write_doc(docs, "travel.md", "# Travel policy\n\n## Per diem\n\nThe meal per diem in Berlin is 55.50 EUR.")
        write_acl(docs, allow=[f"group:{G1}"])
        runtime.pipeline.run(FilesystemSource(root=docs, tenant_id=TENANT))
        yield runtime
    finally:
        runtime.close()


def model_service(runtime: Runtime, url: str) -> AnswerService:
    assert runtime.store is not None
    generator = OpenAICompatibleGenerator(base_url=url, api_key="test", model="stub-model", timeout_seconds=10)
    return AnswerService(
        index=runtime.index,
        embedder=runtime.embedder,
        generator=generator,
        fallback=ExtractiveGenerator(),
        prompts=runtime.store.prompt_source,
        audit=runtime.store.audit_sink,
    )


def test_an_activation_applies_to_the_next_request_without_a_restart(
    served: Runtime, target: StoreTarget, model_stub: tuple[str, Any]
) -> None:
    url, stub = model_stub
    stub.reply = "The Berlin per diem is 55.50 EUR [1]."
    service = model_service(served, url)
    assert service.answer(READER, "What is the per diem in Berlin?").prompt == "grounded-answer/v1"
    # Another process (a replica, `clearance prompts`) activates: its own connection to the same store.
    other = target.open()
    try:
        other.prompts.add(version("v2"), tenant_id=TENANT, actor=ADMIN)
        other.prompts.activate(tenant_id=TENANT, name=GROUNDED_ANSWER, version="v2", actor=ADMIN, acceptance=FORCED)
        result = service.answer(READER, "What is the per diem in Berlin?")
        assert result.prompt == "grounded-answer/v2"
        assert stub.requests[-1]["messages"][0]["content"] == version("v2").system
        other.prompts.rollback(tenant_id=TENANT, name=GROUNDED_ANSWER, actor=ADMIN)
    finally:
        other.close()
    events = list(service.stream(READER, "What is the per diem in Berlin?"))
    assert stub.requests[-1]["messages"][0]["content"] == TODAYS_SYSTEM
    assert served.store is not None
    [last] = list(served.store.reader.export(AuditQuery(tenant_id=TENANT, kinds=(RecordKind.ANSWER,))))[-1:]
    assert last.record["prompt"] == "grounded-answer/v1" and events


def test_concurrent_requests_during_rollbacks_each_use_one_whole_version_and_record_it(
    served: Runtime, model_stub: tuple[str, Any]
) -> None:
    url, stub = model_stub
    stub.reply = "The Berlin per diem is 55.50 EUR [1]."
    service = model_service(served, url)
    assert served.store is not None
    prompts = served.store.prompts
    texts = {"grounded-answer/v1": TODAYS_SYSTEM}
    for label, words in (("v2", "one to three"), ("v3", "one or two")):
        prompts.add(version(label, words), tenant_id=TENANT, actor=ADMIN)
        texts[f"grounded-answer/{label}"] = version(label, words).system
    results: dict[str, str] = {}
    errors: list[BaseException] = []
    stop = threading.Event()

    def ask(worker: int) -> None:
        number = 0
        while not stop.is_set() or number < 3:
            question = f"What is the per diem in Berlin? (request {worker}-{number})"
            try:
                results[question] = service.answer(READER, question).prompt
            except BaseException as exc:  # reported below; a thread must not swallow it
                errors.append(exc)
                return
            number += 1

    workers = [threading.Thread(target=ask, args=(n,)) for n in range(4)]

    def answers_begun_since(flip: int) -> None:
        # Wait until an answer has *started* after this flip: with 4 answers in flight, the 5th to finish
        # began after it. Without waiting, a fast flip loop could end before any answer read a version.
        deadline = time.monotonic() + 60
        while len(results) < flip + len(workers) + 1 and not errors and time.monotonic() < deadline:
            time.sleep(0.002)

    for worker in workers:
        worker.start()
    try:
        for _ in range(3):  # activate v2, v3, then roll both back, under load, three times over
            for label in ("v2", "v3"):
                prompts.activate(tenant_id=TENANT, name=GROUNDED_ANSWER, version=label, actor=ADMIN, acceptance=FORCED)
                answers_begun_since(len(results))
            for _ in range(2):
                prompts.rollback(tenant_id=TENANT, name=GROUNDED_ANSWER, actor=ADMIN)
                answers_begun_since(len(results))
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
    assert not errors, errors
    sent = {}
    for body in list(stub.requests):
        question = re.search(r"Question: (.*)$", body["messages"][-1]["content"], re.S)
        assert question is not None
        sent[question.group(1)] = body["messages"][0]["content"]
    assert len(results) >= 12 and set(results) == set(sent)
    for asked, recorded in results.items():
        assert sent[asked] == texts[recorded], asked  # the model got exactly the version recorded
    seen = set(results.values())
    assert seen == set(texts), seen  # every version answered some of the requests: the flips happened under load
    audited = served.store.reader.export(AuditQuery(tenant_id=TENANT, kinds=(RecordKind.ANSWER,)))
    by_question = {r.personal["question"]: r.record["prompt"] for r in audited if r.personal is not None}
    assert all(by_question[q] == p for q, p in results.items())
    assert prompts.active(tenant_id=TENANT, name=GROUNDED_ANSWER).template == GROUNDED_ANSWER_V1
    assert verify(served.store.database).ok
