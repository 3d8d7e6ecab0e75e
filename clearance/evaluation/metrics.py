"""Scores: ranking, answer and abstention metrics, leakage, latency, and the workflow metric.

Pure functions over what the runner observed (:class:`~.runner.Observation`);
nothing here talks to the product. Definitions, as the report states them:

* Rankings are over *documents*: the searched chunks, best first, with each
  document kept at its first (best) chunk. recall@k is the share of the
  relevant documents among the first k; nDCG@10 uses graded relevance with
  linear gains (as BEIR's pytrec_eval); MRR is 1 / rank of the first relevant
  document within the search depth.
* An answer is *correct* when it contains one of the item's facts (case and
  spacing ignored); items without facts (ClapNQ) use the reference answer:
  correct when the answer holds at least half of its tokens (token recall).
* *Correctly cited*: a sentence that states the fact cites a passage of a
  document that answers the item (without facts: any citation of one).
* *Faithfulness*: the share of the answer's sentences that the citation check
  of ``retrieval.citations`` keeps when given the full passages they cite.
* *Citation precision*: of the passages cited in answers to answerable items,
  the share from a document that answers the item. *Citation recall*: the
  share of answerable items whose answer cites such a document.
* *Abstention* precision and recall treat "should abstain" (no readable
  document answers the item) as the positive class.
* *Resolved safely* (the workflow metric): an answerable item ends in a correct,
  correctly cited answer; an unanswerable one in an abstention; and neither
  shows the asker anything they may not read (no leak, no withheld fact).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clearance.evaluation.items import EvalItem

RECALL_CUTOFFS = (1, 5, 10)
CORRECT_TOKEN_RECALL = 0.5
_CITATION = re.compile(r"\[(\d{1,3})\]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans(dict.fromkeys(string.punctuation, " "))


# -- rankings -----------------------------------------------------------------------------------


def document_ranking(sources: Iterable[str]) -> list[str]:
    """Documents in the order of their best chunk."""
    return list(dict.fromkeys(sources))


def recall_at(ranking: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    wanted = {doc for doc, grade in relevant.items() if grade > 0}
    return len(wanted & set(ranking[:k])) / len(wanted) if wanted else 0.0


def ndcg_at(ranking: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    gains = [relevant.get(doc, 0) for doc in ranking[:k]]
    dcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(gains))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def reciprocal_rank(ranking: Sequence[str], relevant: Mapping[str, int]) -> float:
    for rank, doc in enumerate(ranking, start=1):
        if relevant.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


# -- answer text ----------------------------------------------------------------------------------


def squashed(text: str) -> str:
    """Lower case, single spaces: how facts are looked for."""
    return " ".join(text.casefold().split())


def contains_fact(answer: str, facts: Iterable[str]) -> bool:
    text = squashed(_CITATION.sub(" ", answer))
    return any(squashed(fact) in text for fact in facts if fact.strip())


def answer_tokens(text: str) -> list[str]:
    """SQuAD-style normalisation (lower case, no punctuation or articles), citations removed."""
    text = _CITATION.sub(" ", text).casefold().translate(_PUNCTUATION)
    return _ARTICLES.sub(" ", text).split()


def token_scores(answer: str, reference: str) -> tuple[float, float]:
    """(F1, recall) of the answer's tokens against one reference answer."""
    got, want = Counter(answer_tokens(answer)), Counter(answer_tokens(reference))
    common = sum((got & want).values())
    if not common:
        return 0.0, 0.0
    precision, recall = common / sum(got.values()), common / sum(want.values())
    return 2 * precision * recall / (precision + recall), recall


def citations_of(sentence: str) -> list[int]:
    return [int(n) for n in _CITATION.findall(sentence)]


