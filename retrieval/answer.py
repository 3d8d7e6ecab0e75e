"""Grounded answers: permitted retrieval -> generation -> citation check -> fallback.

The model only ever sees passages the caller may read (the index applies the
security filter inside the query). Its output is checked: an answer with
invalid or no citations is replaced by the extractive answer, or by an explicit
abstention; when nothing relevant is permitted the service abstains without
calling the model at all.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Generator, Iterator, Sequence

from acl.principal import Principal
from core.cancel import Cancellation
from core.errors import GenerationError
from core.records import Passage
from index.ports import ChunkIndex, Embedder, RetrievalMode
from retrieval.audit import AnswerAudit, AuditSink, NoAudit, chunk_refs
from retrieval.citations import (
    CitationCheck,
    SentenceVerdict,
    check_citations,
    check_sentence,
    snippet,
    split_sentences,
    summarize,
)
from retrieval.excerpts import excerpts
from retrieval.generation.admission import ModelAdmission, Ticket
from retrieval.generation.base import AnswerGenerator
from retrieval.generation.extractive import ExtractiveGenerator
from retrieval.policy.engine import ContentPolicy, PolicyTrail, QuestionRefusedError, audited_policy
from retrieval.policy.loader import load_policy
from retrieval.prompts import (
    ABSTAIN_ANSWER,
    GROUNDED_ANSWER,
    GROUNDED_ANSWER_V1,
    FixedPrompt,
    PromptSource,
    PromptTemplate,
)
from retrieval.records import (
    AnswerEvent,
    AnswerOutcome,
    AnswerResult,
    Citation,
    QueuedEvent,
    ReplaceEvent,
    ResultEvent,
    RetrievedEvent,
    TokenEvent,
)
from retrieval.relevance import RelevanceGate
from retrieval.support import answers_question

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
        prompts: PromptSource | None = None,
        audit: AuditSink | None = None,
        policy: ContentPolicy | None = None,
        gate: RelevanceGate | None = None,
        admission: ModelAdmission | None = None,
        passage_chars: int = 0,
    ) -> None:
        self._index = index
        self._embedder = embedder
        self._generator = generator
        # Replaces a model answer that fails the check; when it is also the
        # configured generator, its answers are "grounded", never "fallback".
        self._fallback = fallback
        self._top_k = top_k
        self._min_score = min_score
        # The tenant's active version, asked once per request (``prompt`` for every tenant when no source is given).
        self._prompts: PromptSource = prompts or FixedPrompt(prompt)
        self._audit: AuditSink = audit or NoAudit()
        # Input, passage and output rules (the shipped default unless the composition root loads another).
        self._policy = policy or load_policy()
        # Passages that only look related never reach the generator (None: every passage the index returns does).
        self._gate = gate
        # The fair, bounded line in front of a model that writes one answer at a time (None: no line).
        self._admission = admission
        # Characters of passage text the generator reads in all (0: whole passages); see retrieval/excerpts.py.
        self._passage_chars = passage_chars

    @property
    def generator_name(self) -> str:
        return self._generator.name

    def ensure_room(self) -> None:
        """ModelBusyError when the model's waiting line is full now: a stream checks before its response starts."""
        if self._admission is not None:
            self._admission.ensure_room()

    def search(self, principal: Principal, query: str, *, top_k: int | None = None) -> list[Passage]:
        """Passages ``principal`` may read, nearest first (no relevance floor: the caller sees scores); audited."""
        trail = self._policy.begin(query)
        if trail.refusal is not None:
            self._refuse(principal, query, trail, streamed=False)
            raise QuestionRefusedError(trail.refusal)
        started = time.perf_counter()
        vector = self._embedder.embed_query(query)
        passages = self._index.search(principal, vector, top_k=top_k or self._top_k, text=query)
        self._record(
            principal,
            query,
            trail.settled(
                AnswerResult(
                    answer="",
                    citations=(),
                    outcome=AnswerOutcome.SEARCH,
                    generator="",
                    prompt="",
                    retrieved=tuple(p.chunk_id for p in passages),
                    timings_ms={"search": _ms(started)},
                )
            ),
            streamed=False,
            passages=passages,
        )
        return passages

    def answer(
        self,
        principal: Principal,
        question: str,
        *,
        history: Sequence[tuple[str, str]] = (),
        cancel: Cancellation | None = None,
    ) -> AnswerResult:
        """A checked, cited answer (or an abstention), audited.

        ModelBusyError when the model's line is full or the wait for it passes
        its bound; once ``cancel`` is set (the client left) the request leaves
        the line, or stops the model, and the answer is recorded as abandoned.
        """
        timings: dict[str, float] = {}
        prompt = self._prompt_for(principal)
        trail = self._policy.begin(question)
        if trail.refusal is not None:
            return self._refuse(principal, question, trail, prompt=prompt, streamed=False)
        passages = trail.passages(self._relevant(principal, question, timings))
        if not passages:
            return self._abstain(principal, question, timings, prompt=prompt, streamed=False, trail=trail)
        for_model = excerpts(question, passages, budget_chars=self._passage_chars)
        started = time.perf_counter()
        with self._line() as ticket:
            if ticket is not None:
                ticket.wait(cancel)
                timings["queue"] = _ms(started)
            if cancel is not None and cancel.cancelled:
                return self._abandon(principal, question, trail, "", passages, timings, prompt=prompt)
            started = time.perf_counter()
            raw = "".join(self._generated(question, for_model, history, prompt=prompt, cancel=cancel))
        text = trail.output(raw.strip())
        timings["generate"] = _ms(started)
        if cancel is not None and cancel.cancelled:
            return self._abandon(principal, question, trail, "", passages, timings, prompt=prompt)
        result = trail.settled(self._settle(question, text, passages, timings, prompt=prompt))
        self._record(principal, question, result, streamed=False, passages=passages)
        return result

    def stream(
        self,
        principal: Principal,
        question: str,
        *,
        history: Sequence[tuple[str, str]] = (),
        cancel: Cancellation | None = None,
        progress: bool = False,
    ) -> Generator[AnswerEvent, None, None]:
        """Yields TokenEvent*, then ReplaceEvent when the checked answer differs, then one ResultEvent.

        Only checked text is ever sent: the model's output is cut into
        sentences as it arrives, and a sentence is sent (as one TokenEvent) once
        it has passed the same check as the whole answer (valid citation,
        supported by the passage it cites). When the answer that stands differs
        from what was sent (the extractive fallback, an abstention), a
        ReplaceEvent carries it. Once ``cancel`` is set the generator stops and
        the stream ends after its result. With ``progress``, a RetrievedEvent comes first (a waiting client
        can say what is happening).
        """
        timings: dict[str, float] = {}
        prompt = self._prompt_for(principal)
        trail = self._policy.begin(question)
        if trail.refusal is not None:
            result = self._refuse(principal, question, trail, prompt=prompt, streamed=True)
            yield TokenEvent(result.answer)
            yield ResultEvent(result)
            return
        passages = trail.passages(self._relevant(principal, question, timings))
        if progress:
            yield RetrievedEvent(len(passages), sources=tuple(_citation(n, p) for n, p in enumerate(passages, 1)))
        if not passages:
            result = self._abstain(principal, question, timings, prompt=prompt, streamed=True, trail=trail)
            yield TokenEvent(ABSTAIN_ANSWER)
            yield ResultEvent(result)
            return
        for_model = excerpts(question, passages, budget_chars=self._passage_chars)
        started = time.perf_counter()
        raw = ""
        judged: list[tuple[str, SentenceVerdict]] = []  # every complete sentence with its verdict, in order
        sent: list[str] = []
        support = [_support_text(p) for p in passages]
        held: list[str] = []  # checked sentences not shown yet: the answer so far does not answer the question

        def checked(sentence: str) -> Iterator[TokenEvent]:
            """Judges one complete sentence; shows nothing until the answer so far passes the support check,
            then every checked sentence held until then."""
            judged.append((sentence, trail.judged(sentence, self._judge(sentence, question, support))))
            if not judged[-1][1].kept:
                return
            held.append(sentence)
            if not answers_question(question, " ".join([*sent, *held]), support).supported:
                return
            for shown in held:
                sent.append(shown)
                yield TokenEvent(shown if len(sent) == 1 else " " + shown)
            held.clear()

        with self._line() as ticket:
            try:
                if ticket is not None:
                    waited = False
                    for position in ticket.positions(cancel):
                        if progress:
                            waited = True
                            yield QueuedEvent(position)
                    if waited and not (cancel is not None and cancel.cancelled):
                        yield QueuedEvent(0)  # its turn: the model reads the passages now
                    timings["queue"] = _ms(started)
                    started = time.perf_counter()
                if cancel is not None and cancel.cancelled:
                    self._abandon(principal, question, trail, "", passages, timings, prompt=prompt, streamed=True)
                    return
                for piece in self._generated(question, for_model, history, prompt=prompt, cancel=cancel):
                    raw += piece
                    for sentence in _complete_sentences(raw)[len(judged) :]:
                        yield from checked(sentence)
            except GeneratorExit:
                # The client left (mid-answer or while waiting): what it was shown is audited as abandoned.
                timings["generate"] = _ms(started)
                shown = " ".join(sent)
                self._abandon(principal, question, trail, shown, passages, timings, prompt=prompt, streamed=True)
                raise
        timings["generate"] = _ms(started)
        text = raw.strip()
        if text != ABSTAIN_ANSWER:
            for sentence in split_sentences(text)[len(judged) :]:
                yield from checked(sentence)
        # The whole answer's verdict from the sentence verdicts already made: nothing is judged twice.
        # Output rules may change the text to settle (fall back, abstain, drop sentences): then it is judged anew.
        screened = trail.output(text)
        check = summarize(judged) if screened == text else None
        result = trail.settled(self._settle(question, screened, passages, timings, prompt=prompt, check=check))
        if result.answer != " ".join(sent):
            yield ReplaceEvent(result.answer)
        self._record(principal, question, result, streamed=True, passages=passages)
        yield ResultEvent(result)

    @contextlib.contextmanager
    def _line(self) -> Iterator[Ticket | None]:
        """A place in the model's line (None without one), always given up on the way out."""
        if self._admission is None:
            yield None
            return
        with self._admission.join() as ticket:
            yield ticket

    def _abandon(
        self,
        principal: Principal,
        question: str,
        trail: PolicyTrail,
        shown: str,
        passages: Sequence[Passage],
        timings: dict[str, float],
        *,
        prompt: PromptTemplate,
        streamed: bool = False,
    ) -> AnswerResult:
        """An answer the client left before it was complete, audited with what it was shown."""
        result = trail.settled(self._result(shown, (), AnswerOutcome.ABANDONED, passages, timings, prompt=prompt))
        self._record(principal, question, result, streamed=streamed, passages=passages)
        return result

    @staticmethod
    def _judge(sentence: str, question: str, support: Sequence[str]) -> SentenceVerdict:
        return check_sentence(sentence, passage_count=len(support), passage_texts=support, question=question)

    # -- stages ----------------------------------------------------------------

    def _prompt_for(self, principal: Principal) -> PromptTemplate:
        """The caller's tenant's active answer prompt: read once, used for the model and the record alike."""
        return self._prompts.active(principal.tenant_id, GROUNDED_ANSWER)

    def _relevant(self, principal: Principal, question: str, timings: dict[str, float]) -> list[Passage]:
        started = time.perf_counter()
        vector = self._embedder.embed_query(question)
        timings["embed"] = _ms(started)
        started = time.perf_counter()
        passages = self._index.search(principal, vector, top_k=self._top_k, min_score=self._min_score, text=question)
        if self._gate is not None and passages:
            passages = self._gate.admit(question, passages, self._cosines(principal, vector, passages))
        timings["retrieve"] = _ms(started)
        return passages

    def _cosines(self, principal: Principal, vector: list[float], passages: Sequence[Passage]) -> dict[str, float]:
        """Dense cosines of ``passages`` for the gate: their scores, or (hybrid, sparse, reranked) a dense look-up."""
        if self._gate is not None and self._gate.scores_are_cosines:
            return {p.chunk_id: p.score for p in passages}
        dense = self._index.search(principal, vector, top_k=max(50, self._top_k), mode=RetrievalMode.DENSE)
        return {p.chunk_id: p.score for p in dense}

    def _generated(
        self,
        question: str,
        passages: Sequence[Passage],
        history: Sequence[tuple[str, str]],
        *,
        prompt: PromptTemplate,
        cancel: Cancellation | None,
    ) -> Iterator[str]:
        try:
            yield from self._generator.generate(
                question=question, passages=passages, history=history, cancel=cancel, prompt=prompt
            )
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
        prompt: PromptTemplate,
        check: CitationCheck | None = None,
    ) -> AnswerResult:
        """The answer that stands: the checked model answer, the extractive one, or an abstention.

        ``check`` is the verdict on ``text`` when the caller has already made it (a stream).
        """
        if text == ABSTAIN_ANSWER:
            return self._result(ABSTAIN_ANSWER, (), AnswerOutcome.ABSTAINED, passages, timings, prompt=prompt)
        if check is None:
            check = check_citations(
                text, passage_count=len(passages), passage_texts=[_support_text(p) for p in passages], question=question
            )
        texts = [_support_text(p) for p in passages]
        if check.grounded and answers_question(question, check.text, texts).supported:
            return self._result(check.text, check.cited, AnswerOutcome.GROUNDED, passages, timings, prompt=prompt)
        # The fallback must pass the same checks as the model's answer; otherwise the service abstains.
        fallback = self._fallback.answer(question=question, passages=passages)
        checked = check_citations(fallback, passage_count=len(passages), passage_texts=texts, question=question)
        if not checked.grounded or not answers_question(question, checked.text, texts).supported:
            return self._result(ABSTAIN_ANSWER, (), AnswerOutcome.ABSTAINED, passages, timings, prompt=prompt)
        outcome = AnswerOutcome.GROUNDED if self._generator is self._fallback else AnswerOutcome.EXTRACTIVE_FALLBACK
        return self._result(checked.text, checked.cited, outcome, passages, timings, prompt=prompt)

    def _abstain(
        self,
        principal: Principal,
        question: str,
        timings: dict[str, float],
        *,
        prompt: PromptTemplate,
        streamed: bool,
        trail: PolicyTrail | None = None,
    ) -> AnswerResult:
        result = self._result(ABSTAIN_ANSWER, (), AnswerOutcome.ABSTAINED, (), timings, prompt=prompt)
        result = (trail or PolicyTrail(policy=self._policy)).settled(result)
        self._record(principal, question, result, streamed=streamed)
        return result

    def _refuse(
        self,
        principal: Principal,
        question: str,
        trail: PolicyTrail,
        *,
        streamed: bool,
        prompt: PromptTemplate | None = None,
    ) -> AnswerResult:
        """A question an input rule blocks: nothing searched, nothing generated; audited with the text redacted.

        Without ``prompt`` it is a search: it stays a search in the audit, and its decisions say it was blocked.
        """
        refused = trail.refused(
            AnswerResult(
                answer="",
                citations=(),
                outcome=AnswerOutcome.SEARCH if prompt is None else AnswerOutcome.BLOCKED,
                generator="" if prompt is None else self._generator.name,
                prompt="" if prompt is None else prompt.id,
            )
        )
        self._record(principal, question, refused, streamed=streamed)
        return refused

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
                question=self._policy.redact(question),  # personal data and redacting rules' matches removed
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
                answer=result.answer,
                policy=audited_policy(result),
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
        *,
        prompt: PromptTemplate,
    ) -> AnswerResult:
        return AnswerResult(
            answer=text,
            citations=tuple(_citation(number, passages[number - 1]) for number in cited),
            outcome=outcome,
            generator=self._generator.name,
            prompt=prompt.id,
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
