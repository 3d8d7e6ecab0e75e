"""Runs an evaluation set through the product's own answering path.

The runtime is built by :func:`clearance.compose.build_runtime` from the
operator's settings (generator, retrieval settings, embedder, index kind) with
only the data folder, the index location and the development directory moved
into a throw-away folder. Each item is asked the way the API answers a request:
a development token for the persona, validated by the API's authenticator
(issuer, signature, audience, groups), then the answer service's ``search``
(for the ranking metrics) and ``answer``. Every searched, given and cited chunk
is checked against :class:`.access.AccessReference`.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acl.principal import Principal
from clearance.compose import Runtime, build_runtime
from clearance.evaluation.access import AccessReference, Leak
from clearance.evaluation.items import EvalItem, EvalSet, IngestSummary
from clearance.evaluation.judge import Judge
from clearance.evaluation.observation import Observation
from clearance.evaluation.options import QueryCache
from clearance.settings import Mode, Settings
from core.errors import ClearanceError
from core.records import Passage
from index.ports import Embedder
from retrieval.prompts import PromptSource
from retrieval.records import AnswerOutcome, AnswerResult

# Re-minted before this age so that a long run (BEIR) never presents an expired token.
TOKEN_LIFETIME_S = 3600
TOKEN_REFRESH_S = 1800
# A passage the answer used but the ranking search did not return is looked for this deep before it
# counts as unverifiable (a leak: what cannot be checked is not assumed readable).
VERIFY_DEPTH = 50
# The answer service's stage names, as the report names them.
STAGE_NAMES = {"retrieve": "search"}

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class RunResult:
    eval_set: EvalSet
    observations: tuple[Observation, ...]
    ingest: IngestSummary
    run: dict[str, Any]  # what ran: generator, prompt, retrieval settings, index, machine


def evaluation_settings(
    settings: Settings, scratch: Path, *, directory: Path | None, query_cache: QueryCache = QueryCache.OFF
) -> Settings:
    """The operator's settings with data, index and directory moved into ``scratch``."""
    if settings.mode is not Mode.DEVELOPMENT:
        raise ValueError("evaluation mints development tokens: it runs in development mode only")
    location = settings.index.location
    if location.startswith(("http://", "https://")):
        raise ValueError(
            "evaluation ingests its own corpus into a throw-away index and never writes to a Qdrant server: "
            "set CLEARANCE_INDEX__LOCATION to ':memory:', a folder or 'edge:<folder>' "
            "(it is moved to a temporary folder)"
        )
    if location.startswith("edge:"):
        location = f"edge:{scratch / 'edge'}"
    elif location not in ("", ":memory:"):
        location = str(scratch / "index")
    update: dict[str, Any] = {
        "data_dir": scratch / "data",
        "index": settings.index.model_copy(update={"location": location}),
    }
    if query_cache is QueryCache.OFF and "query_cache_size" in type(settings.retrieval).model_fields:
        # Every persona asks the same question text: with the query-embedding cache on, six of seven
        # "embed" timings would be cache hits. Results are the same either way; only timings differ.
        update["retrieval"] = settings.retrieval.model_copy(update={"query_cache_size": 0})
    if directory is not None:
        update["users_file"] = directory
    # Nothing of a run reaches the operator's shared services: no group cache in their Redis, and job
    # records and audit in a store under the scratch folder (the store's default) rather than their database.
    update["auth"] = settings.auth.model_copy(update={"redis_url": None})
    if "store" in type(settings).model_fields:
        store = getattr(settings, "store")  # noqa: B009  # the state store's settings, where this build has them
        update["store"] = store.model_copy(update={"url": type(store.url)("")})
    return settings.model_copy(update=update)


