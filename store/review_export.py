"""Resolved review items as evaluation items: the shape of ``clearance.evaluation.items.EvalItem``, as JSON.

An item a reviewer resolved becomes a question the evaluation harness can ask
again, as the same person (``persona`` is the asker's object id), with what the
reviewer expects:

- ``correct``: the documents it cited (or the reviewer's ``expected_sources``) are
  the relevant ones; the answer (or the reviewer's ``expected_answer``) is the reference;
- ``incorrect``: the reviewer's expected sources and answer; skipped when they gave neither
  (nothing to measure against);
- ``needs_content``: nothing the asker may read answers it: the right behaviour is to abstain.

Policy verdicts (``policy_ok``, ``policy_violation``) say nothing about the right answer and
are not exported, nor are items whose question was erased from the audit (forget user).
The field names and types are the loader's contract: ``clearance.evaluation.reviewed``.
"""

from __future__ import annotations

from typing import Any

from store.audit_query import AuditRecord
from store.review import Resolution, ReviewItem

QUESTION_PREFIX = "review-"


def evaluation_item(item: ReviewItem, record: AuditRecord | None, answer: str | None) -> dict[str, Any] | None:
    """The evaluation item a resolved review item stands for, or None when it cannot be one."""
    if item.resolution is None or record is None or record.personal is None:
        return None
    question = record.personal.get("question")
    if not isinstance(question, str) or not question:
        return None
    if item.resolution is Resolution.CORRECT:
        sources = item.expected_sources or _cited_sources(record)
        references = [item.expected_answer or answer or ""]
    elif item.resolution is Resolution.INCORRECT:
        if not item.expected_sources and not item.expected_answer:
            return None
        sources, references = item.expected_sources, [item.expected_answer or ""]
    elif item.resolution is Resolution.NEEDS_CONTENT:
        sources, references = (), []
    else:
        return None
    question_id = f"{QUESTION_PREFIX}{item.id}"
    return {
        "id": f"{question_id}@{item.asker}",
        "question_id": question_id,
        "persona": item.asker,
        "question": question,
        "relevant": {source: 1 for source in sources},
        "facts": [],
        "references": [r for r in references if r],
        "withheld_facts": [],
        "forbidden_sources": [],
        "follow_up_to": None,
    }


def _cited_sources(record: AuditRecord) -> tuple[str, ...]:
    cited = set(record.record.get("cited") or ())
    found: list[str] = []
    for chunk in record.record.get("retrieved") or ():
        source = chunk.get("source") if isinstance(chunk, dict) else None
        if chunk.get("chunk_id") in cited and isinstance(source, str) and source and source not in found:
            found.append(source)
    return tuple(found)
