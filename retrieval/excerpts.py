"""The part of each permitted passage a model needs to read: sentences nearest the question, within a budget.

A local model reads its prompt at ~150 tokens/s on two cores, so every passage
sentence it reads delays the first word of the answer. Passages keep their
numbers (citations refer to them) and their labels; within each, only the
sentences that share the question's key terms are kept, each with the
sentence after it (a label line "Standard US cities:" is often followed by the
figure), in document order, until ``budget_chars`` are used. Every passage keeps
at least its best sentence. Text that already fits the budget is sent whole.

The citation check still compares the model's sentences with the whole passage,
so trimming can only remove support the model did not read, never add any.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from core.records import Passage
from retrieval.lexicon import key_terms

GAP = "…"  # where sentences were left out, so the model does not read two far-apart sentences as one
# Sentence ends, and line breaks (tables, lists and headings carry no full stops).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\s*\n+\s*")


def split_passage(text: str) -> list[str]:
    """The sentences (or lines) of a passage, in order, without empty ones."""
    return [part.strip() for part in _SENTENCE_END.split(text) if part and part.strip()]


def excerpts(question: str, passages: Sequence[Passage], *, budget_chars: int) -> list[Passage]:
    """``passages`` with their text cut to the sentences nearest ``question``; unchanged when they fit."""
    if budget_chars <= 0 or sum(len(p.text) for p in passages) <= budget_chars:
        return list(passages)
    terms = key_terms(question)
    sentences = [split_passage(p.text) for p in passages]
    # Candidates, best first: more shared terms, then the better-ranked passage, then earlier in it.
    ranked = sorted(
        (
            (-len(terms & key_terms(sentence)), number, index)
            for number, parts in enumerate(sentences)
            for index, sentence in enumerate(parts)
        ),
    )
    kept: list[set[int]] = [set() for _ in passages]
    used = 0

    def take(number: int, index: int) -> None:
        nonlocal used
        if index < len(sentences[number]) and index not in kept[number]:
            kept[number].add(index)
            used += len(sentences[number][index]) + 1

    # Each passage's best sentence first: a passage the model cannot read is a citation it cannot make.
    best: dict[int, int] = {}
    for _, number, index in ranked:
        best.setdefault(number, index)
    for number, index in sorted(best.items()):
        take(number, index)
    for overlap, number, index in ranked:
        if used >= budget_chars or overlap == 0:
            break
        take(number, index)
        if used < budget_chars:
            take(number, index + 1)
    return [_cut(passage, sentences[number], kept[number]) for number, passage in enumerate(passages)]


def _cut(passage: Passage, parts: Sequence[str], kept: set[int]) -> Passage:
    if len(kept) == len(parts):
        return passage
    lines: list[str] = []
    previous = -1
    for index in sorted(kept):
        if index != previous + 1:
            lines.append(GAP)
        lines.append(parts[index])
        previous = index
    if previous < len(parts) - 1:
        lines.append(GAP)
    return dataclasses.replace(passage, text="\n".join(lines))
