"""The sample company's persona set: every question of ``samples/questions.json`` asked by every sample user.

The file lists each question once per answering document, with the users who
may read that document (``visible_to``); everyone else is in ``hidden_from``.
Entries that share the same question text are one question whose right answer
depends on who asks: a user gets the answer of the documents they may read,
and an abstention when they may read none. ``follow_up_to`` makes an entry the
second turn of a conversation: it is asked after its parent, by the same user,
with that user's own first answer as history.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clearance.evaluation.items import EvalItem, EvalSet, IngestSummary, SetKind
from clearance.samples import sample_sources
from clearance.settings import REPO_ROOT

if TYPE_CHECKING:
    from clearance.compose import Runtime

QUESTIONS_FILE = REPO_ROOT / "samples" / "questions.json"
USERS_FILE = REPO_ROOT / "samples" / "users.json"


def load_personas(
    questions_file: Path = QUESTIONS_FILE,
    *,
    users_file: Path = USERS_FILE,
    limit: int | None = None,
    personas: Sequence[str] | None = None,
    sample: int | None = None,
) -> EvalSet:
    """The persona set; ``limit`` keeps the first N questions, ``sample`` N questions spread evenly over the file.

    Either way a kept question brings the turns and variants it needs. A sample spreads over every topic
    and tenant of the file (the first N questions would be the first topics only): a stratified subset
    for a slow generator.
    """
    entries: list[dict[str, Any]] = json.loads(questions_file.read_text(encoding="utf-8"))
    directory: dict[str, Any] = json.loads(users_file.read_text(encoding="utf-8"))
    folders = {t["id"]: t.get("domain", "").split(".")[0] for t in directory["tenants"]}
    users = [u for u in directory["users"] if personas is None or u["name"] in personas]
    if personas is not None and len(users) != len(set(personas)):
        unknown = sorted(set(personas) - {u["name"] for u in users})
        raise ValueError(f"no sample user named {', '.join(unknown)}")
    groups = _groups(_kept(entries, limit, sample))
    group_of = {entry["id"]: group_id for group_id, group in groups.items() for entry in group}
    items = []
    for group_id, group in groups.items():
        parent = group[0].get("follow_up_to")
        for user in users:
            folder = folders[user["tenant"]]
            visible = [e for e in group if user["name"] in e["visible_to"]]
            hidden = [e for e in group if user["name"] not in e["visible_to"]]
            items.append(
                EvalItem(
                    id=f"{group_id}@{user['name']}",
                    question_id=group_id,
                    persona=user["name"],
                    question=group[0]["question"],
                    relevant={path: 1 for e in visible if (path := _in_folder(e["document"], folder))},
                    facts=tuple(e["answer_contains"] for e in visible),
                    references=tuple(e["reference"] for e in visible if e.get("reference")),
                    withheld_facts=tuple(e["answer_contains"] for e in hidden),
                    # Only the asker's own tenant's paths: another tenant's documents are not in their search at all.
                    forbidden_sources=frozenset(p for e in hidden if (p := _in_folder(e["document"], folder))),
                    follow_up_to=group_of.get(parent) if parent else None,
                )
            )
    return EvalSet(
        name="sample company personas",
        kind=SetKind.PERSONAS,
        items=tuple(items),
        corpus=SampleCompany(),
        directory=directory,
        source=_shown(questions_file),
        notes=(f"{len(groups)} questions x {len(users)} sample users" + (" (spread sample)" if sample else ""),),
    )


def _shown(path: Path) -> str:
    """A path inside the repository relative to it, so that reports from two checkouts compare equal."""
    resolved = path.resolve()
    return resolved.relative_to(REPO_ROOT).as_posix() if resolved.is_relative_to(REPO_ROOT) else str(path)


def _kept(entries: list[dict[str, Any]], limit: int | None, sample: int | None = None) -> list[dict[str, Any]]:
    """The first ``limit`` entries (or ``sample`` questions spread evenly), plus the parents of kept
    follow-ups and the variants of kept questions."""
    if not limit and not sample:
        return entries
    by_id = {e["id"]: e for e in entries}
    chosen = entries[:limit] if limit else _spread(entries, sample or 0)
    wanted = {e["id"] for e in chosen}
    while True:
        texts = {by_id[i]["question"] for i in wanted}
        more = {e["id"] for e in entries if e["question"] in texts}
        more |= {by_id[i]["follow_up_to"] for i in wanted if by_id[i].get("follow_up_to") in by_id}
        if more <= wanted:
            return [e for e in entries if e["id"] in wanted]
        wanted |= more


def _spread(entries: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The first entry of ``count`` distinct questions taken at even steps through the file."""
    firsts: dict[str, dict[str, Any]] = {}
    for entry in entries:
        firsts.setdefault(entry["question"], entry)
    questions = list(firsts.values())
    if count >= len(questions):
        return questions
    return [questions[(index * len(questions)) // count] for index in range(count)]


def _groups(entries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Entries by question text, keyed by the first entry's id, in file order."""
    by_text: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_text.setdefault(entry["question"], []).append(entry)
    return {group[0]["id"]: group for group in by_text.values()}


def _in_folder(document: str, folder: str) -> str | None:
    """``<tenant folder>/<path>`` as the asker's search names it (the path), or None for another tenant's."""
    head, _, path = document.partition("/")
    return path if head == folder else None


@dataclass(frozen=True, slots=True)
class SampleCompany:
    """Ingests ``samples/corpus`` with the ingestion pipeline: parsing, manifests, chunking, embedding."""

    def ingest(self, runtime: Runtime) -> IngestSummary:
        if runtime.dev is None:
            raise ValueError("the sample company needs the development directory (development mode)")
        started = time.perf_counter()
        documents = chunks = 0
        errors: list[str] = []
        for source in sample_sources(runtime.dev.directory).values():
            job = runtime.pipeline.run(source)
            documents += job.files_total
            chunks += job.chunks_written
            errors += [f"{issue.path}: {issue.reason}" for issue in job.errors]
            if job.failure:
                errors.append(job.failure)
        return IngestSummary(
            documents=documents,
            chunks=chunks,
            seconds=round(time.perf_counter() - started, 2),
            errors=tuple(errors),
            how="pipeline",
        )
