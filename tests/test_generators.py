"""Generators behind the answer service: a real llama.cpp model and an OpenAI-compatible stub.

The stub is a real HTTP server on loopback speaking the chat-completions
streaming protocol (a process boundary), so the OpenAI client code runs as in
production.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from acl.principal import Principal
from clearance.compose import Runtime
from core.records import Passage
from ingest.source import FilesystemSource
from retrieval.answer import AnswerService
from retrieval.citations import check_citations
from retrieval.generation.extractive import ExtractiveGenerator
from retrieval.generation.llama_cpp import LlamaCppGenerator, citation_grammar
from retrieval.generation.openai_compatible import OpenAICompatibleGenerator
from retrieval.prompts import ABSTAIN_ANSWER
from retrieval.records import AnswerOutcome, ReplaceEvent, ResultEvent, TokenEvent
from tests.conftest import G1, TENANT, write_acl, write_doc
from tests.local_models import smollm2_path

READER = Principal(tenant_id=TENANT, object_id="f0000000-0000-4000-8000-000000000001", groups=frozenset({G1}))
OUTSIDER = Principal(tenant_id=TENANT, object_id="f0000000-0000-4000-8000-000000000002")


@pytest.fixture()
def policy_runtime(runtime: Runtime, tmp_path: Path) -> Runtime:
    docs = tmp_path / "docs"
    write_doc(
        docs,
        "travel.md",
        "# Travel policy\n\n## Per diem\n\nThe meal per diem in Berlin is 55.50 EUR per day. "
        "Hotels are capped at 160 EUR per night.",
    )
    write_doc(docs, "holidays.md", "# Holidays\n\nThe office is closed on 24 December and 31 December.")
    write_acl(docs, allow=[f"group:{G1}"])
    runtime.pipeline.run(FilesystemSource(root=docs, tenant_id=TENANT))
    return runtime


def service(runtime: Runtime, generator: Any) -> AnswerService:
    return AnswerService(
        index=runtime.index, embedder=runtime.embedder, generator=generator, fallback=ExtractiveGenerator(), top_k=3
    )


class _ChatStub(BaseHTTPRequestHandler):
    reply: ClassVar[str] = ""
    status: ClassVar[int] = 200
    requests: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        if type(self).status != 200:
            self.send_response(type(self).status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "overloaded"}}')
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for piece in re.findall(r"\S+\s*", type(self).reply):
            chunk = {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
            }
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture()
def chat_stub() -> Iterator[tuple[str, type[_ChatStub]]]:
    handler = type("Stub", (_ChatStub,), {"reply": "", "status": 200, "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", handler
    server.shutdown()
    server.server_close()


def _openai(url: str) -> OpenAICompatibleGenerator:
    return OpenAICompatibleGenerator(base_url=url, api_key="test", model="stub-model", timeout_seconds=5)


def test_model_answer_with_valid_citations_is_kept(policy_runtime: Runtime, chat_stub: tuple[str, Any]) -> None:
    url, stub = chat_stub
    stub.reply = "The Berlin per diem is 55.50 EUR [1]."
    result = service(policy_runtime, _openai(url)).answer(READER, "What is the per diem in Berlin?")
    assert result.outcome is AnswerOutcome.GROUNDED and result.answer == stub.reply
    assert result.citations[0].source == "travel.md" and result.generator == "openai:stub-model"


def test_model_gets_only_permitted_passages_and_no_acl(policy_runtime: Runtime, chat_stub: tuple[str, Any]) -> None:
    url, stub = chat_stub
    stub.reply = "The Berlin per diem is 55.50 EUR [1]."
    service(policy_runtime, _openai(url)).answer(READER, "What is the per diem in Berlin?")
    prompt = json.dumps(stub.requests[-1]["messages"])
    assert "55.50" in prompt and "acl" not in prompt and "group:" not in prompt and TENANT not in prompt


def test_model_is_not_called_when_nothing_is_permitted(policy_runtime: Runtime, chat_stub: tuple[str, Any]) -> None:
    url, stub = chat_stub
    result = service(policy_runtime, _openai(url)).answer(OUTSIDER, "What is the per diem in Berlin?")
    assert result.answer == ABSTAIN_ANSWER and stub.requests == []


def test_citation_to_a_passage_not_given_is_replaced_by_the_extractive_answer(
    policy_runtime: Runtime, chat_stub: tuple[str, Any]
) -> None:
    url, stub = chat_stub
    stub.reply = "The per diem is 90 EUR [7]."
    events = list(service(policy_runtime, _openai(url)).stream(READER, "What is the meal per diem in Berlin?"))
    last = events[-1]
    assert isinstance(last, ResultEvent)
    result = last.result
    assert result.outcome is AnswerOutcome.EXTRACTIVE_FALLBACK and "[7]" not in result.answer
    assert "55.50" in result.answer and ReplaceEvent(result.answer) in events


def test_figure_the_cited_passage_does_not_hold_is_not_passed_off_as_grounded(
    policy_runtime: Runtime, chat_stub: tuple[str, Any]
) -> None:
    url, stub = chat_stub
    stub.reply = "The meal per diem in Berlin is 90 EUR per day [1]."  # a valid number, a made-up figure
    result = service(policy_runtime, _openai(url)).answer(READER, "What is the meal per diem in Berlin?")
    assert result.outcome is AnswerOutcome.EXTRACTIVE_FALLBACK and "90 EUR" not in result.answer
    assert "55.50" in result.answer


def test_uncited_model_answer_is_replaced(policy_runtime: Runtime, chat_stub: tuple[str, Any]) -> None:
    url, stub = chat_stub
    stub.reply = "Probably around 50 euros, as is common in Germany."
    result = service(policy_runtime, _openai(url)).answer(READER, "What is the meal per diem in Berlin?")
    assert result.outcome is AnswerOutcome.EXTRACTIVE_FALLBACK and "55.50" in result.answer


def test_model_server_failure_falls_back_instead_of_failing(
    policy_runtime: Runtime, chat_stub: tuple[str, Any]
) -> None:
    url, stub = chat_stub
    stub.status = 503
    result = service(policy_runtime, _openai(url)).answer(READER, "What is the meal per diem in Berlin?")
    assert result.outcome is AnswerOutcome.EXTRACTIVE_FALLBACK and result.citations


def test_model_abstention_is_passed_through(policy_runtime: Runtime, chat_stub: tuple[str, Any]) -> None:
    url, stub = chat_stub
    stub.reply = ABSTAIN_ANSWER
    result = service(policy_runtime, _openai(url)).answer(READER, "What is the per diem in Berlin?")
    assert result.outcome is AnswerOutcome.ABSTAINED and result.citations == ()


def test_extractive_generator_is_deterministic_and_cites() -> None:
    passages = [
        Passage(
            "c1",
            "d1",
            "a.md",
            "Travel",
            "Per diem",
            None,
            None,
            "The meal per diem in Berlin is 55.50 EUR per day. Hotels are capped at 160 EUR.",
            0.8,
        )
    ]
    generator = ExtractiveGenerator()
    first = generator.answer(question="What is the meal per diem in Berlin?", passages=passages)
    assert first == generator.answer(question="What is the meal per diem in Berlin?", passages=passages)
    assert first == "The meal per diem in Berlin is 55.50 EUR per day [1]."
    assert generator.answer(question="Who painted the Mona Lisa?", passages=passages) == ABSTAIN_ANSWER


def test_citation_grammar_admits_only_given_passage_numbers() -> None:
    grammar = citation_grammar(3)
    assert 'cite ::= "1" | "2" | "3"' in grammar and ABSTAIN_ANSWER in grammar


def test_local_llama_cpp_model_answers_through_the_service(policy_runtime: Runtime) -> None:
    """SmolLM2-135M is too small to answer well; this proves the plumbing: grammar, streaming, checks."""
    generator = LlamaCppGenerator(model_path=smollm2_path(), threads=2, max_tokens=96)
    events = list(service(policy_runtime, generator).stream(READER, "What is the meal per diem in Berlin?"))
    tokens = [event.text for event in events if isinstance(event, TokenEvent)]
    last = events[-1]
    assert isinstance(last, ResultEvent)
    result = last.result
    assert result.generator.startswith("llama.cpp:")
    shown = "".join(tokens)
    replaced = [event.answer for event in events if isinstance(event, ReplaceEvent)]
    assert (replaced[-1] if replaced else shown) == result.answer  # the client ends with the answer that stands
    # Only checked sentences were streamed: each one cites a passage that was given.
    assert shown == "" or shown == ABSTAIN_ANSWER or check_citations(shown, passage_count=3).grounded
    check = check_citations(result.answer, passage_count=3)
    assert result.answer == ABSTAIN_ANSWER or (check.grounded and not check.invalid)
    permitted = {
        p.chunk_id for p in policy_runtime.index.search(READER, policy_runtime.embedder.embed_query("x"), top_k=50)
    }
    assert all(c.chunk_id in permitted for c in result.citations)


def test_support_check_accepts_figures_from_the_source_or_the_question() -> None:
    texts = ["Q3 2025 revenue was $38,420,000, up 31 percent; a one-time $650 stipend."]
    ok = check_citations(
        "Revenue in Q3 2025 was $38420000 and the stipend $650.00 [1].",
        passage_count=1,
        passage_texts=texts,
        question="What happened in Q3 2025?",
    )
    assert ok.grounded and ok.unsupported_sentences == 0
    made_up = check_citations(
        "Revenue was $41 million [1]. It rose 31 percent [1].", passage_count=1, passage_texts=texts
    )
    assert made_up.unsupported_sentences == 1 and made_up.text == "It rose 31 percent [1]."
