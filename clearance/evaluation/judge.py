"""Judged correctness: a model, reached through the OpenAI-compatible API, grades an answer against the reference.

Optional and never the only signal: facts present and token F1 are computed
whatever the judge says. The judge sees the question, the reference answer or
facts, and the product's answer; never passages and never an ACL. A judge that
fails or answers out of format gives no verdict for that item (counted), not a
guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

JUDGE_PROMPT = (
    "You grade answers to questions. Given a question, a reference answer and a candidate answer, "
    "reply with exactly one word: CORRECT if the candidate states what the reference states "
    "(wording may differ; extra correct detail is fine), otherwise INCORRECT."
)


class Judge(Protocol):
    @property
    def name(self) -> str: ...

    def grade(self, *, question: str, answer: str, references: Sequence[str]) -> bool | None:
        """True or False; None when no verdict could be had."""
        ...


class OpenAICompatibleJudge:
    """A chat-completions model as the judge (Azure OpenAI, vLLM, Ollama, a hosted model)."""

    def __init__(self, *, base_url: str, api_key: str, model: str, timeout_seconds: float = 30.0) -> None:
        from openai import OpenAI

        self._client = OpenAI(base_url=base_url, api_key=api_key or "unused", timeout=timeout_seconds, max_retries=1)
        self._model = model
        self.failures = 0

    @property
    def name(self) -> str:
        return f"openai:{self._model}"

    def grade(self, *, question: str, answer: str, references: Sequence[str]) -> bool | None:
        import openai

        reference = "\n".join(f"- {r}" for r in references)
        try:
            reply = self._client.chat.completions.create(
                model=self._model,
                messages=[
                    {"role": "system", "content": JUDGE_PROMPT},
                    {
                        "role": "user",
                        "content": f"Question: {question}\nReference:\n{reference}\nCandidate: {answer}\nVerdict:",
                    },
                ],
                max_tokens=4,
                temperature=0.0,
            )
        except openai.OpenAIError:
            self.failures += 1
            return None
        words = (reply.choices[0].message.content or "").strip().upper().split() if reply.choices else []
        verdict = words[0].strip(".,:;!") if words else ""
        if verdict in ("CORRECT", "INCORRECT"):
            return verdict == "CORRECT"
        self.failures += 1
        return None
