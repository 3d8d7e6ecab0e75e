"""The extractive generator: cited sentences selected from the passages, no model needed."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from core.cancel import Cancellation
from core.records import Passage
from retrieval.citations import split_sentences
from retrieval.lexicon import META_TERMS, key_terms
from retrieval.prompts import ABSTAIN_ANSWER, PromptTemplate
from retrieval.support import right_kind

# How far below the best-matching table row another row may score and still be quoted beside it (the retrieval
# rank costs 0.01 a passage, so equally good rows from the next chunks of a table stay).
ROW_MARGIN = 0.05
# A page footer that PDF text extraction ran into a sentence: "Rate Card and Key Account Limits - page 1 of 1".
# It names where the text sits, never an answer; only what comes before a sentence end survives it.
_PAGE_FOOTER = re.compile(r"(?:[^.!?]*\s[-\u2013\u2014]\s)?page\s+\d+\s+of\s+\d+\s*$", re.IGNORECASE)


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
        prompt: PromptTemplate | None = None,
    ) -> Iterator[str]:
        # ``prompt`` is accepted for the port and ignored: selected sentences read no instructions.
        answer = self.answer(question=question, passages=passages)
        for word in answer.split(" "):
            yield word + " "

    def answer(self, *, question: str, passages: Sequence[Passage]) -> str:
        wanted = key_terms(question)
        if not wanted:
            return ABSTAIN_ANSWER
        scored: list[tuple[float, int, int, str]] = []
        top_row = 0.0  # the best score of any table row
        rows: set[tuple[int, int]] = set()
        for number, passage in enumerate(passages, start=1):
            context = key_terms(f"{passage.title} {passage.section or ''} {passage.page_name or ''}")
            for position, (unit, row) in enumerate(_units(passage.text)):
                sentence = unit if row else _PAGE_FOOTER.sub("", unit).strip()
                if not sentence:
                    continue
                words = key_terms(sentence)
                # A table row rarely repeats what its table is about ("per diem"): where it sits does.
                hits = len(wanted & (words | context)) if row else len(wanted & words)
                if not row and words <= context | META_TERMS:
                    continue  # a heading line ("Q4 2025 pipeline review", "Rate Card - page 1 of 1") says only where
                if not hits or not right_kind(question, sentence).supported:
                    continue  # a sentence without the kind of figure the question asks for cannot answer it
                coverage = len(wanted & (words | context)) / len(wanted)
                # Its own words break ties (a row's words include its headers), not where it sits: a table row
                # scores no better than a sentence beside it for sharing the title. Earlier passages ranked
                # higher in retrieval; ties go to them.
                score = coverage + 0.1 * len(wanted & words) / len(wanted) - 0.01 * number
                scored.append((score, number, position, sentence))
                if row:
                    rows.add((number, position))
                    top_row = max(top_row, score)
        # Every row of a table shares its header's words: only the rows that match best stand, not their neighbours
        # (in this chunk or another chunk of the same table).
        scored = [s for s in scored if (s[1], s[2]) not in rows or s[0] >= top_row - ROW_MARGIN]
        best = [item for item in sorted(scored, key=lambda s: (-s[0], s[1], s[2])) if item[0] >= self._min_overlap]
        chosen = sorted(best[: self._max_sentences], key=lambda s: (s[1], s[2]))
        if not chosen:
            return ABSTAIN_ANSWER
        return " ".join(f"{_without_end(sentence)} [{number}]." for _, number, _, sentence in chosen)


def answer_units(text: str) -> list[str]:
    """The passage's sentences, with each table row (``a | b`` lines) rendered as "header: cell" pairs.

    A row on its own ("$16 | $22 | $40 | $78") says nothing; with its headers it is a
    sentence that can be cited and checked ("Region: United States ...; Dinner: $40; Daily total: $78").
    """
    return [unit for unit, _ in _units(text)]


def _units(text: str) -> list[tuple[str, bool]]:
    """Each unit with whether it is a table row."""
    units: list[tuple[str, bool]] = []
    header: list[str] | None = None
    prose: list[str] = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split("|")] if "|" in line else []
        if len(cells) < 2:
            header = None
            prose.append(line)
            continue
        units += [(sentence, False) for sentence in split_sentences(" ".join(prose))]
        prose = []
        if header is None:
            header = cells
            continue
        pairs = [f"{name}: {cell}" if name else cell for name, cell in zip(header, cells, strict=False) if cell]
        units.append(("; ".join(pairs), True))
    units += [(sentence, False) for sentence in split_sentences(" ".join(prose))]
    return units


def _without_end(sentence: str) -> str:
    return sentence.rstrip().rstrip(".!?;:,").rstrip()