def run_set(
    eval_set: EvalSet,
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    judge: Judge | None = None,
    progress: Progress | None = None,
    query_cache: QueryCache = QueryCache.OFF,
    prompts: PromptSource | None = None,
) -> RunResult:
    """Ingests the set's corpus into a fresh index and asks every item; the index is gone afterwards.

    ``prompts``: the prompt every answer uses (a candidate version under evaluation); default: the
    scratch store's, which is the built-in default.
    """
    with tempfile.TemporaryDirectory(prefix="clearance-eval-") as scratch_name:
        scratch = Path(scratch_name)
        directory = None
        if eval_set.directory is not None:
            directory = scratch / "users.json"
            directory.write_text(json.dumps(eval_set.directory), encoding="utf-8")
        run_settings = evaluation_settings(settings, scratch, directory=directory, query_cache=query_cache)
        runtime = build_runtime(run_settings, embedder=embedder, prompts=prompts)
        try:
            ingest = eval_set.corpus.ingest(runtime)
            if ingest.errors:
                raise RuntimeError(f"the evaluation corpus did not ingest cleanly: {'; '.join(ingest.errors[:5])}")
            asker = Asker(runtime=runtime, eval_set=eval_set, judge=judge)
            observations: list[Observation] = []
            for number, item in enumerate(eval_set.items, start=1):
                observations.append(asker.ask(item))
                if progress is not None:
                    progress(number, len(eval_set.items))
            run = describe_run(runtime, run_settings, judge=judge, asker=asker)
        finally:
            runtime.close()
    return RunResult(eval_set=eval_set, observations=tuple(observations), ingest=ingest, run=run)


