"""Answer quality on the sample company, per generator, printed as JSON.

    python -m benchmarks.answers [--generator extractive|llama_cpp|openai] [--limit N]

For every question in samples/questions.json, asks as one user who may read the
answering document (expects the answer string, cited from that document) and as
one who may not (expects an abstention and no citation of it). Generator
settings come from the usual CLEARANCE_GENERATOR__* variables.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from clearance.compose import build_runtime
from clearance.samples import sample_sources
from clearance.settings import REPO_ROOT, GeneratorKind, IndexSettings, Mode, Settings
from retrieval.prompts import ABSTAIN_ANSWER


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", choices=[k.value for k in GeneratorKind], default=None)
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions (0: all)")
    args = parser.parse_args()
    questions: list[dict[str, Any]] = json.loads((REPO_ROOT / "samples" / "questions.json").read_text("utf-8"))
    if args.limit:
        questions = questions[: args.limit]
    with tempfile.TemporaryDirectory(prefix="clearance-answers-") as scratch:
        settings = Settings(mode=Mode.DEVELOPMENT, data_dir=Path(scratch), index=IndexSettings(location=":memory:"))
        if args.generator:
            settings.generator.kind = GeneratorKind(args.generator)
        runtime = build_runtime(settings)
        assert runtime.dev is not None
        for source in sample_sources(runtime.dev.directory).values():
            runtime.pipeline.run(source)
        rows = []
        for question in questions:
            path = question["document"].split("/", 1)[1]
            for user, allowed in ((question["visible_to"][:1], True), (question["hidden_from"][:1], False)):
                if not user:
                    continue
                principal = runtime.tokens.authenticate(runtime.dev.idp.mint_for(runtime.dev.directory.user(user[0])))
                started = time.perf_counter()
                result = runtime.answers.answer(principal, question["question"])
                elapsed = time.perf_counter() - started
                cited = {c.source for c in result.citations}
                rows.append(
                    {
                        "id": question["id"],
                        "user": user[0],
                        "allowed": allowed,
                        "outcome": result.outcome.value,
                        "correct": question["answer_contains"] in result.answer if allowed else True,
                        "cites_document": path in cited,
                        "leaked": (not allowed) and (path in cited or question["answer_contains"] in result.answer),
                        "abstained": result.answer == ABSTAIN_ANSWER,
                        "seconds": round(elapsed, 2),
                    }
                )
        runtime.close()
    allowed_rows = [r for r in rows if r["allowed"]]
    denied_rows = [r for r in rows if not r["allowed"]]
    report = {
        "generator": runtime.answers.generator_name,
        "questions": len(questions),
        "permitted": {
            "answer_correct": round(sum(r["correct"] for r in allowed_rows) / len(allowed_rows), 3),
            "cites_answering_document": round(sum(r["cites_document"] for r in allowed_rows) / len(allowed_rows), 3),
            "abstained": sum(r["abstained"] for r in allowed_rows),
            "extractive_fallbacks": sum(r["outcome"] == "extractive_fallback" for r in allowed_rows),
        },
        "not_permitted": {
            "leaks": sum(r["leaked"] for r in denied_rows),
            "abstained": round(sum(r["abstained"] for r in denied_rows) / max(1, len(denied_rows)), 3),
        },
        "latency_s": {
            "p50": round(statistics.median(r["seconds"] for r in rows), 2),
            "max": max(r["seconds"] for r in rows),
        },
        "misses": [f"{r['id']} as {r['user']}: {r['outcome']}" for r in allowed_rows if not r["correct"]],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
