"""Precision and recall of the personal-data detector on a labelled sample.

``python -m retrieval.policy.measure samples/policy/pii_labelled.jsonl``

Each line: ``{"text": "...", "entities": [{"kind": "EMAIL", "text": "..."}]}``.
A detection counts as correct when its kind and its exact text match a labelled
entity of that line (each labelled entity matches once). Strings without
entities are the negatives, many of them hard ones (order numbers, dates,
versions, amounts).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from retrieval.policy.pii import PiiDetector


@dataclass(frozen=True, slots=True)
class Scores:
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        labelled = self.true_positives + self.false_negatives
        return self.true_positives / labelled if labelled else 1.0


def evaluate(path: Path, detector: PiiDetector) -> tuple[dict[str, Scores], list[str]]:
    """Scores per kind (and ``ALL``), and one line per mistake."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    mistakes: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        text: str = item["text"]
        expected = Counter((e["kind"], e["text"]) for e in item["entities"])
        for match in detector.find(text):
            key = (match.kind.value, text[match.start : match.end])
            if expected[key] > 0:
                expected[key] -= 1
                tp[key[0]] += 1
            else:
                fp[key[0]] += 1
                mistakes.append(f"false positive {key[0]} {key[1]!r} in {text!r}")
        for (kind, value), left in expected.items():
            fn[kind] += left
            mistakes += [f"missed {kind} {value!r} in {text!r}"] * left
    kinds = sorted(set(tp) | set(fp) | set(fn))
    scores = {kind: Scores(tp[kind], fp[kind], fn[kind]) for kind in kinds}
    scores["ALL"] = Scores(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return scores, mistakes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sample", type=Path, help="labelled JSON lines")
    parser.add_argument("--mistakes", action="store_true", help="list every false positive and miss")
    args = parser.parse_args(argv)
    scores, mistakes = evaluate(args.sample, PiiDetector())
    print(f"{'kind':<12} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>10} {'recall':>7}")
    for kind, s in scores.items():
        row = f"{s.true_positives:>4} {s.false_positives:>4} {s.false_negatives:>4}"
        print(f"{kind:<12} {row} {s.precision:>10.3f} {s.recall:>7.3f}")
    if args.mistakes:
        print("\n".join(mistakes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
