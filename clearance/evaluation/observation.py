"""What the runner saw for one item, before any scoring."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from clearance.evaluation.access import Leak
from clearance.evaluation.items import EvalItem


@dataclass(frozen=True, slots=True)
class Observation:
    item: EvalItem
    ranking: tuple[str, ...] = ()  # sources of the searched chunks, best first
    answer: str | None = None  # None: no answer was asked for (retrieval-only sets) or an error came first
    outcome: str | None = None  # the answer service's outcome (grounded, abstained, ...)
    citations: tuple[tuple[int, str], ...] = ()  # (the [n] in the answer, source of passage n)
    passage_texts: tuple[str, ...] | None = None  # what each passage [n] vouches for; None: not established
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    leaks: tuple[Leak, ...] = ()
    judged_correct: bool | None = None
    error: str | None = None  # a domain error (authentication refused, index unavailable), by type and message
