"""First words and whole answers with the local model, before and after the latency work, in one run.

    python -m benchmarks.first_token [--model models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf]
                                     [--questions 10] [--threads 2] [--passage-chars 2400]

Ingests the sample company, then asks the first N sample questions (each as a
user who may read the answering document) through ``AnswerService.stream`` twice,
with one llama.cpp model shared by both paths:

- ``before``: every passage whole, no line in front of the model (the old path);
- ``after``: passages cut to the sentences nearest the question
  (``--passage-chars``), behind the admission line.

Before every measured answer the model is left holding only the system prompt
(what any new question finds after another question), and the two paths take
turns going first, so neither inherits the other's prompt. Reported per path,
p50 and p95 in seconds: ``sources`` (when the page can show what the model
reads), ``model_first_piece`` (the model's first output), ``first_words`` (the
first checked sentence the client sees) and ``answer`` (the whole answer), plus
prompt tokens and answer correctness. ``cpu_s`` gives the same marks in CPU
seconds of the answering thread: with ``--threads 1`` (llama.cpp then computes on
that thread) that is what the wall time would be on an idle core, a figure that
stays meaningful on a shared, busy machine. Then ``stop``: a question waits in line
behind an answer that is stopped, once while the model reads its prompt and once
while it writes; reported are seconds from Stop to the model's release and to
the waiting answer's start.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from acl.principal import Principal
from clearance.compose import build_runtime, relevance_gate
from clearance.samples import sample_sources
from clearance.settings import REPO_ROOT, IndexSettings, Mode, Settings
from core.cancel import Cancellation
from core.records import Passage
from retrieval.answer import AnswerService
from retrieval.generation.admission import ModelAdmission
from retrieval.generation.extractive import ExtractiveGenerator
from retrieval.generation.llama_cpp import LlamaCppGenerator
from retrieval.prompts import GROUNDED_ANSWER_V1, PromptTemplate, chat_messages
from retrieval.records import AnswerEvent, ResultEvent, RetrievedEvent, TokenEvent

DEFAULT_MODEL = REPO_ROOT / "models" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


class TimedModel:
    """The shared llama.cpp generator, noting when each answer started and wrote its first piece."""

    def __init__(self, inner: LlamaCppGenerator) -> None:
        self.inner = inner
        self.started: list[float] = []
        self.first_piece: list[float] = []
        self.first_piece_cpu: list[float] = []
        self.prompt_tokens: list[int] = []

    @property
    def name(self) -> str:
        return self.inner.name

    def generate(
        self,
        *,
        question: str,
        passages: Sequence[Passage],
        history: Sequence[tuple[str, str]] = (),
        cancel: Cancellation | None = None,
        prompt: PromptTemplate | None = None,
    ) -> Iterator[str]:
        self.started.append(time.perf_counter())
        messages = chat_messages(prompt or GROUNDED_ANSWER_V1, question=question, passages=passages)
        text = "\n".join(m["content"] for m in messages)
        self.prompt_tokens.append(len(self.inner._llama.tokenize(text.encode("utf-8"), add_bos=False)))
        first = True
        for piece in self.inner.generate(
            question=question, passages=passages, history=history, cancel=cancel, prompt=prompt
        ):
            if first:
                self.first_piece.append(time.perf_counter())
                self.first_piece_cpu.append(time.thread_time())
                first = False
            yield piece


def _ask(service: AnswerService, model: TimedModel, principal: Principal, question: str) -> dict[str, Any]:
    started = time.perf_counter()
    cpu_started = time.thread_time()  # with one llama.cpp thread, this thread does all the model's work
    marks: dict[str, float] = {}
    cpu: dict[str, float] = {}
    answer = outcome = ""
    before = len(model.first_piece)
    events: Iterator[AnswerEvent] = service.stream(principal, question, progress=True)
    for event in events:
        now = time.perf_counter() - started
        if isinstance(event, RetrievedEvent):
            marks.setdefault("sources", now)
        elif isinstance(event, TokenEvent):
            marks.setdefault("first_words", now)
            cpu.setdefault("first_words", time.thread_time() - cpu_started)
        elif isinstance(event, ResultEvent):
            marks["answer"] = now
            cpu["answer"] = time.thread_time() - cpu_started
            cpu.setdefault("first_words", cpu["answer"])
            answer = event.result.answer
            outcome = event.result.outcome.value
            marks.setdefault("first_words", now)  # a replaced or abstained answer shows its words at the end
    if len(model.first_piece) > before:
        marks["model_first_piece"] = model.first_piece[-1] - started
        cpu["model_first_piece"] = model.first_piece_cpu[-1] - cpu_started
    tokens = model.prompt_tokens[-1] if model.prompt_tokens else 0
    return {"marks": marks, "cpu": cpu, "answer": answer, "outcome": outcome, "prompt_tokens": tokens}


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 2), "p95": round(p95, 2)}


def _stop_then_next(service: AnswerService, model: TimedModel, principal: Principal, question: str) -> dict[str, Any]:
    """Stop an answer (while reading, then while writing) with another waiting; time the release and next start."""
    line = service._admission
    assert line is not None
    report: dict[str, Any] = {}
    for phase in ("reading", "writing"):
        cancel = Cancellation()
        first_events: list[AnswerEvent] = []

        def stopped_one(cancel: Cancellation = cancel, sink: list[AnswerEvent] = first_events) -> None:
            for event in service.stream(principal, question, cancel=cancel, progress=True):
                sink.append(event)

        runner = threading.Thread(target=stopped_one)
        started_count = len(model.started)
        runner.start()
        while len(model.started) == started_count:
            time.sleep(0.005)
        if phase == "writing":
            pieces = len(model.first_piece)
            while len(model.first_piece) == pieces:
                time.sleep(0.005)
        else:
            time.sleep(0.3)
        waiting = threading.Thread(target=lambda: list(service.stream(principal, question)))
        waiting.start()
        while line.waiting == 0 and runner.is_alive():
            time.sleep(0.005)
        stop = time.perf_counter()
        cancel.cancel()
        while line.waiting:  # the waiting answer is admitted once the stopped one released the model
            time.sleep(0.001)
        released = time.perf_counter()
        while len(model.started) < started_count + 2:
            time.sleep(0.001)
        next_started = model.started[-1]
        runner.join()
        waiting.join()
        report[phase] = {
            "stop_to_release_s": round(released - stop, 3),
            "stop_to_next_answer_start_s": round(next_started - stop, 3),
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", type=Path, default=Path(os.environ.get("CLEARANCE_GENERATOR__MODEL_PATH", DEFAULT_MODEL))
    )
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--ids", nargs="+", default=[], help="only these sample questions (their ids)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--passage-chars", type=int, default=Settings().generator.passage_chars)
    parser.add_argument("--skip-stop", action="store_true", help="leave out the Stop measurement")
    args = parser.parse_args()
    questions: list[dict[str, Any]] = json.loads((REPO_ROOT / "samples" / "questions.json").read_text("utf-8"))
    questions = [q for q in questions if q["visible_to"] and (not args.ids or q["id"] in args.ids)][: args.questions]
    with tempfile.TemporaryDirectory(prefix="clearance-first-token-") as scratch:
        settings = Settings(mode=Mode.DEVELOPMENT, data_dir=Path(scratch), index=IndexSettings(location=":memory:"))
        runtime = build_runtime(settings)
        assert runtime.dev is not None
        for source in sample_sources(runtime.dev.directory).values():
            runtime.pipeline.run(source)
        model = TimedModel(LlamaCppGenerator(model_path=args.model, threads=args.threads, warm_prompt=True))
        common: dict[str, Any] = {
            "index": runtime.index,
            "embedder": runtime.embedder,
            "generator": model,
            "fallback": ExtractiveGenerator(),
            "top_k": settings.retrieval.top_k,
            "min_score": settings.retrieval.min_score,
            "gate": relevance_gate(settings),
        }
        paths = {
            "before": AnswerService(**common),
            "after": AnswerService(
                **common,
                admission=ModelAdmission(max_waiting=8, max_wait_seconds=600),
                passage_chars=args.passage_chars,
            ),
        }
        rows: dict[str, list[dict[str, Any]]] = {name: [] for name in paths}
        for number, question in enumerate(questions):
            user = runtime.dev.directory.user(question["visible_to"][0])
            principal = runtime.tokens.authenticate(runtime.dev.idp.mint_for(user))
            order = list(paths) if number % 2 == 0 else list(reversed(paths))
            for name in order:
                model.inner.warm()  # the state any new question finds: the system prompt, read
                row = _ask(paths[name], model, principal, question["question"])
                row["id"] = question["id"]
                row["correct"] = question["answer_contains"] in row["answer"]
                rows[name].append(row)
                print(json.dumps({"path": name, **row}), flush=True)
        report: dict[str, Any] = {
            "model": args.model.name,
            "threads": args.threads,
            "questions": len(questions),
            "passage_chars": args.passage_chars,
            "load_average_at_end": os.getloadavg(),
        }
        for name, measured in rows.items():
            report[name] = {
                mark: _percentiles([r["marks"][mark] for r in measured if mark in r["marks"]])
                for mark in ("sources", "model_first_piece", "first_words", "answer")
            }
            # CPU seconds of the answering thread: with --threads 1, the wall time an idle core would take.
            report[name]["cpu_s"] = {
                mark: _percentiles([r["cpu"][mark] for r in measured if mark in r["cpu"]])
                for mark in ("model_first_piece", "first_words", "answer")
            }
            report[name]["prompt_tokens_p50"] = statistics.median(r["prompt_tokens"] for r in measured)
            report[name]["answer_correct"] = sum(r["correct"] for r in measured)
            report[name]["outcomes"] = dict(collections.Counter(r["outcome"] for r in measured))
        if not args.skip_stop:
            first = questions[0]
            principal = runtime.tokens.authenticate(
                runtime.dev.idp.mint_for(runtime.dev.directory.user(first["visible_to"][0]))
            )
            report["stop"] = _stop_then_next(paths["after"], model, principal, first["question"])
        runtime.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
