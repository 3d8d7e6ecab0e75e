"""The extractive generator: cited sentences selected from the passages, no model needed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from core.cancel import Cancellation
from core.records import Passage
from retrieval.citations import content_words, split_sentences
from retrieval.prompts import ABSTAIN_ANSWER


class ExtractiveGenerator:
    """Selects the passage sentences that best match the question and cites them.

    Deterministic and model-free: the default in tests, the fallback when a
    model's answer cannot be trusted, and a sound answer on its own.
    """

    def __init__(self, *, max_sentences: int = 2, min_overlap: float = 0.34) -> None:
        self._max_sentences = max_sentences
        self._min_overlap = min_overlap

    @property
    def name(self) -> str:
        return "extractive"

    def generate(
        self,
        *,
        question: str,
        passages: Sequence[Passage],
        history: Sequence[tuple[str, str]] = (),
        cancel: Cancellation | None = None,
    ) -> Iterator[str]:
        answer = self.answer(question=question, passages=passages)
        for word in answer.split(" "):
            yield word + " "

    def answer(self, *, question: str, passages: Sequence[Passage]) -> str:
        wanted = content_words(question)
        if not wanted:
            return ABSTAIN_ANSWER
        scored: list[tuple[float, int, int, str]] = []
        for number, passage in enumerate(passages, start=1):
            context = content_words(f"{passage.title} {passage.section or ''}")
            for position, sentence in enumerate(split_sentences(passage.text)):
                words = content_words(sentence)
                hits = len(wanted & words)
                if not hits:
                    continue
                coverage = len(wanted & (words | context)) / len(wanted)
                # Earlier passages ranked higher in retrieval; ties go to them.
                score = coverage + 0.1 * hits / len(wanted) - 0.01 * number
                scored.append((score, number, position, sentence))
        best = [item for item in sorted(scored, key=lambda s: (-s[0], s[1], s[2])) if item[0] >= self._min_overlap]
        chosen = sorted(best[: self._max_sentences], key=lambda s: (s[1], s[2]))
        if not chosen:
            return ABSTAIN_ANSWER
        return " ".join(f"{_without_end(sentence)} [{number}]." for _, number, _, sentence in chosen)


def _without_end(sentence: str) -> str:
    return sentence.rstrip().rstrip(".!?;:,").rstrip()
