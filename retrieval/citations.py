"""Citation checking: every citation must point to a passage given for this caller.

Answers cite passages as ``[n]`` (1-based, in the order they were given).
Checking drops sentences without a citation, rejects any answer that cites a
passage it was not given, and, when the passages are supplied, drops sentences
the passages they cite do not support:

* a figure that appears neither in the cited passages nor in the question (a
  number the model made up is the most harmful kind of unsupported claim);
* a sentence that adds nothing from the cited passages: of the content words it
  does not merely repeat from the question, fewer than half occur in them (a
  restated question, "this comes from the passage [1]", or a claim about
  something the passage does not mention).

It reports what it found so the caller can repair, replace or refuse the
answer. :func:`check_sentence` judges one sentence, so a stream can show a
sentence only once it has passed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# content_words is re-exported: the extractive generator and older callers import it from here.
from retrieval.lexicon import META_TERMS, key_terms
from retrieval.lexicon import content_words as content_words

_CITATION = re.compile(r"\[(\d{1,3})\]")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")
_ONLY_CITATIONS = re.compile(r"^(?:\[\d{1,3}\]\s*)+[.!?]?$")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
SNIPPET_CHARS = 300
# Share of a sentence's new content words (those not taken from the question) its sources must hold.
MIN_SUPPORTED_SHARE = 0.5


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


@dataclass(frozen=True, slots=True)
class SentenceVerdict:
    """The verdict on one answer sentence."""

    kept: bool
    cited: tuple[int, ...]  # valid passage numbers it cites
    invalid: tuple[int, ...]  # numbers outside the passages given
    uncited: bool = False  # a claim without any citation
    unsupported: bool = False  # its sources do not hold what it says
    empty: bool = False  # nothing but citations or punctuation


def check_sentence(
    sentence: str, *, passage_count: int, passage_texts: Sequence[str] | None = None, question: str = ""
) -> SentenceVerdict:
    """Judges one sentence; with ``passage_texts`` (in citation order) also its support."""
    claim = _CITATION.sub("", sentence)
    if not any(ch.isalnum() for ch in claim):
        return SentenceVerdict(kept=False, cited=(), invalid=(), empty=True)
    numbers = list(dict.fromkeys(int(n) for n in _CITATION.findall(sentence)))
    if not numbers:
        return SentenceVerdict(kept=False, cited=(), invalid=(), uncited=True)
    valid = tuple(n for n in numbers if 1 <= n <= passage_count)
    invalid = tuple(n for n in numbers if not 1 <= n <= passage_count)
    if passage_texts is not None and valid:
        source = " ".join(passage_texts[n - 1] for n in valid)
        if not _supported(claim, source, question):
            return SentenceVerdict(kept=False, cited=valid, invalid=invalid, unsupported=True)
    return SentenceVerdict(kept=bool(valid) and not invalid, cited=valid, invalid=invalid)


def _supported(claim: str, source: str, question: str) -> bool:
    if not figures(claim) <= figures(source) | figures(question):
        return False
    # Stemmed, so that "replans" in a claim is held by "replan" in its source. Words about the
    # sources themselves ("this comes from the passage") say nothing about the question.
    new_words = key_terms(claim) - key_terms(question) - META_TERMS
    if not new_words:
        return False  # it only restates the question, or only points at a passage
    held = new_words & key_terms(source)
    return len(held) >= MIN_SUPPORTED_SHARE * len(new_words)


def check_citations(
    answer: str, *, passage_count: int, passage_texts: Sequence[str] | None = None, question: str = ""
) -> CitationCheck:
    """Checks ``answer`` sentence by sentence (see :func:`check_sentence`)."""
    return summarize(
        [
            (
                sentence,
                check_sentence(sentence, passage_count=passage_count, passage_texts=passage_texts, question=question),
            )
            for sentence in split_sentences(answer)
        ]
    )


def summarize(judged: Sequence[tuple[str, SentenceVerdict]]) -> CitationCheck:
    """The verdict on a whole answer from the verdicts on its sentences, in order.

    A stream judges each sentence as it completes; summarizing those verdicts
    gives the same result as :func:`check_citations` without judging twice.
    """
    cited: list[int] = []
    invalid: list[int] = []
    kept: list[str] = []
    dropped = unsupported = 0
    for sentence, verdict in judged:
        if verdict.empty:
            continue
        if verdict.uncited:
            dropped += 1
            continue
        for number in verdict.invalid:
            if number not in invalid:
                invalid.append(number)
        for number in verdict.cited:
            if number not in cited:
                cited.append(number)
        if verdict.unsupported:
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
