"""ClapNQ grounded QA (``answerable.jsonl``, ``unanswerable.jsonl``), read in place.

Each question's gold passage becomes one Markdown document (its title as the
heading), ingested by the ingestion pipeline from a temporary folder with a
manifest that admits every member of the synthetic evaluation tenant. The
passages of unanswerable questions are in the index too: they look related,
and the right behaviour is to abstain. Answers are scored by token overlap with
the annotators' long answers (ClapNQ has no short facts).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clearance.evaluation.items import (
    EVAL_TENANT,
    EVALUATOR,
    TENANT_WIDE_MANIFEST,
    EvalItem,
    EvalSet,
    IngestSummary,
    SetKind,
    single_reader_directory,
)
from ingest.source import FilesystemSource

if TYPE_CHECKING:
    from clearance.compose import Runtime

FILES = (("answerable.jsonl", True), ("unanswerable.jsonl", False))


@dataclass(frozen=True, slots=True)
class ClapDocument:
    path: str
    title: str
    text: str


def load_clapnq(folder: Path, *, limit: int | None = None) -> EvalSet:
    """The set in ``folder``; ``limit`` keeps the first N questions of each file."""
    documents: dict[tuple[str, str], ClapDocument] = {}
    items = []
    for name, answerable in FILES:
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"not a ClapNQ folder: {path} is missing")
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        for row in rows[:limit] if limit else rows:
            paths = [_document(documents, passage).path for passage in row["passages"]]
            items.append(
                EvalItem(
                    id=f"{row['id']}@{EVALUATOR}",
                    question_id=str(row["id"]),
                    persona=EVALUATOR,
                    question=str(row["input"]),
                    relevant=dict.fromkeys(paths, 1) if answerable else {},
                    references=_references(row["output"]) if answerable else (),
                )
            )
    return EvalSet(
        name="ClapNQ (dev)",
        kind=SetKind.CLAPNQ,
        items=tuple(items),
        corpus=ClapCorpus(documents=tuple(documents.values())),
        directory=single_reader_directory(),
        source=str(folder),
        notes=("each question's gold passage is a document; unanswerable questions expect an abstention",),
    )


def _document(documents: dict[tuple[str, str], ClapDocument], passage: dict[str, Any]) -> ClapDocument:
    """One document per distinct passage (two questions on the same passage share it)."""
    key = (str(passage["title"]), str(passage["text"]))
    if key not in documents:
        slug = re.sub(r"[^a-z0-9]+", "-", key[0].lower()).strip("-")[:60] or "passage"
        documents[key] = ClapDocument(path=f"{len(documents):04d}-{slug}.md", title=key[0], text=key[1])
    return documents[key]


def _references(outputs: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(str(o["answer"]) for o in outputs if str(o.get("answer", "")).strip())


@dataclass(frozen=True, slots=True)
class ClapCorpus:
    documents: tuple[ClapDocument, ...]

    def ingest(self, runtime: Runtime) -> IngestSummary:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="clearance-clapnq-") as folder:
            root = Path(folder)
            (root / ".acl.json").write_text(json.dumps(TENANT_WIDE_MANIFEST), encoding="utf-8")
            for document in self.documents:
                (root / document.path).write_text(f"# {document.title}\n\n{document.text}\n", encoding="utf-8")
            job = runtime.pipeline.run(FilesystemSource(root=root, tenant_id=EVAL_TENANT))
        errors = [f"{issue.path}: {issue.reason}" for issue in job.errors] + ([job.failure] if job.failure else [])
        return IngestSummary(
            documents=len(self.documents),
            chunks=job.chunks_written,
            seconds=round(time.perf_counter() - started, 2),
            errors=tuple(errors),
            how="pipeline",
        )
