"""Versioned prompts for grounded answers.

A prompt is identified by ``name/version``; the version is recorded with every
answer so a change can be compared in evaluation and rolled back. Versions are
TOML files (:mod:`retrieval.prompt_files`) seeded into the state store, where an
admin activates one per tenant; the answer service asks a :class:`PromptSource`
for the active one on every request, so an activation applies to the next
request without a restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from core.records import Passage
from retrieval.prompt_files import builtin_default
from retrieval.prompt_template import ABSTAIN_ANSWER as ABSTAIN_ANSWER
from retrieval.prompt_template import PromptTemplate as PromptTemplate

GROUNDED_ANSWER = "grounded-answer"
# The shipped default (retrieval/prompt_templates/grounded-answer/v1.toml): what answers use when no
# store is wired, and what every tenant uses until one of its admins activates another version.
GROUNDED_ANSWER_V1 = builtin_default(GROUNDED_ANSWER)


class PromptSource(Protocol):
    """The version of prompt ``name`` that a tenant's next answer uses.

    Called once per request; the answer uses that one template object for the
    model and for its record, so an activation racing a request yields either
    the old or the new version, whole, never a mix.
    """

    def active(self, tenant_id: str, name: str) -> PromptTemplate: ...


class FixedPrompt:
    """One template for every tenant: runtimes without a state store, tests, and the evaluation of a candidate."""

    def __init__(self, template: PromptTemplate = GROUNDED_ANSWER_V1) -> None:
        self.template = template

    def active(self, tenant_id: str, name: str) -> PromptTemplate:
        return self.template


def passage_label(passage: Passage) -> str:
    where = [passage.title]
    if passage.section:
        where.append(passage.section)
    if passage.page_name:
        where.append(f"sheet {passage.page_name}")
    elif passage.page is not None:
        where.append(f"page {passage.page}")
    return " - ".join(part for part in where if part)


def render_passages(passages: Sequence[Passage]) -> str:
    """The numbered context block; numbers are what citations refer to."""
    return "\n\n".join(
        f"[{number}] {passage_label(passage)}\n{passage.text}" for number, passage in enumerate(passages, start=1)
    )


def chat_messages(
    template: PromptTemplate, *, question: str, passages: Sequence[Passage], history: Sequence[tuple[str, str]] = ()
) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": template.system}]
    for role, content in history[-6:]:
        messages.append({"role": role, "content": content})
    messages.append(
        {"role": "user", "content": template.render_user(passages=render_passages(passages), question=question)}
    )
    return messages
