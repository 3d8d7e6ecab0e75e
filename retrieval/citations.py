"""Citation checking: every citation must point to a passage given for this caller.

Answers cite passages as ``[n]`` (1-based, in the order they were given).
Checking drops sentences without a citation, rejects any answer that cites a
passage it was not given, and reports what it found so the caller can repair,
replace or refuse the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CITATION = re.compile(r"\[(\d{1,3})\]")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")
_ONLY_CITATIONS = re.compile(r"^(?:\[\d{1,3}\]\s*)+[.!?]?$")


def split_sentences(text: str) -> list[str]:
    """Sentences, with a citation written after the full stop kept on its sentence."""
    sentences: list[str] = []
    for part in _SENTENCE_BREAK.split(text):
        part = part.strip()
        if not part:
            continue
        if sentences and _ONLY_CITATIONS.match(part):
            sentences[-1] = f"{sentences[-1]} {part}"
        else:
            sentences.append(part)
    return sentences


@dataclass(frozen=True, slots=True)
class CitationCheck:
    """The verdict on one answer text."""

    text: str  # the answer with uncited sentences removed
    cited: tuple[int, ...]  # valid passage numbers, in first-use order
    invalid: tuple[int, ...]  # numbers outside the passages given
    dropped_sentences: int

    @property
    def grounded(self) -> bool:
        return bool(self.cited) and not self.invalid and bool(self.text)


def check_citations(answer: str, *, passage_count: int) -> CitationCheck:
    cited: list[int] = []
    invalid: list[int] = []
    kept: list[str] = []
    dropped = 0
    for sentence in split_sentences(answer):
        if not sentence or not any(ch.isalnum() for ch in _CITATION.sub("", sentence)):
            continue
        numbers = [int(n) for n in _CITATION.findall(sentence)]
        if not numbers:
            dropped += 1
            continue
        for number in numbers:
            target = cited if 1 <= number <= passage_count else invalid
            if number not in target:
                target.append(number)
        kept.append(sentence)
    return CitationCheck(text=" ".join(kept), cited=tuple(cited), invalid=tuple(invalid), dropped_sentences=dropped)
