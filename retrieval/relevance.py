"""The relevance gate between retrieval and generation: a passage must look like it answers the question.

The index returns the best passages the caller may read, however poor: for a
caller who may not open the answering document, those are passages that only
look related, and a generator handed them tends to answer anyway. The gate keeps
a passage only when

    cosine(question, passage) + TERM_WEIGHT * share of the question's key terms in the passage

reaches the floor of the retrieval mode, and the service abstains without
calling the generator when none is left. The cosine is the dense one in every
mode: hybrid (reciprocal-rank) and sparse (BM25) scores have no fixed scale, so
the service looks the dense cosines up for those modes. The floors were
calibrated by ``python -m benchmarks.calibrate_abstention`` on the persona set's
training questions (held-out figures and the data that chose them:
``evaluation/abstention-calibration.json``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.records import Passage
from index.ports import RetrievalMode
from retrieval.lexicon import key_terms

TERM_WEIGHT = 0.5
# Chosen by benchmarks/calibrate_abstention.py (see evaluation/abstention-calibration.json).
CALIBRATED_FLOORS: Mapping[RetrievalMode, float] = {
    RetrievalMode.DENSE: 0.72,
    RetrievalMode.HYBRID: 0.72,
    # Not calibrated on its own: sparse mode shares the hybrid floor (both score dense cosines here).
    RetrievalMode.SPARSE: 0.72,
}


def passage_terms_text(passage: Passage) -> str:
    """What the gate matches the question against: the passage and where it sits."""
    return " ".join(part for part in (passage.title, passage.section, passage.page_name, passage.text) if part)


def relevance(question_terms: set[str], cosine: float, passage: Passage) -> float:
    share = (
        len(question_terms & key_terms(passage_terms_text(passage))) / len(question_terms) if question_terms else 0.0
    )
    return cosine + TERM_WEIGHT * share


@dataclass(frozen=True, slots=True)
class RelevanceGate:
    """Drops the passages below ``floor``; ``scores_are_cosines`` says whether search scores can be used as they are."""

    floor: float
    scores_are_cosines: bool

    @classmethod
    def calibrated(cls, mode: RetrievalMode, *, floor: float | None = None, reranked: bool = False) -> RelevanceGate:
        """The gate of a retrieval mode: its calibrated floor unless ``floor`` overrides it."""
        chosen = CALIBRATED_FLOORS[mode] if floor is None else floor
        return cls(floor=chosen, scores_are_cosines=mode is RetrievalMode.DENSE and not reranked)

    def admit(self, question: str, passages: Sequence[Passage], cosines: Mapping[str, float]) -> list[Passage]:
        """The passages that pass, in their retrieval order; a passage without a known cosine counts 0 for it."""
        terms = key_terms(question)
        return [p for p in passages if relevance(terms, cosines.get(p.chunk_id, 0.0), p) >= self.floor]
