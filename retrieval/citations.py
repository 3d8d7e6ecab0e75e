"""Citation checking: every citation must point to a passage given for this caller.

Answers cite passages as ``[n]`` (1-based, in the order they were given).
Checking drops sentences without a citation, rejects any answer that cites a
passage it was not given, and, when the passages are supplied, drops sentences
whose figures appear neither in the passages they cite nor in the question (a
number the model made up is the most harmful kind of unsupported claim). It
reports what it found so the caller can repair, replace or refuse the answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_CITATION = re.compile(r"\[(\d{1,3})\]")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")
_ONLY_CITATIONS = re.compile(r"^(?:\[\d{1,3}\]\s*)+[.!?]?$")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
SNIPPET_CHARS = 300


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


def figures(text: str) -> set[str]:
    """Numbers in a text, normalised so that "38,420" and "38420" compare equal."""
    found = set()
    for match in _NUMBER.findall(text):
        plain = match.replace(",", "")
        found.add(plain.rstrip("0").rstrip(".") if "." in plain else plain)
    return found


@dataclass(frozen=True, slots=True)
class CitationCheck:
    """The verdict on one answer text."""

    text: str  # the answer with uncited and unsupported sentences removed
    cited: tuple[int, ...]  # valid passage numbers, in first-use order
    invalid: tuple[int, ...]  # numbers outside the passages given
    dropped_sentences: int  # sentences without any citation
    unsupported_sentences: int = 0  # sentences with a figure none of their sources holds

    @property
    def grounded(self) -> bool:
        return bool(self.cited) and not self.invalid and bool(self.text)


def check_citations(
    answer: str, *, passage_count: int, passage_texts: Sequence[str] | None = None, question: str = ""
) -> CitationCheck:
    """Checks ``answer``; with ``passage_texts`` (in citation order) also checks figures."""
    cited: list[int] = []
    invalid: list[int] = []
    kept: list[str] = []
    dropped = unsupported = 0
    asked = figures(question)
    for sentence in split_sentences(answer):
        claim = _CITATION.sub("", sentence)
        if not any(ch.isalnum() for ch in claim):
            continue
        numbers = [int(n) for n in _CITATION.findall(sentence)]
        if not numbers:
            dropped += 1
            continue
        valid = [n for n in numbers if 1 <= n <= passage_count]
        for number in numbers:
            target = cited if number in valid else invalid
            if number not in target:
                target.append(number)
        if passage_texts is not None and valid:
            sources = set().union(*(figures(passage_texts[n - 1]) for n in valid))
            if not figures(claim) <= sources | asked:
                unsupported += 1
                continue
        kept.append(sentence)
    still_cited = tuple(n for n in cited if any(f"[{n}]" in s for s in kept))
    return CitationCheck(
        text=" ".join(kept),
        cited=still_cited,
        invalid=tuple(invalid),
        dropped_sentences=dropped,
        unsupported_sentences=unsupported,
    )


def snippet(text: str) -> str:
    """The start of a passage, for search hits and citations."""
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1].rstrip() + "…"