class Asker:
    """Asks items as their personas, the way the API does, and records what came back."""

    def __init__(self, *, runtime: Runtime, eval_set: EvalSet, judge: Judge | None = None) -> None:
        if runtime.dev is None:
            raise ValueError("evaluation needs the development identity provider (development mode)")
        self._dev = runtime.dev
        components = runtime.api_components()
        # Exactly what routes get: the authenticator behind `CurrentPrincipal`, the service behind `Answers`.
        self._authenticator = components.authenticator
        self._answers = components.answers
        self._set = eval_set
        self._judge = judge
        self.reference = AccessReference(runtime.index, tenant_ids=self._dev.directory.tenant_names)
        self._tokens: dict[str, tuple[str, float]] = {}
        self._turns: dict[tuple[str, str], tuple[str, str]] = {}
        self._items = {(i.persona, i.question_id): i for i in eval_set.items}
        self.prompts: set[str] = set()

    def ask(self, item: EvalItem) -> Observation:
        timings: dict[str, float] = {}
        try:
            return self._ask(item, timings)
        except ClearanceError as exc:
            # A domain error (a refused token, an index that does not answer) fails this item, not the run.
            return Observation(item=item, timings_ms=timings, error=f"{type(exc).__name__}: {exc}")

    def _ask(self, item: EvalItem, timings: dict[str, float]) -> Observation:
        principal = self._authenticate(item.persona, timings)
        started = time.perf_counter()
        passages = self._answers.search(principal, item.question, top_k=self._set.search_depth)
        timings["search_call"] = _ms(started)
        leaks = self._check(principal, passages, "search", item.forbidden_sources)
        ranking = tuple(p.source for p in passages)
        if not self._set.generate:
            return Observation(item=item, ranking=ranking, timings_ms=timings, leaks=tuple(leaks))
        history = self._history(item, principal)
        started = time.perf_counter()
        result = self._answers.answer(principal, item.question, history=history)
        timings["answer"] = _ms(started)
        for stage, value in result.timings_ms.items():
            timings[STAGE_NAMES.get(stage, stage)] = value
        self.prompts.add(result.prompt)
        self._turns[(item.persona, item.question_id)] = (item.question, result.answer)
        given = self._given_passages(principal, item.question, result, passages)
        found = [p for p in given if p is not None]
        leaks += self._check(principal, found, "answer", item.forbidden_sources)
        leaks += [
            Leak(chunk_id=chunk_id, source="", where="answer", reason="passage not found for verification")
            for chunk_id, passage in zip(result.retrieved, given, strict=True)
            if passage is None
        ]
        by_chunk = {p.chunk_id: p for p in found}
        cited = [by_chunk[c.chunk_id] for c in result.citations if c.chunk_id in by_chunk]  # the rest: counted above
        leaks += self._check(principal, cited, "citation", item.forbidden_sources)
        return Observation(
            item=item,
            ranking=ranking,
            answer=result.answer,
            outcome=result.outcome.value,
            citations=tuple((c.id, c.source) for c in result.citations),
            passage_texts=tuple(support_text(p) for p in found) if len(found) == len(given) else None,
            timings_ms=timings,
            leaks=tuple(leaks),
            judged_correct=self._grade(item, result),
        )

    # -- steps ---------------------------------------------------------------------------------

    def _authenticate(self, persona: str, timings: dict[str, float]) -> Principal:
        token, minted = self._tokens.get(persona, ("", 0.0))
        if not token or time.monotonic() - minted > TOKEN_REFRESH_S:
            user = self._dev.directory.user(persona)
            token = self._dev.idp.mint_for(user, lifetime_seconds=TOKEN_LIFETIME_S)
            self._tokens[persona] = (token, time.monotonic())
        started = time.perf_counter()
        principal = self._authenticator.authenticate(token)
        timings["auth"] = _ms(started)
        return principal

    def _history(self, item: EvalItem, principal: Principal) -> tuple[tuple[str, str], ...]:
        """The previous turn as this persona saw it: their own question and the answer they got."""
        if item.follow_up_to is None:
            return ()
        turn = self._turns.get((item.persona, item.follow_up_to))
        parent = self._items.get((item.persona, item.follow_up_to))
        if turn is None and parent is not None:
            turn = (parent.question, self._answers.answer(principal, parent.question).answer)
            self._turns[(item.persona, item.follow_up_to)] = turn
        if turn is None:
            return ()
        return (("user", turn[0]), ("assistant", turn[1]))

    def _given_passages(
        self, principal: Principal, question: str, result: AnswerResult, ranking: Sequence[Passage]
    ) -> list[Passage | None]:
        """The passages the answer was written from, in their [n] order (None where not found)."""
        known = {p.chunk_id: p for p in ranking}
        if any(chunk_id not in known for chunk_id in result.retrieved):
            deeper = self._answers.search(principal, question, top_k=max(VERIFY_DEPTH, self._set.search_depth))
            known.update((p.chunk_id, p) for p in deeper)
        return [known.get(chunk_id) for chunk_id in result.retrieved]

    def _check(
        self, principal: Principal, passages: Sequence[Passage], where: str, forbidden: frozenset[str]
    ) -> list[Leak]:
        leaks = []
        for passage in passages:
            reason = self.reference.refusal(principal, passage.doc_id)
            if reason is None and passage.source in forbidden:
                reason = "the evaluation set says this persona may not read it"
            if reason is not None:
                leaks.append(Leak(chunk_id=passage.chunk_id, source=passage.source, where=where, reason=reason))
        return leaks

    def _grade(self, item: EvalItem, result: AnswerResult) -> bool | None:
        if self._judge is None or not item.answerable or result.outcome is AnswerOutcome.ABSTAINED:
            return None
        references = item.references or item.facts
        if not references:
            return None
        return self._judge.grade(question=item.question, answer=result.answer, references=references)


def support_text(passage: Passage) -> str:
    """What a citation of the passage can vouch for, as the answer service's citation check reads it."""
    return " ".join(part for part in (passage.title, passage.section, passage.page_name, passage.text) if part)


def describe_run(runtime: Runtime, settings: Settings, *, judge: Judge | None, asker: Asker) -> dict[str, Any]:
    """What produced the numbers: enough to compare two reports fairly."""
    location = settings.index_location
    return {
        "generator": runtime.answers.generator_name,
        "generator_settings": {"kind": settings.generator.kind.value, "model": settings.generator.model or None},
        "prompts": sorted(asker.prompts),
        "retrieval": settings.retrieval.model_dump(mode="json"),
        "embedding": {
            # Which vectors: backend, recipe and weights (int8 and fp32 rank a little differently).
            "fingerprint": runtime.embedder.fingerprint,
            "model_path": str(settings.embedding.model_path) if settings.embedding.model_path else "bundled",
            "threads": settings.embedding.threads,
        },
        "index": "edge" if location.startswith("edge:") else ("memory" if location == ":memory:" else "local"),
        "judge": judge.name if judge is not None else None,
        "documents_checked_for_leaks": asker.reference.documents,
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": _cpus()},
    }


def _cpus() -> int | None:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
