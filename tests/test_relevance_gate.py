"""The relevance gate between retrieval and generation (retrieval/relevance.py, wired in clearance/compose.py)."""

from __future__ import annotations

from clearance.compose import relevance_gate
from clearance.settings import RetrievalModeSetting, RetrievalSettings, Settings
from core.records import Passage
from index.ports import RetrievalMode
from retrieval.relevance import CALIBRATED_FLOORS, RelevanceGate


def passage(chunk_id: str, text: str, *, title: str = "", section: str | None = None, score: float = 0.03) -> Passage:
    return Passage(
        chunk_id=chunk_id, doc_id=chunk_id, source=f"{chunk_id}.md", title=title, section=section, page=None,
        page_name=None, text=text, score=score,
    )  # fmt: skip


FREIGHT = passage("freight", "Q3 volume: 486 tonnes, up 22 percent on Q3 2024.", title="Brightwater QBR notes")
RESULTS = passage("results", "Q3 2025 revenue was $38.42 million.", title="Q3 2025 Financial Results")
QUESTION = "What was Brightwater's revenue in Q3 2025?"


def test_a_passage_that_only_looks_related_does_not_reach_the_generator() -> None:
    gate = RelevanceGate(floor=0.66, scores_are_cosines=False)
    # Cosines as all-MiniLM-L6-v2 gives them for such pairs: related topic, not the answer.
    assert gate.admit(QUESTION, [FREIGHT], {"freight": 0.38}) == []


def test_the_answering_passage_passes_the_gate() -> None:
    gate = RelevanceGate(floor=0.66, scores_are_cosines=False)
    assert gate.admit(QUESTION, [FREIGHT, RESULTS], {"freight": 0.38, "results": 0.62}) == [RESULTS]


def test_a_passage_without_a_known_cosine_counts_as_unrelated() -> None:
    """Hybrid mode: a chunk that came back on its terms alone has no dense cosine; it gets none by default."""
    gate = RelevanceGate(floor=0.66, scores_are_cosines=False)
    assert gate.admit(QUESTION, [RESULTS], {}) == []


def test_hybrid_scores_are_never_read_as_cosines() -> None:
    assert RelevanceGate.calibrated(RetrievalMode.DENSE).scores_are_cosines
    assert not RelevanceGate.calibrated(RetrievalMode.HYBRID).scores_are_cosines
    assert not RelevanceGate.calibrated(RetrievalMode.DENSE, reranked=True).scores_are_cosines


def test_each_mode_gets_its_calibrated_floor_unless_the_setting_overrides_it() -> None:
    for setting in RetrievalModeSetting:
        gate = relevance_gate(Settings(retrieval=RetrievalSettings(mode=setting)))
        assert gate is not None and gate.floor == CALIBRATED_FLOORS[RetrievalMode(setting.value)]
    gate = relevance_gate(Settings(retrieval=RetrievalSettings(relevance_floor=0.5)))
    assert gate is not None and gate.floor == 0.5
    assert relevance_gate(Settings(retrieval=RetrievalSettings(relevance_floor=-1.0))) is None
