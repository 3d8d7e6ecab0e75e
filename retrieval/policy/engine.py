"""The content policy at work: one :class:`PolicyTrail` per question, one call per stage.

The answer service asks the policy once per stage and keeps what it returns:

* ``policy.begin(question)``: input rules. A trail with a ``refusal`` means the
  question is refused: nothing is searched, the model is not called;
* ``trail.passages(passages)``: passage rules, before the model sees them;
* ``trail.judged(sentence, verdict)``: a streamed sentence that breaks an
  output rule is never sent;
* ``trail.output(text)``: output rules on the model's answer: the text to
  settle, or "" (fall back to the extractive answer) or the abstention;
* ``trail.settled(result)``: the answer that stands, checked once more, with
  every decision attached.

``policy.redact(text)`` is what the audit and the logs keep of a question:
personal data and the matches of redacting input rules replaced by
``[KIND]`` / ``[CATEGORY]``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import InvalidInputError
from core.records import Passage
from retrieval.citations import SentenceVerdict
from retrieval.policy import output as checks
from retrieval.policy.decisions import Action, PolicyDecision, Stage
from retrieval.policy.passages import CompiledPassageRule, screen_passages
from retrieval.policy.pii import PiiDetector, PiiKind, replace_spans
from retrieval.policy.rules import InputRule, OutputCheck, OutputRule, PolicyDocument
from retrieval.prompts import ABSTAIN_ANSWER
from retrieval.records import AnswerOutcome, AnswerResult


class QuestionRefusedError(InvalidInputError):
    """A search query an input rule blocks (422; the message is the rule's, written for the caller)."""


@dataclass(frozen=True, slots=True)
class _CompiledInput:
    rule: InputRule
    patterns: tuple[re.Pattern[str], ...]


@dataclass(frozen=True, slots=True)
class _CompiledOutput:
    rule: OutputRule
    patterns: tuple[re.Pattern[str], ...]


class ContentPolicy:
    """A loaded policy file: its rules compiled once, its identity for the audit."""

    def __init__(self, *, document: PolicyDocument, sha256: str) -> None:
        self.document = document
        self.sha256 = sha256
        self.detector = PiiDetector(kinds=document.pii_kinds)
        self._input = tuple(_CompiledInput(rule, rule.compiled()) for rule in document.input)
        self._passage = tuple(CompiledPassageRule(rule, rule.compiled()) for rule in document.passage)
        self._output = tuple(_CompiledOutput(rule, rule.compiled()) for rule in document.output)

    @property
    def version(self) -> str:
        """What an audit record names: ``name/version@sha256:<first 16 hex digits of the file's digest>``."""
        return f"{self.document.name}/{self.document.version}@sha256:{self.sha256[:16]}"

    def redact(self, text: str) -> str:
        """``text`` as the audit and the logs keep it."""
        spans = [(m.start, m.end, f"[{m.kind.value}]") for m in self.detector.find(text)]
        for compiled in self._input:
            if compiled.rule.redact:
                label = f"[{(compiled.rule.category or compiled.rule.id).upper()}]"
                spans += [(m.start(), m.end(), label) for p in compiled.patterns for m in p.finditer(text)]
        return replace_spans(text, spans)

    def begin(self, question: str) -> PolicyTrail:
        """Input rules on ``question``: every warning is recorded; the first blocking rule refuses it."""
        trail = PolicyTrail(policy=self)
        found = {m.kind for m in self.detector.find(question)}
        for compiled in self._input:
            rule = compiled.rule
            kinds = sorted(k.value for k in found & set(rule.pii))
            if not kinds and not any(p.search(question) for p in compiled.patterns):
                continue
            trail.decisions.append(PolicyDecision(rule.id, Stage.INPUT, rule.action, ",".join(kinds)))
            if rule.action is Action.BLOCK:
                trail.refusal = rule.message
                break
        return trail

    # -- used by PolicyTrail ---------------------------------------------------------------

    def _output_rules(self, check: OutputCheck) -> tuple[_CompiledOutput, ...]:
        return tuple(c for c in self._output if c.rule.check is check)


@dataclass
class PolicyTrail:
    """The decisions on one question, stage by stage."""

    policy: ContentPolicy
    decisions: list[PolicyDecision] = dataclasses.field(default_factory=list)
    refusal: str | None = None  # the blocking rule's message for the caller
    _sent: list[str] = dataclasses.field(default_factory=list)

    def passages(self, passages: Sequence[Passage]) -> list[Passage]:
        screened, decisions = screen_passages(
            passages, self.policy._passage, marker=self.policy.document.neutralised_marker
        )
        self.decisions += decisions
        return screened

    def judged(self, sentence: str, verdict: SentenceVerdict) -> SentenceVerdict:
        """A streamed sentence's verdict, withdrawn when it breaks a patterns or repetition rule."""
        if not verdict.kept:
            return verdict
        for compiled in self.policy._output_rules(OutputCheck.PATTERNS):
            if compiled.rule.action is not Action.FLAG and any(p.search(sentence) for p in compiled.patterns):
                return dataclasses.replace(verdict, kept=False, empty=True)
        for compiled in self.policy._output_rules(OutputCheck.REPETITION):
            limit = compiled.rule.max_repeats
            if compiled.rule.action is not Action.FLAG and checks.is_repeated(sentence, self._sent, max_repeats=limit):
                return dataclasses.replace(verdict, kept=False, empty=True)
        self._sent.append(sentence)
        return verdict

    def output(self, text: str) -> str:
        """Output rules on the model's answer: the text to settle ("" falls back, the abstention abstains)."""
        if text == ABSTAIN_ANSWER:
            return text  # the model's own abstention is an answer the prompt asks for
        for compiled in self.policy._output:
            rule = compiled.rule
            offending = self._offending(rule, compiled.patterns, text)
            if not offending:
                continue
            detail = "" if rule.check is OutputCheck.EMPTY else f"{offending} sentence(s)"
            self.decisions.append(PolicyDecision(rule.id, Stage.OUTPUT, rule.action, detail))
            if rule.action is Action.FALLBACK:
                return ""
            if rule.action is Action.ABSTAIN:
                return ABSTAIN_ANSWER
            if rule.action is Action.DROP and rule.check is OutputCheck.PATTERNS:
                text = checks.without(text, checks.matching_sentences(text, compiled.patterns))
            elif rule.action is Action.DROP and rule.check is OutputCheck.REPETITION:
                text = checks.deduplicated(text, max_repeats=rule.max_repeats)
            # DROP on uncited sentences: the citation check removes them. FLAG: recorded only.
        return text

    def settled(self, result: AnswerResult) -> AnswerResult:
        """The answer that stands with every decision; one that breaks a patterns rule becomes an abstention."""
        for compiled in self.policy._output_rules(OutputCheck.PATTERNS):
            rule = compiled.rule
            if rule.action is Action.FLAG or not checks.matching_sentences(result.answer, compiled.patterns):
                continue
            self.decisions.append(PolicyDecision(rule.id, Stage.OUTPUT, Action.ABSTAIN, "final answer"))
            result = dataclasses.replace(result, answer=ABSTAIN_ANSWER, citations=(), outcome=AnswerOutcome.ABSTAINED)
        return dataclasses.replace(result, policy=tuple(self.decisions), policy_version=self.policy.version)

    def refused(self, result: AnswerResult) -> AnswerResult:
        """The refusal of a blocked question, as the answer that stands."""
        return dataclasses.replace(
            result,
            answer=self.refusal or "",
            policy=tuple(self.decisions),
            policy_version=self.policy.version,
        )

    def _offending(self, rule: OutputRule, patterns: Sequence[re.Pattern[str]], text: str) -> int:
        """How many sentences break ``rule`` (1 for an empty answer)."""
        match rule.check:
            case OutputCheck.EMPTY:
                return int(checks.is_empty(text))
            case OutputCheck.REPETITION:
                return checks.repetitions(text, max_repeats=rule.max_repeats)
            case OutputCheck.UNCITED:
                return len(checks.uncited_sentences(text))
            case OutputCheck.PATTERNS:
                return len(checks.matching_sentences(text, patterns))


def audited_policy(result: AnswerResult) -> tuple[str, ...]:
    """What the audit record keeps: the policy that applied (``policy=<version>``), then each decision."""
    if not result.policy_version:
        return tuple(d.audit_text() for d in result.policy)
    return (f"policy={result.policy_version}", *(d.audit_text() for d in result.policy))


__all__ = ["ContentPolicy", "PiiKind", "PolicyTrail", "QuestionRefusedError", "audited_policy"]
