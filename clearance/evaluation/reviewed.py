"""Evaluation items from the review queue's export (``GET /v1/review/export``): one JSON object per line.

Each line has exactly the fields of :class:`clearance.evaluation.items.EvalItem`
(``store.review_export`` writes them); a line with a missing, unknown or
mistyped field is an error naming the line, never a silently different item.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any

from clearance.evaluation.items import EvalItem

_FIELDS = {f.name for f in fields(EvalItem)}
_TEXT = ("id", "question_id", "persona", "question")
_LISTS = ("facts", "references", "withheld_facts", "forbidden_sources")


def load_reviewed_items(path: Path) -> tuple[EvalItem, ...]:
    """The items of an export file."""
    return parse_reviewed_items(path.read_text(encoding="utf-8").splitlines())


def parse_reviewed_items(lines: Iterable[str]) -> tuple[EvalItem, ...]:
    items: list[EvalItem] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = _item(json.loads(line))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"line {number}: {exc}") from exc
        if item.id in seen:
            raise ValueError(f"line {number}: duplicate item id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    return tuple(items)


def _item(data: Any) -> EvalItem:
    if not isinstance(data, dict):
        raise TypeError("an item is a JSON object")
    if set(data) != _FIELDS:
        missing, unknown = sorted(_FIELDS - set(data)), sorted(set(data) - _FIELDS)
        raise ValueError(f"fields differ from EvalItem's (missing {missing}, unknown {unknown})")
    for name in _TEXT:
        if not isinstance(data[name], str) or not data[name]:
            raise TypeError(f"{name} must be a non-empty string")
    for name in _LISTS:
        if not isinstance(data[name], list) or not all(isinstance(v, str) for v in data[name]):
            raise TypeError(f"{name} must be a list of strings")
    relevant = data["relevant"]
    if not isinstance(relevant, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in relevant.items()
    ):
        raise TypeError("relevant must map document sources to integer grades")
    if data["follow_up_to"] is not None and not isinstance(data["follow_up_to"], str):
        raise TypeError("follow_up_to must be a question id or null")
    return EvalItem(
        id=data["id"],
        question_id=data["question_id"],
        persona=data["persona"],
        question=data["question"],
        relevant=dict(relevant),
        facts=tuple(data["facts"]),
        references=tuple(data["references"]),
        withheld_facts=tuple(data["withheld_facts"]),
        forbidden_sources=frozenset(data["forbidden_sources"]),
        follow_up_to=data["follow_up_to"],
    )