# -- per item -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemScore:
    """Every metric of one item; None where a metric does not apply to it."""

    item: EvalItem
    recall: dict[int, float | None]
    ndcg10: float | None
    mrr: float | None
    answered: bool | None  # None: no answer was generated (retrieval-only sets)
    abstained: bool | None
    correct: bool | None
    correctly_cited: bool | None
    token_f1: float | None
    faithfulness: float | None
    cited: int  # passages cited
    cited_relevant: int  # of which from a document that answers the item
    judged_correct: bool | None
    leaks: int
    disclosed: bool
    error: bool
    resolved_safely: bool | None
    timings_ms: Mapping[str, float]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation, None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _mean(values: Iterable[float | bool | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return round(sum(present) / len(present), 4) if present else None


def _share(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def aggregate(scores: Sequence[ItemScore]) -> dict[str, Any]:
    """One group's metrics (overall, or one persona's)."""
    answerable = [s for s in scores if s.item.answerable]
    unanswerable = [s for s in scores if not s.item.answerable]
    generated = [s for s in scores if s.answered is not None]
    abstentions = [s for s in generated if s.abstained]
    answered_answerable = [s for s in answerable if s.answered]
    metrics: dict[str, Any] = {
        "items": len(scores),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "errors": sum(s.error for s in scores),
        "resolved_safely": _mean(s.resolved_safely for s in scores),
    }
    for k in sorted({k for s in scores for k in s.recall} or set(RECALL_CUTOFFS)):
        metrics[f"recall@{k}"] = _mean(s.recall.get(k) for s in answerable)
    metrics["ndcg@10"] = _mean(s.ndcg10 for s in answerable)
    metrics["mrr"] = _mean(s.mrr for s in answerable)
    metrics["answer_correct"] = _mean(s.correct for s in answerable if s.answered is not None)
    metrics["correctly_cited"] = _mean(s.correctly_cited for s in answerable if s.answered is not None)
    metrics["token_f1"] = _mean(s.token_f1 for s in answerable if s.answered is not None)
    metrics["judged_correct"] = _mean(s.judged_correct for s in answerable)
    metrics["faithfulness"] = _mean(s.faithfulness for s in generated)
    cited = sum(s.cited for s in answered_answerable)
    metrics["citation_precision"] = _share(sum(s.cited_relevant for s in answered_answerable), cited)
    metrics["citation_recall"] = _mean(s.cited_relevant > 0 for s in answerable if s.answered is not None)
    metrics["abstention_precision"] = _share(sum(not s.item.answerable for s in abstentions), len(abstentions))
    metrics["abstention_recall"] = _share(
        sum(bool(s.abstained) for s in unanswerable if s.answered is not None),
        sum(s.answered is not None for s in unanswerable),
    )
    metrics["answered_when_unanswerable"] = _share(
        sum(s.abstained is False for s in unanswerable), sum(s.answered is not None for s in unanswerable)
    )
    metrics["leaked_chunks"] = sum(s.leaks for s in scores)
    metrics["disclosures"] = sum(s.disclosed for s in scores)
    metrics["latency_ms"] = latency(scores)
    return metrics


STAGE_ORDER = ("auth", "embed", "search", "generate", "answer", "search_call")


def latency(scores: Sequence[ItemScore]) -> dict[str, dict[str, float | None]]:
    seen = dict.fromkeys(stage for s in scores for stage in s.timings_ms)
    stages = [s for s in STAGE_ORDER if s in seen] + [s for s in seen if s not in STAGE_ORDER]
    out: dict[str, dict[str, float | None]] = {}
    for stage in stages:
        values = [s.timings_ms[stage] for s in scores if stage in s.timings_ms]
        p50, p95 = percentile(values, 50), percentile(values, 95)
        out[stage] = {
            "p50": None if p50 is None else round(p50, 2),
            "p95": None if p95 is None else round(p95, 2),
            "n": len(values),
        }
    return out


def by_persona(scores: Sequence[ItemScore]) -> dict[str, dict[str, Any]]:
    personas = dict.fromkeys(s.item.persona for s in scores)
    return {name: aggregate([s for s in scores if s.item.persona == name]) for name in personas}
