"""Versioned prompts for grounded answers.

A prompt is identified by ``name/version``; the version is recorded with every
answer so a change can be compared in evaluation and rolled back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.records import Passage

ABSTAIN_ANSWER = "I could not find this in documents you can access."


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    name: str
    version: str
    system: str

    @property
    def id(self) -> str:
        return f"{self.name}/{self.version}"


GROUNDED_ANSWER_V1 = PromptTemplate(
    name="grounded-answer",
    version="v1",
    system=(
        "You answer employees' questions using only the numbered passages you are given. "
        "Write one to four short sentences. End every sentence with the number of the passage "
        "that supports it, in square brackets, like this: The limit is 40 euros [2]. "
        "Never use knowledge that is not in the passages. If the passages do not answer the "
        f"question, reply exactly: {ABSTAIN_ANSWER}"
    ),
)


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
    messages.append({"role": "user", "content": f"Passages:\n\n{render_passages(passages)}\n\nQuestion: {question}"})
    return messages
