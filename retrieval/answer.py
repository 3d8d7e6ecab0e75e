"""Grounded answers: permitted retrieval -> generation -> citation check -> fallback.

The model only ever sees passages the caller may read (the index applies the
security filter inside the query). Its output is checked: an answer with
invalid or no citations is replaced by the extractive answer, or by an explicit
abstention; when nothing relevant is permitted the service abstains without
calling the model at all.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Generator, Iterator, Sequence

from acl.principal import Principal
from core.cancel import Cancellation
from core.errors import GenerationError
from core.records import Passage
from index.ports import ChunkIndex, Embedder
from retrieval.audit import AnswerAudit, AuditSink, NoAudit, chunk_refs, stored_question
from retrieval.citations import (
    CitationCheck,
    SentenceVerdict,
    check_citations,
    check_sentence,
    snippet,
    split_sentences,
    summarize,
)
from retrieval.generation.base import AnswerGenerator
from retrieval.generation.extractive import ExtractiveGenerator
from retrieval.prompts import ABSTAIN_ANSWER, GROUNDED_ANSWER_V1, PromptTemplate
from retrieval.records import (
    AnswerEvent,
    AnswerOutcome,
    AnswerResult,
    Citation,
    ReplaceEvent,
    ResultEvent,
    TokenEvent,
)

log = logging.getLogger(__name__)


class AnswerService:
    """Search and chat for one index, embedder and generator."""

    def __init__(
        self,
        *,
        index: ChunkIndex,
        embedder: Embedder,
        generator: AnswerGenerator,
        fallback: ExtractiveGenerator,
        top_k: int = 5,
        min_score: float = 0.25,
        prompt: PromptTemplate = GROUNDED_ANSWER_V1,
        audit: AuditSink | None = None,
    ) -> None:
        self._index = index
        self._embedder = embedder
        self._generator = generator
        # Replaces a model answer that fails the check; when it is also the
        # configured generator, its answers are "grounded", never "fallback".
        self._fallback = fallback
        self._top_k = top_k
        self._min_score = min_score
        self._prompt = prompt
        self._audit: AuditSink = audit or NoAudit()

    @property
    def generator_name(self) -> str:
        return self._generator.name

    def search(self, principal: Principal, query: str, *, top_k: int | None = None) -> list[Passage]:
        """Passages ``principal`` may read, nearest first (no relevance floor: the caller sees scores); audited."""
        started = time.perf_counter()
        vector = self._embedder.embed_query(query)
        passages = self._index.search(principal, vector, top_k=top_k or self._top_k, text=query)
        self._record(
            principal,
            query,
            AnswerResult(
                answer="",
                citations=(),
                outcome=AnswerOutcome.SEARCH,
                generator="",
                prompt="",
                retrieved=tuple(p.chunk_id for p in passages),
                timings_ms={"search": _ms(started)},
            ),
            streamed=False,
            passages=passages,
        )
        return passages

    def answer(self, principal: Principal, question: str, *, history: Sequence[tuple[str, str]] = ()) -> AnswerResult:
        """A checked, cited answer (or an abstention), audited."""
        timings: dict[str, float] = {}
        passages = self._relevant(principal, question, timings)
        if not passages:
            return self._abstain(principal, question, timings, streamed=False)
        started = time.perf_counter()
        text = "".join(self._generated(question, passages, history, cancel=None)).strip()
        timings["generate"] = _ms(started)
        result = self._settle(question, text, passages, timings)
        self._record(principal, question, result, streamed=False, passages=passages)
        return result

    def stream(
        self,
        principal: Principal,
        question: str,
        *,
        history: Sequence[tuple[str, str]] = (),
        cancel: Cancellation | None = None,
    ) -> Generator[AnswerEvent, None, None]:
        """Yields TokenEvent*, then ReplaceEvent when the checked answer differs, then one ResultEvent.

        Only checked text is ever sent: the model's output is cut into
        sentences as it arrives, and a sentence is sent (as one TokenEvent) once
        it has passed the same check as the whole answer (valid citation,
        supported by the passage it cites). When the answer that stands differs
        from what was sent (the extractive fallback, an abstention), a
        ReplaceEvent carries it. Once ``cancel`` is set the generator stops and
        the stream ends after its result.
        """
        timings: dict[str, float] = {}
        passages = self._relevant(principal, question, timings)
        if not passages:
            result = self._abstain(principal, question, timings, streamed=True)
            yield TokenEvent(ABSTAIN_ANSWER)
            yield ResultEvent(result)
            return
        started = time.perf_counter()
        raw = ""
        judged: list[tuple[str, SentenceVerdict]] = []  # every complete sentence with its verdict, in order
        sent: list[str] = []
        support = [_support_text(p) for p in passages]
        try:
            for piece in self._generated(question, passages, history, cancel=cancel):
                raw += piece
                for sentence in _complete_sentences(raw)[len(judged) :]:
                    judged.append((sentence, self._judge(sentence, question, support)))
                    if judged[-1][1].kept:
                        sent.append(sentence)
                        yield TokenEvent(sentence if len(sent) == 1 else " " + sentence)
        except GeneratorExit:
            # The client left mid-answer: what it was shown is audited as an abandoned answer.
            timings["generate"] = _ms(started)
            shown = self._result(" ".join(sent), (), AnswerOutcome.ABANDONED, passages, timings)
            self._record(principal, question, shown, streamed=True, passages=passages)
            raise
        timings["generate"] = _ms(started)
        text = raw.strip()
        if text != ABSTAIN_ANSWER:
            for sentence in split_sentences(text)[len(judged) :]:
                judged.append((sentence, self._judge(sentence, question, support)))
                if judged[-1][1].kept:
                    sent.append(sentence)
                    yield TokenEvent(sentence if len(sent) == 1 else " " + sentence)
        # The whole answer's verdict from the sentence verdicts already made: nothing is judged twice.
        result = self._settle(question, text, passages, timings, check=summarize(judged))
        if result.answer != " ".join(sent):
            yield ReplaceEvent(result.answer)
        self._record(principal, question, result, streamed=True, passages=passages)
        yield ResultEvent(result)

    @staticmethod
    def _judge(sentence: str, question: str, support: Sequence[str]) -> SentenceVerdict:
        return check_sentence(sentence, passage_count=len(support), passage_texts=support, question=question)

    # -- stages ----------------------------------------------------------------

    def _relevant(self, principal: Principal, question: str, timings: dict[str, float]) -> list[Passage]:
        started = time.perf_counter()
        vector = self._embedder.embed_query(question)
        timings["embed"] = _ms(started)
        started = time.perf_counter()
        passages = self._index.search(principal, vector, top_k=self._top_k, min_score=self._min_score, text=question)
        timings["retrieve"] = _ms(started)
        return passages

    def _generated(
        self,
        question: str,
        passages: Sequence[Passage],
        history: Sequence[tuple[str, str]],
        *,
        cancel: Cancellation | None,
    ) -> Iterator[str]:
        try:
            yield from self._generator.generate(question=question, passages=passages, history=history, cancel=cancel)
        except GenerationError as exc:
            # An empty answer fails the check below and is replaced: the model is a component.
            log.warning("generator %s failed: %s", self._generator.name, exc)

    def _settle(
        self,
        question: str,
        text: str,
        passages: Sequence[Passage],
        timings: dict[str, float],
        *,
        check: CitationCheck | None = None,
    ) -> AnswerResult:
        """The answer that stands: the checked model answer, the extractive one, or an abstention.

        ``check`` is the verdict on ``text`` when the caller has already made it (a stream).
        """
        if text == ABSTAIN_ANSWER:
            return self._result(ABSTAIN_ANSWER, (), AnswerOutcome.ABSTAINED, passages, timings)
        if check is None:
            check = check_citations(
                text, passage_count=len(passages), passage_texts=[_support_text(p) for p in passages], question=question
            )
        if check.grounded:
            return self._result(check.text, check.cited, AnswerOutcome.GROUNDED, passages, timings)
        fallback = self._fallback.answer(question=question, passages=passages)
        if fallback == ABSTAIN_ANSWER:
            return self._result(ABSTAIN_ANSWER, (), AnswerOutcome.ABSTAINED, passages, timings)
        outcome = AnswerOutcome.GROUNDED if self._generator is self._fallback else AnswerOutcome.EXTRACTIVE_FALLBACK
        cited = check_citations(fallback, passage_count=len(passages)).cited
        return self._result(fallback, cited, outcome, passages, timings)

    def _abstain(
        self, principal: Principal, question: str, timings: dict[str, float], *, streamed: bool
    ) -> AnswerResult:
        result = self._result(ABSTAIN_ANSWER, (), AnswerOutcome.ABSTAINED, (), timings)
        self._record(principal, question, result, streamed=streamed)
        return result

    def _record(
        self,
        principal: Principal,
        question: str,
        result: AnswerResult,
        *,
        streamed: bool,
        passages: Sequence[Passage] = (),
    ) -> None:
        # The sink raises when it cannot write (the store is down): the answer is then not returned.
        self._audit.record(
            AnswerAudit(
                tenant_id=principal.tenant_id,
                object_id=principal.object_id,
                principals=tuple(sorted(principal.access_keys())),
                groups_complete=principal.groups_complete,
                question=stored_question(question),
                retrieved=result.retrieved,
                cited=tuple(c.chunk_id for c in result.citations),
                outcome=result.outcome.value,
                generator=result.generator,
                prompt=result.prompt,
                timings_ms=dict(result.timings_ms),
                streamed=streamed,
                kind="search" if result.outcome is AnswerOutcome.SEARCH else "answer",
                narrowed=principal.narrowing_reasons,
                chunks=chunk_refs(passages),
                # Generator names are "kind:model" (openai:gpt-4o, llama.cpp:file.gguf); extractive has no model.
                model=result.generator.partition(":")[2],
                id=result.id,
            )
        )

    def _result(
        self,
        text: str,
        cited: Sequence[int],
        outcome: AnswerOutcome,
        passages: Sequence[Passage],
        timings: dict[str, float],
    ) -> AnswerResult:
        return AnswerResult(
            answer=text,
            citations=tuple(_citation(number, passages[number - 1]) for number in cited),
            outcome=outcome,
            generator=self._generator.name,
            prompt=self._prompt.id,
            retrieved=tuple(p.chunk_id for p in passages),
            timings_ms=timings,
        )


def _citation(number: int, passage: Passage) -> Citation:
    return Citation(
        id=number,
        chunk_id=passage.chunk_id,
        source=passage.source,
        title=passage.title,
        section=passage.section,
        page=passage.page,
        snippet=snippet(passage.text),
    )


_CITATION_IN_PROGRESS = re.compile(r"^\[\d{0,3}\]?[.!?]?$")


def _complete_sentences(text: str) -> list[str]:
    """The sentences of a growing text that can no longer change.

    The last sentence may still grow, and a citation written after a full stop
    ("... per day. [2]") is merged into the sentence before it, so while the
    text ends in what may be such a citation, the sentence before it is not
    complete either.
    """
    sentences = split_sentences(text)
    if not sentences:
        return []
    keep = len(sentences) - 1
    if keep and _CITATION_IN_PROGRESS.match(sentences[-1]):
        keep -= 1
    return sentences[:keep]


def _support_text(passage: Passage) -> str:
    """What a citation of this passage can vouch for: its text and where it sits."""
    return " ".join(part for part in (passage.title, passage.section, passage.page_name, passage.text) if part)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
