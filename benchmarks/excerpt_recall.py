"""Does cutting passages to the sentences nearest the question keep the answer? Printed as JSON; no model needed.

    python -m benchmarks.excerpt_recall [--budgets 0 700 1200 1600 2400]

For every sample question (samples/questions.json), asked as a user who may read
the answering document, retrieves the passages the model would read and checks,
per passage budget (``CLEARANCE_GENERATOR__PASSAGE_CHARS``), whether the
expected answer string is still in the text the model reads, and how many
characters of passage text that is. Budget 0 is whole passages: the ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from clearance.compose import build_runtime
from clearance.samples import sample_sources
from clearance.settings import REPO_ROOT, IndexSettings, Mode, Settings
from retrieval.excerpts import excerpts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", type=int, nargs="+", default=[0, 700, 1200, 1600, 2400])
    args = parser.parse_args()
    questions: list[dict[str, Any]] = json.loads((REPO_ROOT / "samples" / "questions.json").read_text("utf-8"))
    questions = [q for q in questions if q["visible_to"]]
    with tempfile.TemporaryDirectory(prefix="clearance-excerpts-") as scratch:
        settings = Settings(mode=Mode.DEVELOPMENT, data_dir=Path(scratch), index=IndexSettings(location=":memory:"))
        runtime = build_runtime(settings)
        assert runtime.dev is not None
        for source in sample_sources(runtime.dev.directory).values():
            runtime.pipeline.run(source)
        kept: dict[int, int] = dict.fromkeys(args.budgets, 0)
        chars: dict[int, list[int]] = {budget: [] for budget in args.budgets}
        lost: dict[int, list[str]] = {budget: [] for budget in args.budgets}
        for question in questions:
            user = runtime.dev.directory.user(question["visible_to"][0])
            principal = runtime.tokens.authenticate(runtime.dev.idp.mint_for(user))
            passages = runtime.answers._relevant(principal, question["question"], {})  # what the model is given
            for budget in args.budgets:
                read = excerpts(question["question"], passages, budget_chars=budget)
                chars[budget].append(sum(len(p.text) for p in read))
                if any(question["answer_contains"] in p.text for p in read):
                    kept[budget] += 1
                elif any(question["answer_contains"] in p.text for p in passages):
                    lost[budget].append(question["id"])
        runtime.close()
    report = {
        "questions": len(questions),
        "budgets": {
            str(budget): {
                "answer_in_text_read": kept[budget],
                "passage_chars_p50": statistics.median(chars[budget]),
                "passage_chars_max": max(chars[budget]),
                "answer_cut_away": lost[budget],
            }
            for budget in args.budgets
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
