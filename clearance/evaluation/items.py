"""What an evaluation asks: items, the corpus they are asked over, and the set that holds both.

An item is one question asked by one identity. It knows which documents answer
it *for that identity* (``relevant``, empty when the identity may not read any:
then the right behaviour is to abstain), what a correct answer contains
(``facts``, any one of them; or ``references`` to score by token overlap), and,
for the sample company, what that identity must never be shown
(``withheld_facts``, ``forbidden_sources``: an expectation written from the
manifests, independent of the index).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from clearance.compose import Runtime


class SetKind(StrEnum):
    PERSONAS = "personas"  # the sample company, every sample user
    BEIR = "beir"  # a BEIR-layout retrieval set (retrieval only)
    CLAPNQ = "clapnq"  # grounded QA, answerable and unanswerable


@dataclass(frozen=True, slots=True)
class EvalItem:
    id: str  # unique in its set: "<question id>@<persona>"
    question_id: str
    persona: str  # the asking identity's name in the development directory
    question: str
    relevant: Mapping[str, int]  # document (source path) -> graded relevance; empty: must abstain
    facts: tuple[str, ...] = ()  # a correct answer contains one of these
    references: tuple[str, ...] = ()  # reference answers, for token F1 and the judge
    withheld_facts: tuple[str, ...] = ()  # facts of documents this persona may not read: never in an answer
    forbidden_sources: frozenset[str] = frozenset()  # documents this persona may not read, per the set itself
    follow_up_to: str | None = None  # question id of the previous turn, asked by the same persona

    @property
    def answerable(self) -> bool:
        return bool(self.relevant)


@dataclass(frozen=True, slots=True)
class IngestSummary:
    """What loading a set's corpus did, for the report."""

    documents: int
    chunks: int
    seconds: float
    errors: tuple[str, ...] = ()
    how: str = ""  # "pipeline" (files parsed and chunked by ingestion) or "index port" (one chunk per record)


class Corpus(Protocol):
    """Puts a set's documents, with their ACLs, into a runtime's (empty) index."""

    def ingest(self, runtime: Runtime) -> IngestSummary: ...


@dataclass(frozen=True, slots=True)
class EvalSet:
    name: str
    kind: SetKind
    items: tuple[EvalItem, ...]
    corpus: Corpus
    generate: bool = True  # False: retrieval only (no answers, no answer metrics)
    search_depth: int = 10  # passages searched per item for the ranking metrics
    directory: Mapping[str, Any] | None = None  # a development directory (users.json shape); None: the settings'
    source: str = ""  # where the set was read from, for the report
    notes: tuple[str, ...] = field(default_factory=tuple)


# One synthetic reader for sets without identities of their own (BEIR, ClapNQ): every document is
# readable by every member of this tenant, and the evaluator is its only member.
EVAL_TENANT = "e7a10000-0000-4000-8000-000000000001"
EVALUATOR = "evaluator"
EVALUATOR_OID = str(uuid.uuid5(uuid.NAMESPACE_URL, "clearance-eval/evaluator"))
TENANT_WIDE_MANIFEST = {"allow": ["tenant"], "deny": [], "inherit": False}


def single_reader_directory() -> dict[str, Any]:
    """The development directory of the synthetic tenant: one member, no groups, no roles."""
    return {
        "tenants": [{"id": EVAL_TENANT, "name": "Evaluation", "domain": "evaluation.example"}],
        "groups": [],
        "users": [
            {
                "name": EVALUATOR,
                "display_name": "Evaluation Reader",
                "title": "Synthetic identity of `clearance eval`",
                "tenant": EVAL_TENANT,
                "oid": EVALUATOR_OID,
                "groups": [],
                "roles": [],
                "guest": False,
            }
        ],
    }
