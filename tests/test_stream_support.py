"""A stream shows a sentence only once the answer so far answers the question (the support check).

A sentence can pass the per-sentence check (its figures and words are in the
passage it cites) and still not answer the question: a tonnage for a question
about revenue. Such text must never reach the screen, not even for a moment
before the final verdict replaces it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from acl.principal import Principal
from clearance.compose import Runtime
from ingest.source import FilesystemSource
from retrieval.records import AnswerOutcome, ReplaceEvent, ResultEvent, TokenEvent
from tests.conftest import TENANT, write_acl, write_doc
from tests.test_content_policy import _openai, _service
from tests.test_generators import chat_stub  # noqa: F401  (fixture)

GROUP = "a0000000-0000-4000-8000-0000000000f1"
READER = Principal(tenant_id=TENANT, object_id="b0000000-0000-4000-8000-0000000000f1", groups=frozenset({GROUP}))


@pytest.fixture()
def freight_runtime(runtime: Runtime, tmp_path: Path) -> Runtime:
    docs = tmp_path / "docs"
    write_doc(
        docs,
        "freight.md",
        "# Freight note\n\n## Brightwater\n\nThe Q3 shipment to Brightwater weighed 486 tonnes. "
        "It left the Rotterdam depot on 4 October.",
    )
    write_acl(docs, allow=[f"group:{GROUP}"])
    runtime.pipeline.run(FilesystemSource(root=docs, tenant_id=TENANT))
    return runtime


def test_a_checked_sentence_that_does_not_answer_the_question_is_never_streamed(
    freight_runtime: Runtime,
    chat_stub: tuple[str, Any],  # noqa: F811
) -> None:
    url, stub = chat_stub
    stub.reply = "The Q3 shipment to Brightwater weighed 486 tonnes [1]."
    asked = len(stub.requests)
    events = list(_service(freight_runtime, _openai(url)).stream(READER, "What was Brightwater's Q3 revenue?"))
    assert len(stub.requests) == asked + 1, "the model was never asked: nothing was checked"
    shown = "".join(e.text for e in events if isinstance(e, TokenEvent))
    assert "486" not in shown and "tonnes" not in shown
    result = events[-1]
    assert isinstance(result, ResultEvent) and result.result.outcome is AnswerOutcome.ABSTAINED
    replaced = [e.answer for e in events if isinstance(e, ReplaceEvent)]
    assert (replaced[-1] if replaced else shown) == result.result.answer


def test_a_sentence_that_answers_the_question_is_streamed_as_soon_as_it_is_checked(
    freight_runtime: Runtime,
    chat_stub: tuple[str, Any],  # noqa: F811
) -> None:
    url, stub = chat_stub
    stub.reply = "The Q3 shipment to Brightwater weighed 486 tonnes [1]. It left the Rotterdam depot on 4 October [1]."
    events = list(
        _service(freight_runtime, _openai(url)).stream(READER, "How heavy was the Q3 shipment to Brightwater?")
    )
    tokens = [e.text for e in events if isinstance(e, TokenEvent)]
    assert tokens and "486 tonnes" in tokens[0]
    assert isinstance(events[-1], ResultEvent) and events[-1].result.outcome is AnswerOutcome.GROUNDED
