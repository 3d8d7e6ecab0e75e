"""Output rules: what makes a model's answer unfit to show, found before the caller sees it.

* empty: nothing but whitespace, citations or punctuation;
* repetition: a sentence said again (a refusal loop: "I cannot help with
  that. I cannot help with that."), or one long phrase repeated within the
  answer (a model stuck in a loop writes run-on text without full stops);
* uncited: sentences that cite no passage;
* patterns: a blocked category (a credential, say) in the answer.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from retrieval.citations import split_sentences

_CITATION = re.compile(r"\[\d{1,3}\]")
_WORD = re.compile(r"\w+")
PHRASE_WORDS = 6  # a phrase this long said three times is a loop, whatever the punctuation
PHRASE_REPEATS = 3


def normalised(sentence: str) -> str:
    """A sentence compared for repetition: no citations, case or punctuation."""
    return " ".join(_WORD.findall(_CITATION.sub(" ", sentence).lower()))


def is_empty(text: str) -> bool:
    return not normalised(text)


def is_repeated(sentence: str, earlier: Iterable[str], *, max_repeats: int) -> bool:
    """Whether ``sentence`` was already said ``max_repeats`` times among ``earlier`` sentences."""
    key = normalised(sentence)
    return bool(key) and sum(normalised(s) == key for s in earlier) >= max_repeats


def repetitions(text: str, *, max_repeats: int) -> int:
    """How many sentences repeat an earlier one past ``max_repeats``, plus one for a looping phrase."""
    counts = Counter(key for key in map(normalised, split_sentences(text)) if key)
    excess = sum(count - max_repeats for count in counts.values() if count > max_repeats)
    words = normalised(text).split()
    phrases = Counter(tuple(words[i : i + PHRASE_WORDS]) for i in range(len(words) - PHRASE_WORDS + 1))
    # Phrases overlap within one repeated sentence; a loop shows as the same phrase at three or more places.
    looping = any(count >= PHRASE_REPEATS for count in phrases.values())
    return excess + (1 if looping and not excess else 0)


def uncited_sentences(text: str) -> list[str]:
    return [s for s in split_sentences(text) if not _CITATION.search(s) and not is_empty(s)]


def matching_sentences(text: str, patterns: Sequence[re.Pattern[str]]) -> list[str]:
    return [s for s in split_sentences(text) if any(p.search(s) for p in patterns)]


def deduplicated(text: str, *, max_repeats: int) -> str:
    """``text`` with sentences past their ``max_repeats``-th saying removed."""
    kept: list[str] = []
    for sentence in split_sentences(text):
        if not is_repeated(sentence, kept, max_repeats=max_repeats):
            kept.append(sentence)
    return " ".join(kept)


def without(text: str, sentences: Sequence[str]) -> str:
    removed = set(sentences)
    return " ".join(s for s in split_sentences(text) if s not in removed)
