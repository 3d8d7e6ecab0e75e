"""``clearance eval --sample N``: a subset of the persona set spread over the whole file, for a slow generator."""

from __future__ import annotations

import json

from clearance.evaluation.personas import QUESTIONS_FILE, load_personas


def test_a_sample_spreads_over_the_file_and_keeps_every_persona_on_both_sides() -> None:
    entries = json.loads(QUESTIONS_FILE.read_text(encoding="utf-8"))
    questions = list(dict.fromkeys(e["question"] for e in entries))
    sample = load_personas(sample=10)
    asked = list(dict.fromkeys(item.question for item in sample.items))
    assert len(asked) == 10
    positions = sorted(questions.index(q) for q in asked)
    # Not the first ten questions: from the start to the last tenth of the file.
    assert positions[0] == 0 and positions[-1] >= len(questions) * 9 // 10 - 1
    for persona in {item.persona for item in load_personas().items}:
        mine = [item for item in sample.items if item.persona == persona]
        assert any(i.answerable for i in mine) and any(not i.answerable for i in mine), persona


def test_a_sample_is_the_same_every_time_and_no_larger_than_the_set() -> None:
    assert [i.id for i in load_personas(sample=10).items] == [i.id for i in load_personas(sample=10).items]
    assert len(load_personas(sample=10_000).items) == len(load_personas().items)
