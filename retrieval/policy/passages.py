"""Passage rules: text inside retrieved documents that addresses the model is neutralised before generation.

A document can carry text written for a model rather than a reader ("ignore
the previous instructions", a fake ``system:`` turn, chat-template tokens).
The generator is given the passage with each sentence or line that holds such
text replaced by a marker, so the rest of the passage still answers questions;
``drop`` withholds the whole passage instead. The extractive fallback and the
citation check work on the same screened passages, so neutralised text can
reach the caller by no path.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass

from core.records import Passage
from retrieval.policy.decisions import Action, PolicyDecision, Stage
from retrieval.policy.pii import replace_spans
from retrieval.policy.rules import PassageRule

_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")


@dataclass(frozen=True, slots=True)
class CompiledPassageRule:
    rule: PassageRule
    patterns: tuple[re.Pattern[str], ...]


def sentence_spans(text: str, patterns: Sequence[re.Pattern[str]]) -> list[tuple[int, int]]:
    """The sentences (or lines) of ``text`` that hold a match of any of ``patterns``."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    spans: list[tuple[int, int]] = []
    for pattern in patterns:
        for match in pattern.finditer(text):
            start = max((e for e in ends if e <= match.start()), default=0)
            end = min((e for e in ends if e >= max(match.end(), match.start() + 1)), default=len(text))
            spans.append((start, end))
    return spans


def _neutralised(text: str, spans: Sequence[tuple[int, int]], marker: str) -> str:
    def replacement(start: int, end: int) -> str:
        # Keep the whitespace around the sentence, and its line break, so the passage keeps its shape.
        piece = text[start:end]
        lead = piece[: len(piece) - len(piece.lstrip())]
        tail = "\n" if piece.endswith("\n") else ""
        return f"{lead}{marker}{tail}"

    return replace_spans(text, [(start, end, replacement(start, end)) for start, end in spans])


def screen_passages(
    passages: Sequence[Passage], rules: Sequence[CompiledPassageRule], *, marker: str
) -> tuple[list[Passage], list[PolicyDecision]]:
    """The passages the model may be given, and the decisions taken on the way (numbers as given).

    Every rule reads the passage as retrieved, so one rule's marker never hides text from the next.
    """
    kept: list[Passage] = []
    decisions: list[PolicyDecision] = []
    for number, passage in enumerate(passages, start=1):
        fields = {"title": passage.title, "section": passage.section or "", "text": passage.text}
        spans: dict[str, list[tuple[int, int]]] = {name: [] for name in fields}
        dropped = False
        for compiled in rules:
            hits = {name: sentence_spans(value, compiled.patterns) for name, value in fields.items()}
            if not any(hits.values()):
                continue
            action = compiled.rule.action
            decisions.append(PolicyDecision(compiled.rule.id, Stage.PASSAGE, action, f"passage {number}"))
            if action is Action.DROP:
                dropped = True
            elif action is Action.NEUTRALISE:
                for name, found in hits.items():
                    spans[name] += found
        if dropped:
            continue
        screened = {name: _neutralised(value, spans[name], marker) for name, value in fields.items()}
        kept.append(
            dataclasses.replace(
                passage, title=screened["title"], section=screened["section"] or passage.section, text=screened["text"]
            )
        )
    return kept, decisions
