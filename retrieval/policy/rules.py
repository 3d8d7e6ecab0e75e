"""The policy file's shape: input, passage and output rules, validated strictly.

An unknown key, an unknown action, a pattern that does not compile or a rule
without anything to match is an error at start-up: a policy that cannot be
read as written is never applied half-way.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from retrieval.policy.decisions import Action
from retrieval.policy.pii import PiiKind

_RULE_ID = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _PatternRule(_Strict):
    id: str = Field(pattern=_RULE_ID)
    category: str = Field(default="", max_length=64, description="what the rule guards against, for reports")
    patterns: tuple[str, ...] = ()
    case_sensitive: bool = False

    def compiled(self) -> tuple[re.Pattern[str], ...]:
        flags = re.MULTILINE | (0 if self.case_sensitive else re.IGNORECASE)
        return tuple(re.compile(pattern, flags) for pattern in self.patterns)

    @model_validator(mode="after")
    def _patterns_compile(self) -> _PatternRule:
        try:
            self.compiled()
        except re.error as exc:
            raise ValueError(f"rule {self.id!r}: a pattern does not compile ({exc})") from exc
        return self


class InputRule(_PatternRule):
    """Matches the question by pattern, or by personal data of the ``pii`` kinds found in it."""

    action: Literal[Action.BLOCK, Action.WARN]
    pii: tuple[PiiKind, ...] = ()
    redact: bool = True  # matched text is replaced by [CATEGORY] in the audit and in logs
    message: str = Field(default="", max_length=500, description="what a blocked caller is told")

    @model_validator(mode="after")
    def _matches_something(self) -> InputRule:
        if not self.patterns and not self.pii:
            raise ValueError(f"input rule {self.id!r} needs patterns or pii kinds")
        if self.action is Action.BLOCK and not self.message:
            raise ValueError(f"input rule {self.id!r} blocks: give it a message for the caller")
        return self


class PassageRule(_PatternRule):
    """Text inside retrieved documents that addresses the model rather than the reader."""

    action: Literal[Action.NEUTRALISE, Action.DROP, Action.FLAG]

    @model_validator(mode="after")
    def _matches_something(self) -> PassageRule:
        if not self.patterns:
            raise ValueError(f"passage rule {self.id!r} needs patterns")
        return self


class OutputCheck(StrEnum):
    EMPTY = "empty"  # nothing but whitespace, citations or punctuation
    REPETITION = "repetition"  # a sentence (or a long phrase) said again and again: a loop
    UNCITED = "uncited"  # sentences that cite no passage
    PATTERNS = "patterns"  # a blocked category, by pattern


class OutputRule(_PatternRule):
    check: OutputCheck
    action: Literal[Action.FALLBACK, Action.ABSTAIN, Action.DROP, Action.FLAG]
    max_repeats: int = Field(default=1, ge=1, le=20, description="repetition: times one sentence may be said")

    @model_validator(mode="after")
    def _consistent(self) -> OutputRule:
        if (self.check is OutputCheck.PATTERNS) != bool(self.patterns):
            raise ValueError(f"output rule {self.id!r}: patterns belong to, and are needed by, check = 'patterns'")
        if self.check is OutputCheck.EMPTY and self.action in (Action.DROP, Action.FLAG):
            raise ValueError(f"output rule {self.id!r}: an empty answer can only fall back or abstain")
        return self


class PolicyDocument(_Strict):
    """The whole policy file."""

    name: str = Field(pattern=_RULE_ID)
    version: str = Field(min_length=1, max_length=64)
    pii_kinds: tuple[PiiKind, ...] = tuple(PiiKind)  # what the detector looks for (redaction, pii rules)
    neutralised_marker: str = Field(default="[text removed by the content policy]", max_length=200)
    input: tuple[InputRule, ...] = ()
    passage: tuple[PassageRule, ...] = ()
    output: tuple[OutputRule, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> PolicyDocument:
        ids = [rule.id for rules in (self.input, self.passage, self.output) for rule in rules]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"rule ids must be unique: {', '.join(duplicates)}")
        for rule in self.input:
            unseen = sorted(set(rule.pii) - set(self.pii_kinds))
            if unseen:
                # The detector would never report them: a rule that can never fire is a mistake.
                raise ValueError(f"input rule {rule.id!r}: {', '.join(unseen)} not in pii_kinds")
        return self
