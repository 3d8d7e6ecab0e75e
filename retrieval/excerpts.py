"""The part of each permitted passage a model needs to read: sentences nearest the question, within a budget.

A local model reads its prompt at ~150 tokens/s on two cores, so every passage
sentence it reads delays the first word of the answer. Passages keep their
numbers (citations refer to them) and their labels; within each, only the
sentences that share the question's key terms are kept (rare terms weigh more;
table rows under half the best row's score are left out), each with the
sentence after it (a label line "Standard US cities:" is often followed by the
figure), in document order, until ``budget_chars`` are used. A table row
(``cell | cell``, as ingestion writes tables) is kept with its table's header
row instead of the row after it, so the model reads which column is which.
Every passage keeps at least its best sentence. Text that already fits the
budget is sent whole.

The citation check still compares the model's sentences with the whole passage,
so trimming can only remove support the model did not read, never add any.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence

from core.records import Passage
from retrieval.lexicon import key_terms

# Table rows scoring under this share of the best row are left out even within the budget:
# they share only terms that are everywhere (the year on every row of a calendar).
RELATIVE_FLOOR = 0.5
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
    # Header rows and rule lines are not candidates: a header comes with the rows under it.
    readable = [
        [not _is_rule(line) and not _is_header(parts, i) for i, line in enumerate(parts)] for parts in sentences
    ]
    shared = [
        [terms & key_terms(line) if ok else set() for line, ok in zip(parts, oks, strict=True)]
        for parts, oks in zip(sentences, readable, strict=True)
    ]
    weight = _rarity(shared)
    score = [[sum(weight[t] for t in common) for common in rows] for rows in shared]
    # Candidates, best first: rarer shared terms, then the better-ranked passage, then earlier in it.
    ranked = sorted(
        (-score[number][index], number, index)
        for number, parts in enumerate(sentences)
        for index in range(len(parts))
        if readable[number][index]
    )
    # A table row must score near the best row: the others share only terms every row has.
    row_floor = RELATIVE_FLOOR * max(
        (score[n][i] for n, parts in enumerate(sentences) for i, line in enumerate(parts) if _is_row(line)), default=0
    )
    kept: list[set[int]] = [set() for _ in passages]
    used = 0

    def take(number: int, index: int) -> None:
        nonlocal used
        if index < len(sentences[number]) and index not in kept[number]:
            kept[number].add(index)
            used += len(sentences[number][index]) + 1
            header = _table_header(sentences[number], index)
            if header is not None:
                take(number, header)

    # Each passage's best sentence first (its lead when none shares a term): a passage the model
    # cannot read is a citation it cannot make.
    best: dict[int, int] = {}
    for _, number, index in ranked:
        best.setdefault(number, index)
    for number, index in sorted(best.items()):
        take(number, index)
        if score[number][index] == 0 and not _is_row(sentences[number][index]):
            take(number, index + 1)
    for number, parts in enumerate(sentences):
        if number not in best and parts:  # nothing but rule lines: sent as it is
            take(number, 0)
    for negative_score, number, index in ranked:
        if used >= budget_chars or negative_score == 0:
            break
        if _is_row(sentences[number][index]) and -negative_score < row_floor:
            continue
        take(number, index)
        if used < budget_chars and not _is_row(sentences[number][index]):
            take(number, index + 1)  # a label's figure follows it; a table's next row is another record
    return [_cut(passage, sentences[number], kept[number]) for number, passage in enumerate(passages)]


def _rarity(shared: Sequence[Sequence[set[str]]]) -> dict[str, float]:
    """Each question term's weight: rarer among the sentences, heavier (a year on every row of a calendar
    says nothing about which row answers; the holiday's name does)."""
    lines = sum(len(rows) for rows in shared)
    counts: dict[str, int] = {}
    for rows in shared:
        for common in rows:
            for term in common:
                counts[term] = counts.get(term, 0) + 1
    return {term: math.log(1 + lines / count) for term, count in counts.items()}


def _is_rule(line: str) -> bool:
    """A heading's underline or a horizontal rule (``-----``, ``=====``): no text to read."""
    return not line.strip("-=_*#~ ")


def _is_row(line: str) -> bool:
    return line.count(" | ") >= 1


def _is_header(parts: Sequence[str], index: int) -> bool:
    """The first row of a run of at least two table rows."""
    return (
        index + 1 < len(parts)
        and _is_row(parts[index])
        and _is_row(parts[index + 1])
        and (index == 0 or not _is_row(parts[index - 1]))
    )


def _table_header(parts: Sequence[str], index: int) -> int | None:
    """The header line of the table row at ``index`` (the first row of its run of rows), if it is another line."""
    if not _is_row(parts[index]):
        return None
    first = index
    while first > 0 and _is_row(parts[first - 1]):
        first -= 1
    return first if first != index else None


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
