"""What the content policy decided: one record per rule that fired, by stage and action.

Decisions travel with the answer (response metadata, the stream's ``done``
event) and into its audit record. A decision never carries the text that made
a rule fire: only the rule's id, the stage, the action and a detail such as
the kinds of personal data found or which passage was neutralised.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Stage(StrEnum):
    INPUT = "input"  # the caller's question, before anything is searched
    PASSAGE = "passage"  # retrieved text, before the model sees it
    OUTPUT = "output"  # the model's answer, before the caller sees it


class Action(StrEnum):
    BLOCK = "block"  # input: the question is refused; nothing is searched or generated
    WARN = "warn"  # input: recorded, the question is answered
    NEUTRALISE = "neutralise"  # passage: the offending sentences are replaced by a marker
    DROP = "drop"  # passage: the passage is withheld; output: the offending sentences are removed
    FLAG = "flag"  # passage or output: recorded, nothing changed
    FALLBACK = "fallback"  # output: the model's answer is replaced by the extractive one
    ABSTAIN = "abstain"  # output: no answer is given


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    rule: str  # the rule's id in the policy file
    stage: Stage
    action: Action
    detail: str = ""  # never the matched text: kinds, counts, passage numbers

    def audit_text(self) -> str:
        """The decision as the audit record keeps it: ``stage:rule:action[:detail]``."""
        text = f"{self.stage.value}:{self.rule}:{self.action.value}"
        return f"{text}:{self.detail}" if self.detail else text
