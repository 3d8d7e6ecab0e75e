"""Calibrates the relevance gate's floor per retrieval mode on the persona set (``retrieval/relevance.py``).

Ingests the sample company into a throw-away index, then for every persona item
retrieves the passages the product would (dense and hybrid), and computes each
passage's gate score (dense cosine + TERM_WEIGHT x share of question terms). The
questions are split by a hash of their id: two thirds train, one third held out.
The floor chosen for a mode is the highest one that still lets, on the training
questions, at least ``--keep`` of the answerable items through with a passage of
an answering document; the held-out figures are reported beside the training ones
so that an over-fitted floor shows.

The same run measures the support check's subject share (``retrieval/support.py``:
the share of the question's key terms that the passages an answer cites must hold).
Each item gets the extractive answer the product would give (dense retrieval behind
the gate); for a sweep of shares it reports the correct answers kept and the answers
to unanswerable questions refused, on the training and the held-out questions, beside
the highest share that keeps ``--keep-correct`` of the correct training answers (the
product's share is set in the module, from these figures). Writes the chosen floors,
the share figures and the per-item scores as JSON::

    .venv/bin/python -m benchmarks.calibrate_abstention --out evaluation/abstention-calibration.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from clearance.compose import build_runtime
from clearance.evaluation.metrics import contains_fact
from clearance.evaluation.personas import load_personas
from clearance.evaluation.runner import evaluation_settings, support_text
from clearance.settings import (
    GeneratorKind,
    GeneratorSettings,
    IndexSettings,
    IngestSettings,
    Mode,
    RetrievalSettings,
    Settings,
)
from core.records import Passage
from index.ports import RetrievalMode
from retrieval.citations import check_citations
from retrieval.generation.extractive import ExtractiveGenerator
from retrieval.lexicon import key_terms
from retrieval.relevance import TERM_WEIGHT, RelevanceGate, relevance
from retrieval.support import MIN_SUBJECT_SHARE, answers_question, subject_share

MODES = (RetrievalMode.DENSE, RetrievalMode.HYBRID)
MIN_SCORE = RetrievalSettings().min_score
SHARE_SWEEP = (0.34, 0.4, 0.5, 0.6, 0.67, 0.75)


def held_out(question_id: str) -> bool:
    return int(hashlib.sha256(question_id.encode()).hexdigest(), 16) % 3 == 0


def collect(top_k: int) -> list[dict[str, Any]]:
    """Per item and mode: the best gate score of any passage, and of a passage of an answering document."""
    eval_set = load_personas()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="clearance-calibrate-") as scratch_name:
        scratch = Path(scratch_name)
        directory = scratch / "users.json"
        directory.write_text(json.dumps(eval_set.directory), encoding="utf-8")
        settings = Settings(
            mode=Mode.DEVELOPMENT,
            data_dir=scratch / "data",
            index=IndexSettings(location=f"edge:{scratch / 'edge'}"),
            ingest=IngestSettings(isolate_parsing=False),
            generator=GeneratorSettings(kind=GeneratorKind.EXTRACTIVE),
        )
        runtime = build_runtime(evaluation_settings(settings, scratch / "run", directory=directory))
        try:
            eval_set.corpus.ingest(runtime)
            assert runtime.dev is not None
            principals = {}
            for item in eval_set.items:
                if item.persona not in principals:
                    user = runtime.dev.directory.user(item.persona)
                    token = runtime.dev.idp.mint_for(user, lifetime_seconds=3600)
                    principals[item.persona] = runtime.identity.authenticator.authenticate(token)
                principal = principals[item.persona]
                vector = runtime.embedder.embed_query(item.question)
                dense = runtime.index.search(principal, vector, top_k=50, mode=RetrievalMode.DENSE)
                cosines = {p.chunk_id: p.score for p in dense}
                terms = key_terms(item.question)
                row: dict[str, Any] = {
                    "item": item.id,
                    "answerable": item.answerable,
                    "held_out": held_out(item.question_id),
                }
                for mode in MODES:
                    found = runtime.index.search(principal, vector, top_k=top_k, text=item.question, mode=mode)
                    scores = [(relevance(terms, cosines.get(p.chunk_id, 0.0), p), p.source) for p in found]
                    row[mode.value] = round(max((s for s, _ in scores), default=0.0), 4)
                    row[f"{mode.value}_answering"] = round(
                        max((s for s, source in scores if item.relevant.get(source, 0) > 0), default=0.0), 4
                    )
                # What the answer service gets: the top-k dense passages above its minimum score.
                ranked = [p for p in dense[:top_k] if p.score >= MIN_SCORE]
                answered = extractive(item.question, ranked, cosines)
                row["answered"] = answered is not None
                row["share"] = answered[0] if answered else None
                row["correct"] = bool(answered and item.answerable and contains_fact(answered[1], item.facts))
                rows.append(row)
        finally:
            runtime.close()
    return rows


def extractive(question: str, ranked: list[Passage], cosines: dict[str, float]) -> tuple[float, str] | None:
    """The subject share and text of the extractive answer behind the dense gate, or None when it abstains."""
    passages = RelevanceGate.calibrated(RetrievalMode.DENSE).admit(question, ranked, cosines)
    if not passages:
        return None
    texts = [support_text(p) for p in passages]
    answer = ExtractiveGenerator().answer(question=question, passages=passages)
    check = check_citations(answer, passage_count=len(passages), passage_texts=texts, question=question)
    # Every check of the answer service but the one being calibrated.
    if not check.grounded or not answers_question(question, check.text, texts, min_share=0.0).supported:
        return None
    cited = [texts[n - 1] for n in check.cited]
    return subject_share(question, check.text, cited), check.text


def share_rates(rows: list[dict[str, Any]], share: float) -> dict[str, float]:
    """Of the answers given: correct ones to answerable questions kept, ones to unanswerable questions refused."""
    correct = [r for r in rows if r["correct"]]
    wrong = [r for r in rows if r["answered"] and not r["answerable"]]
    return {
        "correct_kept": round(sum(r["share"] >= share for r in correct) / max(1, len(correct)), 4),
        "unanswerable_refused": round(sum(r["share"] < share for r in wrong) / max(1, len(wrong)), 4),
    }


def choose_share(rows: list[dict[str, Any]], keep: float) -> float:
    """The highest share (a multiple of 0.01) that keeps at least ``keep`` of the correct answers."""
    shares = sorted({r["share"] for r in rows if r["correct"]})
    best = 0.0
    for share in shares:
        if share_rates(rows, share)["correct_kept"] >= keep:
            best = share
    return float(int(best * 100)) / 100  # rounded down: every share at or above the chosen one is kept


def rates(rows: list[dict[str, Any]], mode: str, floor: float) -> dict[str, float]:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    return {
        "answerable_let_through": round(sum(r[f"{mode}_answering"] >= floor for r in answerable) / len(answerable), 4),
        "unanswerable_stopped": round(sum(r[mode] < floor for r in unanswerable) / len(unanswerable), 4),
    }


def choose(rows: list[dict[str, Any]], mode: str, keep: float) -> float:
    candidates = sorted({r[f"{mode}_answering"] for r in rows if r["answerable"]})
    best = 0.0
    for floor in candidates:
        if rates(rows, mode, floor)["answerable_let_through"] >= keep:
            best = floor
    return round(best - 0.005, 2)  # just under the last admitted score, rounded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=float, default=0.97, help="share of answerable training items to let through")
    parser.add_argument(
        "--keep-correct", type=float, default=0.98, help="share of correct training answers the support check keeps"
    )
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("evaluation/abstention-calibration.json"))
    args = parser.parse_args()
    rows = collect(args.top_k)
    train = [r for r in rows if not r["held_out"]]
    test = [r for r in rows if r["held_out"]]
    result: dict[str, Any] = {"term_weight": TERM_WEIGHT, "keep": args.keep, "top_k": args.top_k, "floors": {}}
    for mode in MODES:
        floor = choose(train, mode.value, args.keep)
        result["floors"][mode.value] = {
            "floor": floor,
            "train": rates(train, mode.value, floor),
            "held_out": rates(test, mode.value, floor),
        }
        print(mode.value, json.dumps(result["floors"][mode.value]))
    chosen = choose_share(train, args.keep_correct)
    result["support_share"] = {
        "in_use": MIN_SUBJECT_SHARE,
        "train_choice": chosen,
        "keep_correct": args.keep_correct,
        "sweep": {
            str(share): {"train": share_rates(train, share), "held_out": share_rates(test, share)}
            for share in sorted({*SHARE_SWEEP, MIN_SUBJECT_SHARE, chosen})
        },
    }
    print("support share", json.dumps(result["support_share"]))
    result["items"] = rows
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
