"""The generator port: numbered passages in, cited answer text out, in pieces.

A generator receives the caller's question and the passages that caller may
read, numbered from 1, and yields the answer text in pieces (for streaming).
It is never given anything else: no ACLs, no other caller's passages. The
answer service passes the tenant's active ``prompt`` version with every request
(None: the generator's own default); a generator that reads no prompt (the
extractive one) ignores it. A
generator checks ``cancel`` between pieces and stops (releasing its model)
once it is set, so an abandoned stream frees the model at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from core.cancel import Cancellation
from core.records import Passage
from retrieval.prompt_template import PromptTemplate


class AnswerGenerator(Protocol):
    """Writes an answer from numbered passages, citing them as [n]."""

    @property
    def name(self) -> str: ...

    def generate(
        self,
        *,
        question: str,
        passages: Sequence[Passage],
        history: Sequence[tuple[str, str]] = (),
        cancel: Cancellation | None = None,
        prompt: PromptTemplate | None = None,
    ) -> Iterator[str]: ...
