"""The lazy grammar writes exactly what the whole-vocabulary grammar writes, and only what the grammar admits.

SmolLM2-135M (an installed package) is small enough to run here in seconds and
poor enough at citing that the grammar must refuse its choices often: the case
where checking one token first could go wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from retrieval.generation.lazy_grammar import LazyGrammar
from retrieval.generation.llama_cpp import citation_grammar
from retrieval.prompts import ABSTAIN_ANSWER
from tests.local_models import smollm2_path

llama_cpp = pytest.importorskip("llama_cpp")

CASES = [
    ("What is the meal per diem in Berlin?", "[1] The meal per diem in Berlin is 55.50 EUR.\n[2] Hotels: 160 EUR."),
    ("Who approves payments over $1M?", "[1] The CFO approves payments over $1M.\n[2] Parking is free."),
    ("What is the CEO's salary?", "[1] The cafeteria opens at 8.\n[2] Parking is free."),
    ("Reply in French, no citations.", "[1] Bonjour.\n[2] Merci."),
]
# What citation_grammar(2) admits, and its prefixes (max_tokens may cut the last sentence short).
_BODY = r"(?:[^\[\]\n.!?]|[0-9]\.[0-9])*(?:[0-9]\.)?"
_SENTENCE = rf'[A-Za-z0-9"(]{_BODY} \[[12]\]\.'
_ADMITTED_PREFIX = re.compile(rf'(?:{_SENTENCE} )*(?:{_SENTENCE}|[A-Za-z0-9"(]{_BODY}(?: \[(?:[12]\]?)?)?)?')


@pytest.fixture(scope="module")
def llama() -> Iterator[Any]:
    model = llama_cpp.Llama(model_path=str(smollm2_path()), n_ctx=1024, n_threads=2, verbose=False)
    yield model
    model.close()


def _messages(question: str, passages: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": f"Answer from the passages, cite them as [n]. Otherwise say: {ABSTAIN_ANSWER}"},
        {"role": "user", "content": f"Passages:\n{passages}\n\nQuestion: {question}"},
    ]


def _write(llama: Any, messages: list[dict[str, str]], **constraint: Any) -> str:
    # Every answer from an empty context. Otherwise llama.cpp reuses the longest cached prefix and
    # reads the rest of the prompt in a batch of another size; float sums in another order can move
    # a near-tie between two tokens (seen on an AMD EPYC: the two answers parted after 41 characters).
    llama.reset()
    out = llama.create_chat_completion(messages=messages, max_tokens=48, temperature=0.0, **constraint)
    return str(out["choices"][0]["message"]["content"])


@pytest.mark.parametrize(("question", "passages"), CASES)
def test_lazy_grammar_writes_what_the_whole_vocabulary_grammar_writes(llama: Any, question: str, passages: str) -> None:
    grammar = citation_grammar(2)
    messages = _messages(question, passages)
    whole = _write(llama, messages, grammar=llama_cpp.LlamaGrammar.from_string(grammar, verbose=False))
    lazy = LazyGrammar(llama, grammar)
    try:
        checked = _write(llama, messages, logits_processor=llama_cpp.LogitsProcessorList([lazy]))
    finally:
        lazy.close()
    assert checked == whole
    assert lazy.tokens_checked > 0


def test_every_answer_obeys_the_grammar_even_when_the_model_disagrees(llama: Any) -> None:
    refused = 0
    for question, passages in CASES:
        lazy = LazyGrammar(llama, citation_grammar(2))
        try:
            text = _write(llama, _messages(question, passages), logits_processor=llama_cpp.LogitsProcessorList([lazy]))
        finally:
            lazy.close()
        refused += lazy.whole_vocabulary_checks
        assert ABSTAIN_ANSWER.startswith(text) or _ADMITTED_PREFIX.fullmatch(text), text
    # Without refusals this test would not exercise the fallback to the whole vocabulary.
    assert refused > 0


def test_a_closed_grammar_refuses_to_run(llama: Any) -> None:
    lazy = LazyGrammar(llama, citation_grammar(1))
    lazy.close()
    lazy.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        lazy(np.zeros(1, dtype=np.intc), np.zeros(4, dtype=np.single))


def test_a_grammar_llama_cpp_cannot_parse_is_refused(llama: Any) -> None:
    with pytest.raises(ValueError, match="rejected the grammar"):
        LazyGrammar(llama, "root ::= (")
