"""Grounded answers: permitted retrieval -> generation -> citation check -> fallback.

The model only ever sees passages the caller may read (the index applies the
security filter inside the query). Its output is checked: an answer with
invalid or no citations is replaced by the extractive answer, or by an explicit
abstention; when nothing relevant is permitted the service abstains without
calling the model at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from acl.principal import Principal
from clearance.errors import GenerationError
from retrieval.audit import AnswerAudit, AuditSink, NoAudit
from retrieval.citations import check_citations
from retrieval.embedding import Embedder
from retrieval.generation import ExtractiveGenerator, Generator
from retrieval.index import ChunkIndex
from retrieval.prompts import ABSTAIN_ANSWER, GROUNDED_ANSWER_V1, PromptTemplate
from retrieval.records import Passage

log = logging.getLogger(__name__)
SNIPPET_CHARS = 300


class AnswerOutcome(StrEnum):
    GROUNDED = "grounded"  # the configured generator's answer passed the citation check
    EXTRACTIVE_FALLBACK = "extractive_fallback"  # the model's answer was replaced
    ABSTAINED = "abstained"  # nothing relevant the caller may read answers the question


@dataclass(frozen=True, slots=True)
class Citation:
    id: int
    chunk_id: str
    source: str
    title: str
    section: str | None
    page: int | None
    snippet: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "chunk_id": self.chunk_id,
            "source": self.source,
            "title": self.title,
            "section": self.section,
            "page": self.page,
            "snippet": self.snippet,
        }


@dataclass
class AnswerResult:
    answer: str
    citations: list[Citation]
    outcome: AnswerOutcome
    generator: str
    prompt: str
    retrieved: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)


class AnswerService:
    """Search and chat for one index, embedder and generator."""

    def __init__(
        self,
        *,
        index: ChunkIndex,
        embedder: Embedder,
        generator: Generator,
        top_k: int = 5,
        min_score: float = 0.25,
        prompt: PromptTemplate = GROUNDED_ANSWER_V1,
        audit: AuditSink | None = None,
    ) -> None:
        self._index = index
        self._embedder = embedder
        self._generator = generator
        self._fallback = ExtractiveGenerator()
        self._top_k = top_k
        self._min_score = min_score
        self._prompt = prompt
        self._audit: AuditSink = audit or NoAudit()

    @property
    def generator_name(self) -> str:
        return self._generator.name

    def search(self, principal: Principal, query: str, *, top_k: int | None = None) -> list[Passage]:
        vector = self._embedder.embed_query(query)
        return self._index.search(principal, vector, top_k=top_k or self._top_k)

    def answer(self, principal: Principal, question: str, *, history: Sequence[tuple[str, str]] = ()) -> AnswerResult:
        result: AnswerResult | None = None
        for event, payload in self.stream(principal, question, history=history, streamed=False):
            if event == "result":
                result = payload
        assert result is not None  # stream always ends with a result
        return result

    def stream(
        self,
        principal: Principal,
        question: str,
        *,
        history: Sequence[tuple[str, str]] = (),
        streamed: bool = True,
    ) -> Iterator[tuple[str, Any]]:
        """Yields ("token", str)* then ("replace", str)? then ("result", AnswerResult).

        Tokens are the generator's raw output as it is produced; when the
        checked answer differs, a "replace" event carries the text that stands.
        """
        timings: dict[str, float] = {}
        started = time.perf_counter()
        passages = [p for p in self.search(principal, question) if p.score >= self._min_score]
        timings["retrieve"] = _ms(started)
        retrieved = [p.chunk_id for p in passages]
        if not passages:
            result = self._result(ABSTAIN_ANSWER, [], AnswerOutcome.ABSTAINED, retrieved, timings)
            self._record(principal, question, result, streamed)
            yield "token", ABSTAIN_ANSWER
            yield "result", result
            return
        started = time.perf_counter()
        raw: list[str] = []
        try:
            for piece in self._generator.generate(question=question, passages=passages, history=history):
                raw.append(piece)
                yield "token", piece
        except GenerationError as exc:
            log.warning("generator %s failed: %s", self._generator.name, exc)
        timings["generate"] = _ms(started)
        text = "".join(raw).strip()
        final, outcome = self._checked(question, text, passages)
        if final != text:
            yield "replace", final
        citations = self._citations(final, passages)
        result = self._result(final, citations, outcome, retrieved, timings)
        self._record(principal, question, result, streamed)
        yield "result", result

    def _record(self, principal: Principal, question: str, result: AnswerResult, streamed: bool) -> None:
        self._audit.record(
            AnswerAudit(
                tenant_id=principal.tenant_id,
                object_id=principal.object_id,
                principals=tuple(sorted(principal.access_keys())),
                groups_complete=principal.groups_complete,
                question=question,
                retrieved=tuple(result.retrieved),
                cited=tuple(c.chunk_id for c in result.citations),
                outcome=result.outcome.value,
                generator=result.generator,
                prompt=result.prompt,
                timings_ms=dict(result.timings_ms),
                streamed=streamed,
            )
        )

    def _checked(self, question: str, text: str, passages: Sequence[Passage]) -> tuple[str, AnswerOutcome]:
        if text == ABSTAIN_ANSWER:
            return ABSTAIN_ANSWER, AnswerOutcome.ABSTAINED
        check = check_citations(
            text, passage_count=len(passages), passage_texts=[_support_text(p) for p in passages], question=question
        )
        if check.grounded:
            return check.text, AnswerOutcome.GROUNDED
        fallback = self._fallback.answer(question=question, passages=passages)
        if fallback == ABSTAIN_ANSWER:
            return ABSTAIN_ANSWER, AnswerOutcome.ABSTAINED
        if self._generator.name == self._fallback.name:
            return fallback, AnswerOutcome.GROUNDED
        return fallback, AnswerOutcome.EXTRACTIVE_FALLBACK

    @staticmethod
    def _citations(text: str, passages: Sequence[Passage]) -> list[Citation]:
        check = check_citations(text, passage_count=len(passages))
        return [
            Citation(
                id=number,
                chunk_id=passages[number - 1].chunk_id,
                source=passages[number - 1].source,
                title=passages[number - 1].title,
                section=passages[number - 1].section,
                page=passages[number - 1].page,
                snippet=snippet(passages[number - 1].text),
            )
            for number in check.cited
        ]

    def _result(
        self,
        text: str,
        citations: list[Citation],
        outcome: AnswerOutcome,
        retrieved: list[str],
        timings: dict[str, float],
    ) -> AnswerResult:
        return AnswerResult(
            answer=text,
            citations=citations,
            outcome=outcome,
            generator=self._generator.name,
            prompt=self._prompt.id,
            retrieved=retrieved,
            timings_ms=timings,
        )


def _support_text(passage: Passage) -> str:
    """What a citation of this passage can vouch for: its text and where it sits."""
    return " ".join(part for part in (passage.title, passage.section, passage.page_name, passage.text) if part)


def snippet(text: str) -> str:
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1].rstrip() + "…"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
